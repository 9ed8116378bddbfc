#!/usr/bin/env python3
"""match_sizes.py — the overrides that give a block pattern the block parameters (or FLOPs per
token) of the all-T stack of the same config, for pattern_sweep.sh --match.

    match_sizes.py BASE_TRAIN CONFIG PATTERN params|flops [--key=value ...]

Prints one line: the extra overrides (space-separated, possibly none), '|', the pattern's block
total, '|', the all-T stack's. Exit 2 with an `error:` line when the config is refused.

Every size comes from base_train's own --dry-run --json (parameters_by_block / flops_by_block
summed over the block kinds, so the embeddings and lm_head are left out), never from a formula of
ours. The knobs, in this order:
  1. mamba_expand (1..8) at the config's width, for a pattern with Mamba or Mamba-2 layers: the
     width and every other layer stay as they are;
  2. else also the width (aspect_ratio, model_dim = depth × aspect_ratio), at the two expands
     whose sizes bracket the target: block sizes grow about as width², which predicts the
     aspect_ratio to try; its neighbours are tried too. A width base_train refuses is retried
     with head_dim = the width (for a stack without attention, where it changes nothing) and with
     Mamba-2 heads of 32 or 16 channels, else skipped.
The closest of all that were tried wins; within 2% counts as matched (report.py flags the rest).
"""
import json
import math
import subprocess
import sys

TOLERANCE = 0.02
EXPANDS = range(1, 9)


class MatchError(Exception):
    """base_train refused the config itself: printed as one error line, exit 2."""


def block_total(summary, metric):
    by_block = summary["parameters_by_block" if metric == "params" else "flops_by_block"]
    return float(sum(by_block.values()))


def dry_run(base_train, config, overrides, required=False):
    """The --dry-run --json summary, or None when base_train refuses these overrides (with
    `required`, a MatchError carrying base_train's own message)."""
    r = subprocess.run([base_train, config, *overrides, "--dry-run", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        if required:
            raise MatchError((r.stderr.strip() or r.stdout.strip()).removeprefix("error: "))
        return None
    return json.loads(r.stdout)


def relaxations(pattern, model_dim):
    """Overrides to retry a width with when base_train refuses it, each changing nothing the
    pattern has: a stack without attention ignores head_dim (one head of the whole width is then
    always valid), and Mamba-2 heads of 32 or 16 channels divide more widths than 64."""
    out = [()]
    if not any(kind in pattern for kind in "TS*"):
        out.append((f"--head_dim={model_dim}",))
    if "2" in pattern:
        out += [tail + (f"--mamba2_headdim={h}",) for h in (32, 16) for tail in list(out)]
    return out


def match(base_train, config, pattern, metric, overrides):
    def size(extra):
        summary = dry_run(base_train, config, [*overrides, f"--block_pattern={pattern}", *extra])
        return None if summary is None else block_total(summary, metric)

    base = dry_run(base_train, config, [*overrides, f"--block_pattern={pattern}"], required=True)
    reference = dry_run(base_train, config, [*overrides, "--block_pattern=" + "T" * len(pattern)], required=True)
    target = block_total(reference, metric)
    tried = {(): block_total(base, metric)}

    def error(value):
        return abs(value / target - 1)

    by_expand = {None: tried[()]}
    if any(kind in pattern for kind in "M2"):
        for expand in EXPANDS:
            extra = (f"--mamba_expand={expand}",)
            value = size(extra)
            if value is not None:
                tried[extra] = by_expand[expand] = value
    best = min(tried, key=lambda extra: error(tried[extra]))
    if error(tried[best]) > TOLERANCE:
        # The width next, at the expands that bracket the target from below and from above (or the
        # config's expand): block sizes grow about as width², so try the predicted aspect_ratio
        # and its neighbours.
        aspect = int(base["model_dim"]) // int(base["depth"])
        below = [e for e, v in by_expand.items() if e is not None and v <= target]
        above = [e for e, v in by_expand.items() if e is not None and v > target]
        expands = {max(below, default=None), min(above, default=None)} - {None} or {None}
        for expand in expands:
            guess = aspect * math.sqrt(target / by_expand[expand])
            for candidate in sorted({max(1, round(guess) + d) for d in range(-3, 4)} - {aspect}):
                extra = (f"--aspect_ratio={candidate}",) + ((f"--mamba_expand={expand}",) if expand else ())
                for relaxed in relaxations(pattern, candidate * int(base["depth"])):
                    found = size(extra + relaxed)
                    if found is not None:
                        tried[extra + relaxed] = found
                        break
        best = min(tried, key=lambda extra: error(tried[extra]))
    return list(best), tried[best], target


def main(argv):
    if len(argv) < 4 or argv[3] not in ("params", "flops"):
        print("usage: match_sizes.py BASE_TRAIN CONFIG PATTERN params|flops [--key=value ...]", file=sys.stderr)
        return 2
    base_train, config, pattern, metric, overrides = argv[0], argv[1], argv[2], argv[3], argv[4:]
    try:
        extra, value, target = match(base_train, config, pattern, metric, overrides)
    except MatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{' '.join(extra)}|{value:.0f}|{target:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
