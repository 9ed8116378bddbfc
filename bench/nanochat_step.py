# nanochat_step.py — the baseline for bench_step's T-only step: nanochat's own GPT, Muon and AdamW
# (a checkout given by --nanochat; the comparison in docs/BENCHMARKS.md used commit 67aaca9), run
# eagerly (TORCHDYNAMO_DISABLE=1 is set here) in fp32 as our CPU runs, one step = forward + backward + both optimizers on
# random tokens of the same shape. Prints one JSON line: median ms per step, and the median
# forward+backward and optimizer parts, after warm-up.
#
#   python bench/nanochat_step.py --nanochat PATH [--depth 4] [--dim 256] [--heads 2] [--seq 256] [--batch 8]
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # eager, like our trainer
import torch  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nanochat", required=True, help="path of a nanochat checkout (the folder holding nanochat/)")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--vocab", type=int, default=257)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    sys.path.insert(0, a.nanochat)
    from nanochat.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    config = GPTConfig(sequence_len=a.seq, vocab_size=a.vocab, n_layer=a.depth, n_head=a.heads,
                       n_kv_head=a.heads, n_embd=a.dim)
    model = GPT(config)
    model.init_weights()
    model.transformer.wte.to(dtype=torch.float32)  # nanochat keeps wte in bf16 for CUDA autocast; CPUs run fp32
    optimizers = model.setup_optimizers()
    x = torch.randint(0, a.vocab, (a.batch, a.seq))
    y = torch.randint(0, a.vocab, (a.batch, a.seq))
    step_ms, model_ms, opt_ms = [], [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        model(x, y).backward()
        t1 = time.perf_counter()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if i >= a.warmup:
            step_ms.append((t2 - t0) * 1e3)
            model_ms.append((t1 - t0) * 1e3)
            opt_ms.append((t2 - t1) * 1e3)
    print(json.dumps({"impl": "nanochat", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "depth": a.depth, "dim": a.dim, "heads": a.heads, "seq": a.seq, "batch": a.batch,
                      "median_ms": statistics.median(step_ms), "min_ms": min(step_ms),
                      "model_fwd_bwd_ms": statistics.median(model_ms), "optimizers_ms": statistics.median(opt_ms)}))


if __name__ == "__main__":
    main()
