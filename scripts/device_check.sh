#!/usr/bin/env bash
# device_check.sh — the whole GPU check in one run of at most 8 minutes on one GPU: build (only the
# targets needed), the `gpu` tests (the CUDA scan against the fp64 reference at test and
# production scale, fp16, mixed dtypes, non-contiguous inputs, extreme values; Mamba-2's chunked
# scan and block, sliding-window attention and the engine with windowed, attention-only and MLP-only
# layers against the CPU), compute-sanitizer (memcheck, racecheck, synccheck) over the
# scan, bench_scan at B=8 D=2560 L=2048 N=16 against the physical bounds, bench_ssd at a Mamba-2
# d20 layer's shape, bench_step on the d20 configs (mamba2_d20 too) and rtx3070_d16 with peak memory,
# bench_generate (inference) at d20 width, a short base_train over NCCL at world size 1, and
# bench_step on the Samba and Megatron-style configs and a sliding-window d20 stack.
#
#   scripts/device_check.sh [--dry-run] [--budget SECONDS] [RESULT_DIR]   (default: build-gpu/results)
#
# GPU mode (default) configures build-gpu/ against the machine's own torch (header-only and static
# dependencies from .deps/, made by scripts/device_deps.sh and carried along). --dry-run is the CPU
# mode for a machine without a GPU: it uses build/ and runs the same steps where they can run
# (the CPU scan and step at small sizes, Gloo instead of NCCL), skipping with a reason the rest.
#
# Every step appends one JSON line to RESULT_DIR/results.jsonl ({"step", "status": ok | fail |
# timeout | skipped, "seconds", "rc", "detail"}) and rewrites RESULT_DIR/table.md, so a run that
# is killed leaves every finished step's result; each step's output is in RESULT_DIR/<step>.log
# and benchmarks' JSON lines in RESULT_DIR/<step>.jsonl. A step runs under a timeout that never
# passes the budget (default 480 s); once the budget is spent the remaining steps are skipped.
# To add a step: one `step NAME SECONDS COMMAND...` line in the list at the bottom (a benchmark
# that prints JSON lines: `bench NAME SECONDS COMMAND...`).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DRY_RUN=0
BUDGET=480
RESULTS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --budget) BUDGET="$2"; shift ;;
    --budget=*) BUDGET="${1#*=}" ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    -*) echo "error: unknown option '$1' (use --dry-run, --budget SECONDS, RESULT_DIR)"; exit 2 ;;
    *) RESULTS="$1" ;;
  esac
  shift
done
if [[ $DRY_RUN == 1 ]]; then BUILD="${HGPT_BUILD_DIR:-$ROOT/build}"; else BUILD="$ROOT/build-gpu"; fi
RESULTS="${RESULTS:-$BUILD/results}"
mkdir -p "$RESULTS"
: >"$RESULTS/results.jsonl"
START=$(date +%s)

# ---- the step runner ------------------------------------------------------------------------
json_string() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

record() {  # NAME STATUS SECONDS RC DETAIL
  printf '{"step": "%s", "status": "%s", "seconds": %s, "rc": %s, "detail": %s}\n' \
    "$1" "$2" "$3" "$4" "$(json_string "$5")" >>"$RESULTS/results.jsonl"
  write_table
  printf '=== %-22s %-8s %4ss  %s\n' "$1" "$2" "$3" "$5"
}

skip() {  # NAME REASON
  record "$1" skipped 0 0 "$2"
}

# step NAME SECONDS COMMAND...: runs COMMAND with its output in RESULTS/NAME.log, under a timeout
# of SECONDS or what is left of the budget, whichever is less.
step() {
  local name="$1" limit="$2"
  shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  if ((left < 10)); then
    skip "$name" "budget of ${BUDGET}s spent"
    return
  fi
  ((limit > left)) && limit=$left
  local t0 rc status detail
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" >"$RESULTS/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=fail ;;
  esac
  detail=$(grep -E '^(error|fatal|FAILED|\[  FAILED|.*Segmentation|.*ERROR SUMMARY: [1-9])' "$RESULTS/$name.log" | head -3 | tr '\n' ' ')
  [[ -z $detail ]] && detail=$(tail -1 "$RESULTS/$name.log" | cut -c1-160)
  record "$name" "$status" $(($(date +%s) - t0)) "$rc" "$detail"
}

# bench NAME SECONDS COMMAND...: a step whose JSON lines on stdout also go to RESULTS/NAME.jsonl.
bench() {
  local name="$1" limit="$2"
  shift 2
  step "$name" "$limit" bash -c '"$@" | tee "$0"; exit "${PIPESTATUS[0]}"' "$RESULTS/$name.jsonl" "$@"
}

# The table: one row per step, then the benchmarks' figures (scan against its bounds, steps with
# peak memory against the estimate).
write_table() {
  python3 - "$RESULTS" <<'PYEOF'
import json, pathlib, sys
res = pathlib.Path(sys.argv[1])
def lines(path):
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try: out.append(json.loads(line))
            except ValueError: pass
    return out
rows = ["| step | status | s | detail |", "|---|---|---|---|"]
for r in lines(res / "results.jsonl"):
    rows.append(f"| {r['step']} | {r['status']} | {r['seconds']} | {r['detail'][:120]} |")
# Physical bounds of one bf16 forward at the production shape on an H200 (4.8 TB/s HBM, one
# hardware exp per (element, state) at the SFU rate): the data bound and the exp bound.
BOUND_MS = {"B=8,D=2560,L=2048,N=16": max(0.072, 0.18)}
scan = [r for p in sorted(res.glob("bench_scan*.jsonl")) for r in lines(p)]
if scan:
    rows += ["", "| scan impl | shape | fwd ms | fwd+bwd ms | bwd/fwd | fwd / bound | GB/s |", "|---|---|---|---|---|---|---|"]
    for r in scan:
        bound = BOUND_MS.get(r.get("shape"))
        fwd, fb = r.get("fwd_ms"), r.get("fwd_bwd_ms")
        ratio = f"{fwd / bound:.2f}x" if bound and fwd else "-"
        bwd = f"{(fb - fwd) / fwd:.2f}" if fwd and fb else "-"
        rows.append(f"| {r.get('impl')} | {r.get('shape')} | {fwd} | {fb} | {bwd} | {ratio} | {r.get('gb_per_s')} |")
ssd = [r for p in sorted(res.glob("bench_ssd*.jsonl")) for r in lines(p)]
if ssd:
    rows += ["", "| SSD pass | device | dtype | B, L, heads, headdim, N, Q | ms |", "|---|---|---|---|---|"]
    for r in ssd:
        rows.append(f"| {r.get('pass')} | {r.get('device')} | {r.get('dtype')} | {r.get('batch')}, {r.get('seq')}, "
                    f"{r.get('heads')}, {r.get('headdim')}, {r.get('dstate')}, {r.get('chunk')} | {r.get('median_ms')} |")
steps = [r for p in sorted(res.glob("step_*.jsonl")) for r in lines(p)]
if steps:
    rows += ["", "| config | pattern | ckpt | ms/step | tok/s | MFU % | peak MiB | estimate MiB | note |", "|---|---|---|---|---|---|---|---|---|"]
    mib = lambda b: f"{b / 2**20:.1f}" if isinstance(b, (int, float)) and b > 0 else "-"
    for r in steps:
        name, peak = pathlib.Path(r.get('config', '')).stem, r.get('peak_memory_bytes', -1)
        # The seed's RTX 3070 settings must fit an 8 GB card: peak allocated at most 7.5 GiB.
        note = f"peak ≤ 7.5 GiB: {'yes' if 0 < peak <= 7.5 * 2**30 else 'NO'}" if name == "rtx3070_d16" and r.get("device") != "cpu" else ""
        rows.append(f"| {name} | {r.get('block_pattern')} | {r.get('activation_checkpointing')} "
                    f"| {r.get('median_ms', 0):.1f} | {r.get('tok_per_s', 0):.0f} | {r.get('mfu_percent', '-')} "
                    f"| {mib(peak)} | {mib(r.get('estimated_memory_bytes'))} | {note} |")
(res / "table.md").write_text("\n".join(rows) + "\n")
PYEOF
}

# ---- the steps ------------------------------------------------------------------------------
TARGETS=(hgpt base_train bench_scan bench_ssd bench_step bench_generate test_gpu)
if [[ $DRY_RUN == 1 ]]; then
  echo "device_check (dry run on the CPU, build dir $BUILD), budget ${BUDGET}s"
  step build 300 cmake --build "$BUILD" --target "${TARGETS[@]}"
else
  PY=$(command -v python3)
  TORCH_PREFIX=$("$PY" -c "import torch; print(torch.utils.cmake_prefix_path)")
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  [[ -d .deps ]] || { echo "error: missing .deps/: run scripts/device_deps.sh on the build machine and carry it"; exit 2; }
  step build 210 bash -c "cmake -S . -B '$BUILD' -G Ninja -DCMAKE_BUILD_TYPE=Release -DHGPT_CUDA=ON \
    -DHGPT_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH='$TORCH_PREFIX;$ROOT/.deps' \
    -DCMAKE_CXX_FLAGS='-I$ROOT/.deps/include' && ninja -C '$BUILD' -j$(nproc) ${TARGETS[*]}"
fi
if ! grep -q '"step": "build", "status": "ok"' "$RESULTS/results.jsonl"; then
  echo "build failed: see $RESULTS/build.log"
  exit 1
fi

# The gpu tests (on the CPU they skip, each with its message).
step gpu_tests 90 bash -c "cd '$BUILD' && ctest -L gpu --output-on-failure --timeout 80"

# compute-sanitizer over the scan's forward and backward at L ∈ {1, 511, 513}, N ∈ {1, 7, 64},
# with and without z (the SelectiveScanCudaSanitized tests).
SANITIZED=("$BUILD/test_gpu" --gtest_filter='SelectiveScanCudaSanitized.*')
for tool in memcheck racecheck synccheck; do
  if [[ $DRY_RUN == 1 ]] || ! command -v compute-sanitizer >/dev/null; then
    skip "sanitizer_$tool" "needs a GPU and compute-sanitizer"
  else
    # Only the scan's kernels are checked (kernel-name substring "scan_"); the reference runs natively.
    step "sanitizer_$tool" 40 compute-sanitizer --tool "$tool" --kernel-name kns=scan_ --error-exitcode 1 "${SANITIZED[@]}"
  fi
done

# The scan at the production shape (bf16) against the bounds; the CPU mode times a small shape.
if [[ $DRY_RUN == 1 ]]; then
  bench bench_scan 60 "$BUILD/bench_scan" --json --skip-gpu --cpu-batch 1 --cpu-dim 64 --cpu-seqlen 512 \
    --warmup 1 --repeats 2 --ref-repeats 1
else
  bench bench_scan 45 "$BUILD/bench_scan" --json --skip-cpu --gpu-batch 8 --gpu-dim 2560 --gpu-seqlen 2048 \
    --gpu-dstate 16 --gpu-dtype bf16 --warmup 3 --repeats 10 --ref-warmup 1 --ref-repeats 2
  # The same inputs as the Mamba mixer passes them ((B, L, ·) memory): the launcher's copies to
  # (B, D, L) included, to see what a kernel reading that layout would save.
  bench bench_scan_channels_last 20 "$BUILD/bench_scan" --json --skip-cpu --skip-reference --gpu-batch 8 \
    --gpu-dim 2560 --gpu-seqlen 2048 --gpu-dstate 16 --gpu-dtype bf16 --gpu-channels-last --warmup 3 --repeats 10
fi

# Mamba-2's chunked scan (its tests are in gpu_tests): forward and forward + backward at a d20
# layer's shape with 80 heads (B=4, L=2048, headdim 64, N=128), fp32 and bf16; the CPU mode times
# the CPU op at the benchmark shape of docs/BENCHMARKS.md.
if [[ $DRY_RUN == 1 ]]; then
  bench bench_ssd 60 "$BUILD/bench_ssd" --json --batch 2 --seq 512 --heads 4 --headdim 32 --dstate 32 --repeats 2 --warmup 1
else
  for dtype in fp32 bf16; do
    bench "bench_ssd_$dtype" 30 "$BUILD/bench_ssd" --json --device cuda --dtype "$dtype" --batch 4 --seq 2048 \
      --heads 80 --headdim 64 --dstate 128 --chunk 256 --repeats 10 --warmup 3
  done
fi

# Training steps: tok/s, MFU (the honest FLOP count), peak memory next to the estimate. The d20
# configs on the built-in corpus (no token shards on the device) with 2 micro-steps per step;
# rtx3070_d16 at its own settings (seq 1024, device batch 4) with 4 micro-steps.
if [[ $DRY_RUN == 1 ]]; then
  SMALL=(--device=cpu --data=synthetic --depth=2 --aspect_ratio=64 --max_seq_len=64 --device_batch_size=2
         --total_batch_size=256 --vocab_size=1024 --steps 2 --warmup 1)
  declare -A PATTERN=([transformer_d20]=TT [mamba_d20]=MM [mamba2_d20]=22 [hybrid_alternating_d20]=TM [rtx3070_d16]=TM)
  for cfg in transformer_d20 mamba_d20 mamba2_d20 hybrid_alternating_d20 rtx3070_d16; do
    bench "step_$cfg" 60 "$BUILD/bench_step" "configs/$cfg.json" "${SMALL[@]}" --block_pattern="${PATTERN[$cfg]}" --json
  done
else
  for cfg in transformer_d20 mamba_d20 mamba2_d20 hybrid_alternating_d20; do
    bench "step_$cfg" 35 "$BUILD/bench_step" "configs/$cfg.json" --device=cuda --data=synthetic \
      --total_batch_size=131072 --steps 2 --warmup 1 --json
  done
  bench step_rtx3070_d16 30 "$BUILD/bench_step" configs/rtx3070_d16.json --device=cuda --data=synthetic \
    --total_batch_size=16384 --steps 2 --warmup 1 --json
fi

# document_boundaries "reset" against "cross" (the step above): the block-diagonal attention mask
# and the scans' reset flags at d20 (T, M and M2 stacks).
if [[ $DRY_RUN == 1 ]]; then
  for pattern in TT MM 22; do
    bench "step_reset_$pattern" 60 "$BUILD/bench_step" configs/transformer_d20.json "${SMALL[@]}" \
      --block_pattern=$pattern --document_boundaries=reset --json
  done
else
  for cfg in transformer_d20 mamba_d20 mamba2_d20; do
    bench "step_reset_$cfg" 35 "$BUILD/bench_step" "configs/$cfg.json" --device=cuda --data=synthetic \
      --document_boundaries=reset --total_batch_size=131072 --steps 2 --warmup 1 --json
  done
fi

# Inference (bench_generate): all-T, all-M and alternating models of equal depth and width,
# prefill and decode tok/s and state bytes per sequence; nanochat d20's width in bf16 on the GPU.
if [[ $DRY_RUN == 1 ]]; then
  bench bench_generate 60 "$BUILD/bench_generate" --device=cpu --depth=2 --dim=64 --head_dim=32 --vocab=512 \
    --contexts 64,128 --batches 1,2 --decode_steps 4 --warmup 1 --json
else
  bench bench_generate 60 "$BUILD/bench_generate" --device=cuda --depth=20 --dim=1280 --head_dim=128 --vocab=65536 --json
fi

# base_train at world size 1 under a launcher's variables: the real backend (NCCL on the GPU,
# Gloo on the CPU) through rendezvous, collectives, evaluation and the final checkpoint.
DEVICE=cuda BACKEND=nccl
[[ $DRY_RUN == 1 ]] && DEVICE=cpu BACKEND=gloo
step base_train_world1 40 bash -c 'env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((20000 + RANDOM % 20000)) \
  "$0" configs/tiny_cpu.json --device="$1" --depth=2 --aspect_ratio=32 --head_dim=32 --max_seq_len=32 \
  --device_batch_size=4 --total_batch_size=128 --num_iterations=20 --eval_every=10 --eval_tokens=512 \
  --sample_every=0 --block_pattern=TM --out_dir="$2" | tee "$2.log" && grep -q "1 rank(s), backend $3" "$2.log" \
  && test -f "$2/d2/model_000020.pt"' "$BUILD/base_train" "$DEVICE" "$RESULTS/base_train_out" "$BACKEND"

# The layer kinds of the Samba and Megatron-style configs, and what the sliding window costs: a
# d20 stack of S blocks (window 512, a quarter of the sequence) beside step_transformer_d20 above
# (masked scaled_dot_product_attention, which computes every score and drops the hidden ones).
if [[ $DRY_RUN == 1 ]]; then
  bench step_samba_d24 60 "$BUILD/bench_step" configs/samba_d24.json "${SMALL[@]}" --depth=3 --block_pattern=M-S \
    --attn_window=16 --json
  bench step_hybrid_megatron_d40 60 "$BUILD/bench_step" configs/hybrid_megatron_d40.json "${SMALL[@]}" --depth=4 \
    --aspect_ratio=32 --hybrid_attention_ratio=0.25 --mamba2_headdim=32 --json
else
  bench step_swa_d20 35 "$BUILD/bench_step" configs/transformer_d20.json --device=cuda --data=synthetic \
    --block_pattern=SSSSSSSSSSSSSSSSSSSS --attn_window=512 --total_batch_size=131072 --steps 2 --warmup 1 --json
  for cfg in samba_d24 hybrid_megatron_d40; do
    bench "step_$cfg" 35 "$BUILD/bench_step" "configs/$cfg.json" --device=cuda --data=synthetic \
      --total_batch_size=131072 --steps 2 --warmup 1 --json
  done
fi

echo
cat "$RESULTS/table.md"
