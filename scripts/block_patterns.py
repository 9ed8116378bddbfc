#!/usr/bin/env python3
"""block_patterns.py — the Mamba-hybrid strategies by name, at any depth, and a compact spelling.

    python3 scripts/block_patterns.py NAME DEPTH     # prints the pattern, e.g. TTTTTTTTTTTTMMMMMMMM

NAME is a strategy (case-insensitive) or a literal pattern of block_pattern symbols, which
passes through: T (Transformer block), M (Mamba-1), 2 (Mamba-2), S (Transformer block with
sliding-window attention), * (attention alone), - (MLP alone).

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
    samba            Samba's layers (arXiv 2406.07522): Mamba, MLP, sliding-window attention, MLP,
                     repeated, i.e. units M - S (an S block is windowed attention + its MLP), cut
                     to the depth: M - S M - S at depth 6
    megatron         Megatron-LM's allocation (the hybrid_attention_ratio / hybrid_mlp_ratio
                     keys) with its 8B hybrid's ratios: 8% attention, at least one layer, 50%
                     MLP (at most the rest), the rest Mamba-2: M - * - at depth 4, M - - * M - at depth 6, and
                     M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M- (in Megatron's
                     notation) at depth 56

These are the strategies of the original Mamba-hybrid nanochat branch, whose configs README gives
each as a depth-20 list. Its strategic-placement list, ["T","T"] + ["M"]*6 + ["T"] + ["M"]*6 +
["T","M","T","T"], has 19 entries, so it cannot be used as is at depth 20; the rule above puts the
middle attention layer at layer 9 (the middle of 0..19) instead of 8, which is that list with one
more Mamba block before the middle attention layer. configs/hybrid_strategic_d20.json is this
pattern.
"""
import sys

STRATEGIES = ("all-T", "all-M", "alternating", "early-T-late-M", "strategic", "all-M2", "nemotron", "samba",
              "megatron")
LETTERS = {"T", "M", "2", "S", "*", "-"}
SHOWN = {"2": "M2", "S": "SWA", "*": "A", "-": "MLP"}  # how compact() spells a symbol (the trainer's names)


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


def megatron_allocation(depth, attention_ratio, mlp_ratio):
    """Megatron-LM's _allocate_auto in our symbols, as base_train's hybrid_attention_ratio /
    hybrid_mlp_ratio keys do it (src/model/hybrid_layer_pattern.cpp; a test compares the two):
    attention spaced evenly with Mamba-2 first and last, then MLPs spread over the Mamba layers."""
    layers = ["2"] * depth
    attention = round(depth * attention_ratio)  # Python's round, as Megatron's
    mamba = depth - attention
    section = mamba / (attention + 1)
    x = section
    for i in range(depth):
        if x < 0.5:
            layers[i] = "*"
            x += section
        else:
            x -= 1
    mlp = round(depth * mlp_ratio)
    if mlp > 0:
        per_mlp = (mamba - mlp) / mlp
        x = per_mlp
        for i in range(depth):
            if layers[i] == "2":
                if x < 0.5:
                    layers[i] = "-"
                    x += per_mlp
                else:
                    x -= 1
    return "".join(layers)


def expand(name, depth):
    """The pattern string (one symbol per layer) for a strategy name or a literal pattern."""
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
    if key == "samba":
        return ("M-S" * depth)[:depth]
    if key == "megatron":
        attention = max(0.08, 1 / depth)
        return megatron_allocation(depth, attention, min(0.5, 1 - attention))
    literal = name.strip().upper()
    if literal and set(literal) <= LETTERS:
        if len(literal) != depth:
            raise PatternError(f"pattern '{name}' has {len(literal)} layers but the model has depth {depth}; "
                               f"give {depth} letters or a strategy name ({', '.join(STRATEGIES)})")
        return literal
    raise PatternError(f"unknown block pattern '{name}': use T/M/2/S/*/- symbols (e.g. TMTM, TT22, 2-*-) or one of "
                       f"{', '.join(STRATEGIES)}")


def compact(pattern):
    """A short spelling: 'T×12 M×8', '(T M)×10', 'T×2 M×7 T M×6 T M T×2', 'M2×5 T M2×9 T M2×4',
    '(M MLP SWA)×2'."""
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
