#!/usr/bin/env bash
# pattern_sweep.sh — train each block pattern × seed with everything else equal, then one report.
#
#   scripts/pattern_sweep.sh [--config configs/tiny_cpu.json] [--patterns LIST] [--seeds 0,1,2]
#                            [--steps N] [--out out/sweep] [--match params|flops] [--key=value ...]
#
# --patterns  comma-separated strategy names, which scale to the config's depth (all-T, all-M,
#             alternating, early-T-late-M, strategic, all-M2, nemotron, samba, megatron:
#             scripts/block_patterns.py), or literal patterns (TMTM, TT22, 2-*-: block_pattern's
#             symbols, 2 = Mamba-2, S windowed T, * attention, - MLP; a run folder spells * as A);
#             default: the first five strategies.
# --seeds     comma-separated seeds (init and data order); default 0,1,2.
# --steps     num_iterations of every run; default: the config's.
# --out       the sweep directory: run <name>-s<seed>/ (checkpoints, metrics.jsonl, train.log)
#             for each pattern and seed, and report.html + report.md over all of them (and
#             each chart as charts/<chart>.png).
# --match     give each pattern the block parameters (params) or block FLOPs per token (flops)
#             of the all-T stack of the same config, within 2% where the knobs allow: its
#             mamba_expand, else also its width (scripts/match_sizes.py says how). Each run
#             folder keeps the result in sweep_match.json; report.py shows it and flags a miss.
# --check     check the arguments (config, overrides, patterns, seeds, steps) and exit without
#             training or writing anything (0 when all are good, 2 naming the first bad one).
# --key=value any other base_train override, applied to every run (e.g. --depth=8); the keys the
#             sweep sets itself (out_dir, model_tag, block_pattern, seed, resume, overwrite) are
#             refused, naming the flag to use. save_every defaults to a quarter of the steps.
#
# Runs differ only in block_pattern, seed and model_tag (and, with --match, the matched knobs):
# the same width, depth, data, tokens and learning rates. Re-running the same command skips finished runs, resumes interrupted ones from
# their checkpoint and restarts those stopped before their first. Exit codes: 0 done, 2 bad input, else the failing run's exit code.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_TRAIN="${HGPT_BUILD_DIR:-$ROOT/build}/base_train"
PYTHON="${HGPT_PYTHON:-$ROOT/.venv/bin/python}"

config="$ROOT/configs/tiny_cpu.json"
patterns="all-T,all-M,alternating,early-T-late-M,strategic"
seeds="0,1,2"
steps=""
out="out/sweep"
match=""
check_only=""
overrides=()
command_line=$(printf '%q ' "$0" "$@")

die() { printf 'error: %s\n' "$*" >&2; exit 2; }
source "$ROOT/scripts/sweep_checks.sh"
log() { printf '[sweep] %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# Arguments: our own flags (--flag VALUE or --flag=VALUE), the rest go to base_train.
while (($#)); do
  case "$1" in
    --config|--patterns|--seeds|--steps|--out|--match)
      (($# >= 2)) || die "$1 needs a value"
      declare "${1#--}=$2"; shift 2 ;;
    --config=*|--patterns=*|--seeds=*|--steps=*|--out=*|--match=*)
      flag="${1%%=*}"; declare "${flag#--}=${1#*=}"; shift ;;
    --check) check_only=1; shift ;;
    -h|--help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*=*) refuse_sweep_owned_key "$1"; overrides+=("$1"); shift ;;
    *) die "unexpected argument '$1'; base_train overrides are --key=value (see --help)" ;;
  esac
done
[[ -x "$BASE_TRAIN" ]] || die "$BASE_TRAIN not found; build it first with scripts/setup.sh"
[[ -x "$PYTHON" ]] || die "$PYTHON not found; scripts/setup.sh creates .venv (or set HGPT_PYTHON)"
[[ -f "$config" ]] || die "config '$config' not found"
[[ -z "$steps" || "$steps" =~ ^[1-9][0-9]{0,9}$ ]] || die "--steps must be a positive integer, got '$steps'"
# Seeds as base_train reads them: no leading zeros, at most 19 digits (below 2^64).
seed_re='(0|[1-9][0-9]{0,18})'
[[ "$seeds" =~ ^$seed_re(,$seed_re)*$ ]] ||
  die "--seeds must be comma-separated integers 0..9999999999999999999 without leading zeros, got '$seeds'"
[[ "$patterns" =~ [^,] ]] || die "--patterns is empty; give a comma-separated list (see --help)"
refuse_unusable_out "$out"
[[ -z "$match" || "$match" == params || "$match" == flops ]] || die "--match must be params or flops, got '$match'"
[[ -n "$steps" ]] && overrides+=("--num_iterations=$steps")

# ---------------------------------------------------------------------------------------------
# The shared setting: base_train checks the config and overrides once (any pattern fits
# block_pattern=null) and tells the depth and the number of steps.
summary=$("$BASE_TRAIN" "$config" "${overrides[@]}" --block_pattern=null --dry-run --json) || exit $?
read -r depth iterations < <("$PYTHON" -c 'import json,sys; s=json.load(sys.stdin); print(s["depth"], s["num_iterations"])' <<<"$summary")
# Checkpoints often enough that an interrupted run loses at most a quarter of its steps, unless
# the overrides say otherwise.
[[ " ${overrides[*]} " == *" --save_every="* ]] || overrides+=("--save_every=$(( (iterations + 3) / 4 ))")

# Each pattern as base_train reads it, checked as its run will be (data, tokenizer, device and the
# settings that only some block kinds use, such as mamba2_headdim), so no run is refused midway.
names=() pats=()
declare -A listed=()
IFS=',' read -ra pattern_list <<<"$patterns"
for name in "${pattern_list[@]}"; do
  [[ "$name" =~ ^[A-Za-z0-9*-]+$ ]] || die "pattern '$name' is neither block_pattern symbols nor a strategy name (see --help)"
  [[ -z "${listed[$name]:-}" ]] || die "pattern '$name' is listed twice in --patterns; give each once"
  listed[$name]=1
  pats+=("$("$PYTHON" "$ROOT/scripts/block_patterns.py" "$name" "$depth")") || exit 2
  names+=("$name")
  "$BASE_TRAIN" "$config" "${overrides[@]}" "--block_pattern=${pats[-1]}" --check >/dev/null || exit $?
done
IFS=',' read -ra seed_list <<<"$seeds"
declare -A seen=()
for seed in "${seed_list[@]}"; do
  [[ -z "${seen[$seed]:-}" ]] || die "seed $seed is listed twice in --seeds; give each once"
  seen[$seed]=1
done
[[ -z "$check_only" ]] || { log "arguments checked: ${#names[@]} pattern(s) × ${#seed_list[@]} seed(s)"; exit 0; }

# ---------------------------------------------------------------------------------------------
# --match: each pattern's extra overrides (the same on every run of the sweep, so resumes agree).
extras=() matched=()
for p in "${!names[@]}"; do
  extras+=("") matched+=("")
  [[ -n "$match" ]] || continue
  result=$("$PYTHON" "$ROOT/scripts/match_sizes.py" "$BASE_TRAIN" "$config" "${pats[p]}" "$match" "${overrides[@]}") ||
    exit 2
  IFS='|' read -r extra value target <<<"$result"
  extras[p]="$extra"
  matched[p]=$(printf '{"metric": "%s", "block": %s, "all_T": %s, "overrides": "%s"}' "$match" "$value" "$target" "$extra")
  log "${names[p]}: block $match $value vs all-T's $target$( [[ -n "$extra" ]] && echo " with $extra")"
done

# ---------------------------------------------------------------------------------------------
# A run already in --out continues (or is skipped as done) only with the settings it was trained
# with, so that one report never compares runs that differ in more than their pattern and seed.
# Free to change: how long a run trains and how often it logs, evaluates, samples and saves.
run_args() {  # base_train's arguments for pattern index $1, seed $2 (the run's own, without --resume)
  read -ra extra <<<"${extras[$1]}"
  local tag="${names[$1]//\*/A}-s$2"  # no glob character in a folder name
  printf '%s\0' "$config" "${overrides[@]}" "${extra[@]}" "--block_pattern=${pats[$1]}" "--seed=$2" \
    "--out_dir=$out" "--model_tag=$tag"
}
for p in "${!names[@]}"; do
  for seed in "${seed_list[@]}"; do
    dir="$out/${names[p]//\*/A}-s$seed"
    [[ -f "$dir/run.json" ]] || continue
    mapfile -d '' args < <(run_args "$p" "$seed")
    "$BASE_TRAIN" "${args[@]}" --dry-run --json | "$PYTHON" -c '
import json, sys
run_dir = sys.argv[1]
now = json.load(sys.stdin)["config"]
try:
    then = json.load(open(run_dir + "/run.json"))["config"]
except (OSError, ValueError, KeyError, TypeError):
    sys.exit(0)  # no readable record: base_train itself decides whether the folder can continue
free = {"resume", "overwrite", "num_iterations", "save_every", "log_every", "sample_every", "eval_every",
        "dist_timeout_s", "gloo_interface", "out_dir"}
differ = [k for k in sorted(set(now) | set(then)) if k not in free and now.get(k) != then.get(k)]
if differ:
    k = differ[0]
    more = " (and %d more keys)" % (len(differ) - 1) if len(differ) > 1 else ""
    print("error: %s was trained with %s=%s, this command gives %s=%s%s: continue the sweep with the settings it "
          "was started with (command.txt in its folder), or give another --out"
          % (run_dir, k, json.dumps(then.get(k)), k, json.dumps(now.get(k)), more), file=sys.stderr)
    sys.exit(2)
' "$dir" || exit $?
  done
done
mkdir -p "$out"
echo "$command_line" >"$out/command.txt"
log "${#names[@]} pattern(s) × ${#seed_list[@]} seed(s), depth $depth, $iterations steps each, into $out"

# ---------------------------------------------------------------------------------------------
# The runs: finished ones are skipped, interrupted ones resume from their newest checkpoint.
run_dirs=()
total=$(( ${#names[@]} * ${#seed_list[@]} )) i=0
for p in "${!names[@]}"; do
  for seed in "${seed_list[@]}"; do
    i=$((i + 1))
    tag="${names[p]//\*/A}-s$seed"  # no glob character in a folder name
    dir="$out/$tag"
    run_dirs+=("$dir")
    resume=(--resume=false) note=""  # fresh, whatever resume the config file holds
    if [[ -f "$dir/$(printf 'meta_%06d.json' "$iterations")" ]]; then
      log "$i/$total $tag: already done, skipped"; continue
    elif compgen -G "$dir/meta_*.json" >/dev/null; then
      resume=(--resume=true) note=" (resuming)"
    elif [[ -e "$dir/metrics.jsonl" ]]; then
      note=" (restarting: stopped before its first checkpoint)"  # a fresh run restarts metrics.jsonl
    fi
    log "$i/$total $tag: pattern ${pats[p]}$note; log in $dir/train.log"
    mkdir -p "$dir"
    [[ -z "${matched[p]}" ]] || echo "${matched[p]}" >"$dir/sweep_match.json"
    mapfile -d '' args < <(run_args "$p" "$seed")
    status=0
    "$BASE_TRAIN" "${args[@]}" "${resume[@]}" >>"$dir/train.log" 2>&1 || status=$?
    if ((status != 0)); then
      tail -n 5 "$dir/train.log" >&2
      if ((status == 2)); then
        log "$tag was refused (exit code 2: bad input, above); fix it, then the same command resumes the sweep"
      else
        log "$tag failed with exit code $status (log: $dir/train.log); the same command resumes the sweep"
      fi
      exit "$status"
    fi
    grep '^step .*val loss' "$dir/train.log" | tail -n 1 | sed 's/^/  /'
  done
done

# ---------------------------------------------------------------------------------------------
# The report over every run of the sweep.
"$PYTHON" "$ROOT/scripts/report.py" "${run_dirs[@]}" --out "$out/report.html" --save-charts "$out/charts"
