# ssd_torch.py — the baseline for bench_ssd: the chunked SSD of the Mamba-2 paper (arXiv 2405.21060,
# §6, its minimal listing's math) in plain PyTorch ops, differentiated by autograd, at the same
# shape and in fp32. Prints one JSON line: median ms of forward + backward after warm-up.
#
#   python bench/ssd_torch.py [--batch 8] [--seq 1024] [--heads 8] [--headdim 64] [--dstate 64] [--chunk 256]
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def segsum(a):
    """seg[..., t, s] = a_{s+1} + ... + a_t for s <= t, -inf above the diagonal (a masked cumsum)."""
    T = a.size(-1)
    rep = a.unsqueeze(-1).expand(*a.shape, T)
    rep = rep.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), -1), 0)
    seg = torch.cumsum(rep, dim=-2)
    return seg.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), 0), float("-inf"))


def ssd(x, dt, A, B, C, chunk):
    """x (b, L, h, p), dt (b, L, h), A (h), B/C (b, L, h, n) per head; L a multiple of chunk."""
    b, L, h, p = x.shape
    c = L // chunk
    X = (x * dt.unsqueeze(-1)).reshape(b, c, chunk, h, p)
    Ad = (dt * A).reshape(b, c, chunk, h).permute(0, 3, 1, 2)  # (b, h, c, l)
    Bc = B.reshape(b, c, chunk, h, -1)
    Cc = C.reshape(b, c, chunk, h, -1)
    A_cumsum = torch.cumsum(Ad, dim=-1)
    Lmask = torch.exp(segsum(Ad))
    Y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Cc, Bc, Lmask, X)
    decay_states = torch.exp(A_cumsum[..., -1:] - A_cumsum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bc, decay_states, X)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    decay_chunk = torch.exp(segsum(F.pad(A_cumsum[..., -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final = new_states[:, :-1], new_states[:, -1]
    Y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", Cc, states, torch.exp(A_cumsum))
    return (Y_diag + Y_off).reshape(b, L, h, p), final


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("batch", 8), ("seq", 1024), ("heads", 8), ("headdim", 64), ("dstate", 64), ("chunk", 256),
                          ("repeats", 5), ("warmup", 2)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    a = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.batch, a.seq, a.heads, a.headdim, requires_grad=True)
    dt = F.softplus(torch.randn(a.batch, a.seq, a.heads) - 1).requires_grad_(True)
    A = (-torch.exp(torch.rand(a.heads) * 2.77)).requires_grad_(True)
    B = torch.randn(a.batch, a.seq, 1, a.dstate, requires_grad=True)  # one group, shared by the heads
    C = torch.randn(a.batch, a.seq, 1, a.dstate, requires_grad=True)
    dy = torch.randn(a.batch, a.seq, a.heads, a.headdim)
    times = []
    for i in range(a.warmup + a.repeats):
        t0 = time.perf_counter()
        y, _ = ssd(x, dt, A, B.expand(-1, -1, a.heads, -1), C.expand(-1, -1, a.heads, -1), a.chunk)
        y.backward(dy)
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
        for t in (x, dt, A, B, C):
            t.grad = None
    print(json.dumps({"impl": "torch-ssd-autograd", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "batch": a.batch, "seq": a.seq, "heads": a.heads, "headdim": a.headdim, "dstate": a.dstate,
                      "chunk": a.chunk, "median_ms": statistics.median(times), "min_ms": min(times)}))


if __name__ == "__main__":
    main()
