#!/usr/bin/env bash
# real_text_sweep.sh — a block-pattern comparison on real English text on a laptop CPU.
#
#   scripts/real_text_sweep.sh [--out out/real_text] [--patterns all-T,all-M,all-M2,alternating] [--seeds 0,1]
#                              [--steps 150] [--vocab_size 4096] [--key=value ...]
#
# The text is the King James Bible (public domain) as Debian ships it (the bible-kjv and
# bible-kjv-text packages, installed when missing): 4.3 MB of English, one document per chapter
# (1,189 documents of about 3.6 KB, longer than the 256-token training length, so the
# evaluation at 2× and 4× that length measures extrapolation within a document). Then:
#   1. OUT/corpus/kjv.jsonl — the chapters, verse numbers dropped, one verse per line;
#   2. OUT/tokenizer        — tok_train with --vocab_size (default 4096);
#   3. OUT/shards           — tokenize, 5% of the chapters (evenly spaced) for validation, so every
#                             run of every pattern and seed is scored on the same text;
#   4. OUT/sweep            — scripts/pattern_sweep.sh on configs/tiny_cpu.json with these shards,
#                             block parameters matched to all-T's (--match params), validation also
#                             at 2× and 4× the training length (--extrapolate_to=4), and its report
#                             (OUT/sweep/report.html, report.md, charts/).
# Each step is skipped when its output is there, and the sweep resumes, so running the same command
# again continues. --key=value overrides go to every run; the keys the sweep sets itself (out_dir,
# model_tag, block_pattern, seed, resume, overwrite) are refused, naming the flag to use. Every
# argument (overrides, patterns, seeds, steps) is checked before any work.
# The defaults take about 19 minutes on a 2-core CPU (docs/BENCHMARKS.md "Real English").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${HGPT_BUILD_DIR:-$ROOT/build}"
PYTHON="${HGPT_PYTHON:-$ROOT/.venv/bin/python}"

out="out/real_text"
patterns="all-T,all-M,all-M2,alternating"
seeds="0,1"
steps="150"
vocab_size="4096"
overrides=()

die() { printf 'error: %s\n' "$*" >&2; exit 2; }
source "$ROOT/scripts/sweep_checks.sh"
log() { printf '[real_text] %s\n' "$*"; }

while (($#)); do
  case "$1" in
    --out|--patterns|--seeds|--steps|--vocab_size)
      (($# >= 2)) || die "$1 needs a value"
      declare "${1#--}=$2"; shift 2 ;;
    --out=*|--patterns=*|--seeds=*|--steps=*|--vocab_size=*)
      flag="${1%%=*}"; declare "${flag#--}=${1#*=}"; shift ;;
    -h|--help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --data=*|--tokenizer=*) die "the script makes the data and the tokenizer itself: ${1%%=*} is not an override here" ;;
    --*=*) refuse_sweep_owned_key "$1"; overrides+=("$1"); shift ;;
    *) die "unexpected argument '$1' (see --help)" ;;
  esac
done
[[ "$vocab_size" =~ ^[1-9][0-9]{2,6}$ ]] && ((vocab_size >= 265)) ||
  die "--vocab_size must be an integer in [265, 9999999], got '$vocab_size'"
for tool in tok_train tokenize base_train; do
  [[ -x "$BUILD/$tool" ]] || die "$BUILD/$tool not found; build it first with scripts/setup.sh"
done
[[ -x "$PYTHON" ]] || die "$PYTHON not found; scripts/setup.sh creates .venv (or set HGPT_PYTHON)"
refuse_unusable_out "$out"
# Every argument the sweep will get, checked now (on the built-in corpus, as the data is not made
# yet): a mistyped override must not stop the sweep only after the corpus, tokenizer and shards.
bash "$ROOT/scripts/pattern_sweep.sh" --check --config "$ROOT/configs/tiny_cpu.json" --patterns "$patterns" \
  --seeds "$seeds" --steps "$steps" --out "$out/sweep" "--vocab_size=$vocab_size" "${overrides[@]}" >/dev/null ||
  exit $?
mkdir -p "$out/corpus"

# ---------------------------------------------------------------------------------------------
# 1. The corpus: Debian's KJV text, printed by its `bible` program, one JSONL line per chapter.
corpus="$out/corpus/kjv.jsonl"
if [[ ! -s "$corpus" ]]; then
  bash "$ROOT/scripts/install_debian_packages.sh" bible-kjv bible-kjv-text
  command -v bible >/dev/null || die "the 'bible' program (Debian package bible-kjv) is not installed"
  log "writing $corpus from the bible-kjv text"
  # `bible -l1000` prints "Book N" on a line of its own before each chapter, then the verses, one
  # per line, as "  V text" (a width of 1000 columns: no verse is wrapped).
  bible -l1000 gen1:1-rev22:21 | "$PYTHON" -c '
import json, sys
chapters = []
for line in sys.stdin.read().split("\n"):
    if line.startswith(" "):  # a verse: its text without the number
        chapters[-1].append(line.strip().split(" ", 1)[1])
    elif line.strip():        # a chapter title
        chapters.append([line.strip()])
for lines in chapters:
    print(json.dumps({"text": "\n".join(lines)}))
print(f"[real_text] {len(chapters)} chapters", file=sys.stderr)
' >"$corpus.partial"
  mv "$corpus.partial" "$corpus"
fi

# ---------------------------------------------------------------------------------------------
# 2-3. The tokenizer and the token shards.
tok="$out/tokenizer"
if [[ -f "$tok/tokenizer.json" ]]; then  # made by an earlier run of this script: it must be the one asked for
  made=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("vocab_size", "?"))' "$tok/tokenizer.json")
  [[ "$made" == "$vocab_size" ]] ||
    die "$tok holds a tokenizer of $made tokens, not --vocab_size $vocab_size: give --vocab_size $made to continue, or another --out"
else
  log "training a tokenizer of $vocab_size tokens into $tok"
  "$BUILD/tok_train" --out "$tok" --vocab_size "$vocab_size" "$corpus"
fi
shards="$out/shards"
if [[ ! -d "$shards" ]]; then
  log "writing token shards into $shards (5% of the chapters for validation)"
  "$BUILD/tokenize" --tokenizer "$tok" --out "$shards" --val_fraction 0.05 "$corpus"
fi

# ---------------------------------------------------------------------------------------------
# 4. The sweep and its report.
# Length extrapolation (evaluation at 2× and 4× the training length) unless the overrides say otherwise.
[[ " ${overrides[*]} " == *" --extrapolate_to="* ]] || overrides+=("--extrapolate_to=4")
exec bash "$ROOT/scripts/pattern_sweep.sh" --config "$ROOT/configs/tiny_cpu.json" --patterns "$patterns" \
  --seeds "$seeds" --steps "$steps" --out "$out/sweep" --match params \
  "--data=$shards" "--tokenizer=$tok" "--vocab_size=$vocab_size" "${overrides[@]}"
