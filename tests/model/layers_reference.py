"""An independent PyTorch implementation of HybridGPT's layer kinds, written from their
definitions in float64 (attention with an explicit causal or windowed mask, the relu² MLP, the
Mamba-2 recurrence token by token, no chunking), reading a checkpoint with torch.load.

  python layers_reference.py MODEL_PT SPEC_JSON

SPEC_JSON: {"tokens": [[...], ...], "targets": [[...], ...], "pattern": "2S*-", "n_head",
"n_kv_head", "attn_window", "d_state", "headdim", "ngroups", "d_conv", "use_mlp"}; pattern
symbols: T attention + MLP, S the same with a sliding window, * attention alone, - MLP alone,
2 a Mamba-2 mixer (+ MLP when use_mlp). Prints "RESULT {json}" with the mean cross-entropy loss.
"""
import json
import sys

import torch
import torch.nn.functional as F

EPS = torch.finfo(torch.float32).eps  # the model's parameter-free RMSNorm


def rms_norm(x, eps=EPS):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotate(x):
    """Half-split rotary embedding of x (B, T, H, D) at positions 0..T-1, base 10000."""
    T, D = x.shape[1], x.shape[3]
    angle = torch.arange(T, dtype=x.dtype)[:, None] * 10000.0 ** (-torch.arange(0, D, 2, dtype=x.dtype) / D)
    cos, sin = angle.cos()[None, :, None, :], angle.sin()[None, :, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


def attention(p, prefix, u, spec, window):
    """nanochat's attention: q, k rotated then RMS-normed, grouped kv heads, causal softmax over
    the keys a query may see (j <= i, and i - j < window when windowed), c_proj."""
    B, T, C = u.shape
    H, Hkv = spec["n_head"], spec["n_kv_head"]
    D = C // H
    W = lambda name: p[prefix + name]
    q = rms_norm(rotate((u @ W("c_q.weight").T).reshape(B, T, H, D)))
    k = rms_norm(rotate((u @ W("c_k.weight").T).reshape(B, T, Hkv, D)))
    v = (u @ W("c_v.weight").T).reshape(B, T, Hkv, D)
    k, v = k.repeat_interleave(H // Hkv, dim=2), v.repeat_interleave(H // Hkv, dim=2)  # head h reads h // (H/Hkv)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    visible = (j <= i) & ((i - j < window) if window else True)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / D**0.5
    scores = scores.masked_fill(~visible, float("-inf"))
    y = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v).reshape(B, T, C)
    return y @ W("c_proj.weight").T


def mlp(p, prefix, u):
    return F.relu(u @ p[prefix + "c_fc.weight"].T).square() @ p[prefix + "c_proj.weight"].T


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


def layer(p, i, kind, x, spec):
    """One pre-normed residual layer of the given pattern symbol."""
    prefix = f"transformer.h.{i}."
    if kind in "TS*":
        window = spec["attn_window"] if kind == "S" else 0
        x = x + attention(p, prefix + "attn.", rms_norm(x), spec, window)
    elif kind == "2":
        x = x + mamba2_mixer(p, prefix + "mixer.", rms_norm(x), spec)
    if kind in "TS-" or (kind == "2" and spec.get("use_mlp")):
        x = x + mlp(p, prefix + "mlp.", rms_norm(x))
    return x


def main():
    state = torch.load(sys.argv[1], map_location="cpu")
    with open(sys.argv[2]) as f:
        spec = json.load(f)
    p = {k: v.to(torch.float64) for k, v in state.items()}
    idx = torch.tensor(spec["tokens"])
    targets = torch.tensor(spec["targets"])
    x = rms_norm(p["transformer.wte.weight"][idx])
    for i, kind in enumerate(spec["pattern"]):
        x = layer(p, i, kind, x, spec)
    unused = [k for k in p if k.startswith(f"transformer.h.{len(spec['pattern'])}.")]
    assert not unused, f"the checkpoint has more layers than the pattern: {unused[:3]}"
    logits = rms_norm(x) @ p["lm_head.weight"].T
    logits = 15.0 * torch.tanh(logits / 15.0)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    print("RESULT " + json.dumps({"layers": len(spec["pattern"]), "loss": loss.item()}))


if __name__ == "__main__":
    main()
