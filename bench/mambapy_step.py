# mambapy_step.py — the baseline for bench_step's M-only step: mambapy (pip install mambapy; a
# pure-PyTorch Mamba-1 with a parallel scan) with an embedding and lm_head, trained with AdamW,
# at the same shape (model_dim, depth, d_state, expand, d_conv, batch x seq, vocab). Prints one
# JSON line: median ms per step (forward + backward + optimizer) after warm-up.
#
#   python bench/mambapy_step.py [--dim 128] [--depth 4] [--batch 8] [--seq 256] [--steps 10]
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from mambapy.mamba import Mamba, MambaConfig, RMSNorm


class MambaLM(torch.nn.Module):
    """Embedding → mambapy's Mamba (its residual layers) → norm → lm_head."""

    def __init__(self, config, vocab):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, config.d_model)
        self.mamba = Mamba(config)
        self.norm = RMSNorm(config.d_model)
        self.lm_head = torch.nn.Linear(config.d_model, vocab, bias=False)

    def forward(self, idx):
        return self.lm_head(self.norm(self.mamba(self.embedding(idx))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--d_state", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--vocab", type=int, default=257)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    torch.manual_seed(0)
    config = MambaConfig(d_model=a.dim, n_layers=a.depth, d_state=a.d_state, expand_factor=2, d_conv=4)
    model = MambaLM(config, a.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, a.vocab, (a.batch, a.seq))
    y = torch.randint(0, a.vocab, (a.batch, a.seq))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).view(-1, a.vocab), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"impl": "mambapy", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "dim": a.dim, "depth": a.depth, "batch": a.batch, "seq": a.seq,
                      "median_ms": statistics.median(times), "min_ms": min(times)}))


if __name__ == "__main__":
    main()
