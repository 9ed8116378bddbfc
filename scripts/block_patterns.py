#!/usr/bin/env python3
"""block_patterns.py — the Mamba-hybrid strategies by name, at any depth, and a compact spelling.

    python3 scripts/block_patterns.py NAME DEPTH     # prints the pattern, e.g. TTTTTTTTTTTTMMMMMMMM

NAME is a strategy (case-insensitive) or a literal pattern of T/M/2 letters (2 = Mamba-2),
which passes through:

    all-T            every layer a Transformer block
    all-M            every layer a Mamba block
    all-M2           every layer a Mamba-2 block
    nemotron         Mamba-2 with few attention layers spaced evenly, none first or last, as in
                     Nemotron-H and Megatron-LM's hybrids: round(8% of the layers), at least one,
                     at layers floor((i + 1/2) · depth / n). At depth 20: 2 T at layers 5 and 15
    alternating      T M T M ..., attention first
    early-T-late-M   the first 60% of the layers T (rounded), the rest M: 12 T + 8 M at depth 20
    strategic        attention at key positions, the rest Mamba: the first tenth of the layers
                     (at least one), the middle layer, the last tenth, and one more two layers
                     before the last tenth (the "T M T T" ending). At depth 20:
                     T T M M M M M M M T M M M M M M T M T T (6 T, 14 M)

These are the strategies of the original Mamba-hybrid nanochat branch, whose configs README gives
each as a depth-20 list. Its strategic-placement list, ["T","T"] + ["M"]*6 + ["T"] + ["M"]*6 +
["T","M","T","T"], has 19 entries, so it cannot be used as is at depth 20; the rule above puts the
middle attention layer at layer 9 (the middle of 0..19) instead of 8, which is that list with one
more Mamba block before the middle attention layer. configs/hybrid_strategic_d20.json is this
pattern.
"""
import sys

STRATEGIES = ("all-T", "all-M", "alternating", "early-T-late-M", "strategic", "all-M2", "nemotron")
LETTERS = {"T", "M", "2"}
SHOWN = {"2": "M2"}  # how compact() spells a symbol


class PatternError(ValueError):
    pass


def strategic_positions(depth):
    """Layers that get attention under the strategic placement (0-based)."""
    tenth = max(1, (depth + 5) // 10)  # a tenth of the depth, rounded half up, at least one layer
    late = depth - tenth
    positions = set(range(tenth)) | {(depth - 1) // 2} | set(range(late, depth)) | {late - 2}
    return {p for p in positions if 0 <= p < depth}


def nemotron_positions(depth, ratio=0.08):
    """Layers that get attention in the Nemotron-style stack (0-based)."""
    n = max(1, round(ratio * depth))
    return {int((i + 0.5) * depth / n) for i in range(n)}


def expand(name, depth):
    """The pattern string (one T or M per layer) for a strategy name or a literal pattern."""
    if depth < 1:
        raise PatternError(f"depth must be at least 1, got {depth}")
    key = name.strip().lower()
    if key == "all-t":
        return "T" * depth
    if key == "all-m":
        return "M" * depth
    if key == "alternating":
        return ("TM" * depth)[:depth]
    if key == "early-t-late-m":
        n_t = (6 * depth + 5) // 10  # 60% rounded half up: 12 of 20, 2 of 4
        return "T" * n_t + "M" * (depth - n_t)
    if key == "strategic":
        t_layers = strategic_positions(depth)
        return "".join("T" if i in t_layers else "M" for i in range(depth))
    if key == "all-m2":
        return "2" * depth
    if key == "nemotron":
        t_layers = nemotron_positions(depth)
        return "".join("T" if i in t_layers else "2" for i in range(depth))
    literal = name.strip().upper()
    if literal and set(literal) <= LETTERS:
        if len(literal) != depth:
            raise PatternError(f"pattern '{name}' has {len(literal)} layers but the model has depth {depth}; "
                               f"give {depth} letters or a strategy name ({', '.join(STRATEGIES)})")
        return literal
    raise PatternError(f"unknown block pattern '{name}': use T/M/2 letters (e.g. TMTM, TT22) or one of "
                       f"{', '.join(STRATEGIES)}")


def compact(pattern):
    """A short spelling: 'T×12 M×8', '(T M)×10', 'T×2 M×7 T M×6 T M T×2', 'M2×5 T M2×9 T M2×4'."""
    if not pattern:
        return "T×0"
    shown = lambda symbol: SHOWN.get(symbol, symbol)
    for unit_len in range(2, min(4, len(pattern) // 2) + 1):  # the whole pattern a short repeated unit?
        unit = pattern[:unit_len]
        if len(pattern) % unit_len == 0 and unit * (len(pattern) // unit_len) == pattern and len(set(unit)) > 1:
            return f"({' '.join(shown(u) for u in unit)})×{len(pattern) // unit_len}"
    runs, start = [], 0
    for i in range(1, len(pattern) + 1):
        if i == len(pattern) or pattern[i] != pattern[start]:
            n = i - start
            runs.append(shown(pattern[start]) if n == 1 else f"{shown(pattern[start])}×{n}")
            start = i
    return " ".join(runs)


def main(argv):
    if len(argv) != 3 or not argv[2].isdigit():
        print("usage: block_patterns.py NAME DEPTH", file=sys.stderr)
        return 2
    try:
        print(expand(argv[1], int(argv[2])))
    except PatternError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
