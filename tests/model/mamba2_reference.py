"""An independent PyTorch implementation of an all-Mamba-2 HybridGPT, written from the Mamba-2
definition (the recurrence token by token, no chunking), reading a checkpoint with torch.load.

  python mamba2_reference.py MODEL_PT TOKENS_JSON

TOKENS_JSON: {"tokens": [[...], ...], "targets": [[...], ...], "d_state", "headdim", "ngroups",
"d_conv", "expand"}. Prints "RESULT {json}" with the mean cross-entropy loss, computed in float64.
"""
import json
import sys

import torch
import torch.nn.functional as F


def rms_norm(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def mamba2_mixer(p, prefix, u, cfg):
    """mamba_ssm's Mamba2 forward, written out: in_proj → z, x, B, C, dt; conv + SiLU over x, B, C;
    h_t = exp(dt_t·A)·h_{t−1} + dt_t·x_t ⊗ B_t; y_t = h_t·C_t + D·x_t; gated RMSNorm; out_proj."""
    batch, L, _ = u.shape
    N, P, G, K = cfg["d_state"], cfg["headdim"], cfg["ngroups"], cfg["d_conv"]
    W = lambda name: p[prefix + name]
    d_inner = W("out_proj.weight").shape[1]
    H = d_inner // P
    conv_dim = d_inner + 2 * G * N
    zxbcdt = u @ W("in_proj.weight").T
    z, xBC, dt = torch.split(zxbcdt, [d_inner, conv_dim, H], dim=-1)
    xBC = F.conv1d(xBC.transpose(1, 2), W("conv1d.weight"), W("conv1d.bias"), padding=K - 1, groups=conv_dim)
    xBC = F.silu(xBC[..., :L]).transpose(1, 2)
    x, B, C = torch.split(xBC, [d_inner, G * N, G * N], dim=-1)
    x = x.reshape(batch, L, H, P)
    B = B.reshape(batch, L, G, N).repeat_interleave(H // G, dim=2)  # head h reads group h // (H/G)
    C = C.reshape(batch, L, G, N).repeat_interleave(H // G, dim=2)
    dt = F.softplus(dt + W("dt_bias"))  # (batch, L, H)
    A = -torch.exp(W("A_log"))
    h = torch.zeros(batch, H, P, N, dtype=u.dtype)
    ys = []
    for t in range(L):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]
        h = decay * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C[:, t]) + W("D")[None, :, None] * x[:, t])
    y = torch.stack(ys, dim=1).reshape(batch, L, d_inner)
    g = (y * F.silu(z)).reshape(batch, L, G, d_inner // G)
    g = rms_norm(g, 1e-5).reshape(batch, L, d_inner) * W("norm.weight")
    return g @ W("out_proj.weight").T


def main():
    state = torch.load(sys.argv[1], map_location="cpu")
    with open(sys.argv[2]) as f:
        spec = json.load(f)
    p = {k: v.to(torch.float64) for k, v in state.items()}
    idx = torch.tensor(spec["tokens"])
    targets = torch.tensor(spec["targets"])
    eps = torch.finfo(torch.float32).eps  # the model's parameter-free RMSNorm
    x = rms_norm(p["transformer.wte.weight"][idx], eps)
    layer = 0
    while f"transformer.h.{layer}.mixer.in_proj.weight" in p:
        x = x + mamba2_mixer(p, f"transformer.h.{layer}.mixer.", rms_norm(x, eps), spec)
        layer += 1
    logits = rms_norm(x, eps) @ p["lm_head.weight"].T
    logits = 15.0 * torch.tanh(logits / 15.0)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    print("RESULT " + json.dumps({"layers": layer, "loss": loss.item()}))


if __name__ == "__main__":
    main()
