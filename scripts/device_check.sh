#!/usr/bin/env bash
# device_check.sh — the whole GPU check in one run, for a machine with a CUDA GPU and PyTorch but
# no Debian packages: configure and build against that machine's own torch (header-only and static
# dependencies come from .deps/, made by scripts/device_deps.sh and carried along), run the `gpu`
# tests and the selective-scan tests, the scan and step benchmarks, and write a short table.
#
#   scripts/device_check.sh [RESULT_DIR]      (default: build-gpu/results)
#
# Everything it prints is also kept in RESULT_DIR (log.txt, bench_scan.jsonl, bench_step.jsonl,
# bench_generate.jsonl, table.md), so a run that hits a time limit still leaves what it had.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RESULTS="${1:-$ROOT/build-gpu/results}"
mkdir -p "$RESULTS"
exec > >(tee -a "$RESULTS/log.txt") 2>&1
step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

PY=$(command -v python3)
TORCH_PREFIX=$("$PY" -c "import torch; print(torch.utils.cmake_prefix_path)")
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

step "configure + build"
[[ -d .deps ]] || { echo "missing .deps/: run scripts/device_deps.sh on the build machine and carry it"; exit 2; }
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DHGPT_CUDA=ON \
  -DHGPT_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/.deps" \
  -DCMAKE_CXX_FLAGS="-I$ROOT/.deps/include" >"$RESULTS/configure.txt" 2>&1 || { tail -30 "$RESULTS/configure.txt"; exit 1; }
ninja -C build-gpu -j"$(nproc)" hgpt base_train bench_scan bench_step test_ops test_gpu || exit 1

step "gpu tests (CUDA scan vs reference, MambaBlock CUDA vs CPU, NCCL)"
(cd build-gpu && ctest -L gpu --output-on-failure --timeout 300)
step "selective-scan unit tests"
(cd build-gpu && ctest -R "Scan" -L unit --output-on-failure --timeout 300)

step "bench_scan"
./build-gpu/bench_scan --json | tee "$RESULTS/bench_scan.jsonl"
step "bench_step (tiny hybrid and T-only on the GPU)"
: >"$RESULTS/bench_step.jsonl"
for pattern in TTTT TMTM MMMM; do
  ./build-gpu/bench_step configs/tiny_cpu.json --device=cuda --block_pattern=$pattern --json \
    | tee -a "$RESULTS/bench_step.jsonl"
done

# --- inference benchmark (bench_generate): all-T, all-M and alternating at nanochat d20's width,
# bf16 autocast; its own target and its own result file, separate from the steps above.
step "bench_generate (inference: prefill/decode tok/s and state bytes, d20 width)"
ninja -C build-gpu bench_generate \
  && ./build-gpu/bench_generate --device=cuda --depth=20 --dim=1280 --head_dim=128 --vocab=65536 --json \
  | tee "$RESULTS/bench_generate.jsonl"

step "summary"
"$PY" - "$RESULTS" <<'PYEOF'
import json, sys, pathlib
res = pathlib.Path(sys.argv[1])
rows = ["| what | impl/config | shape | fwd ms | fwd+bwd ms | speed-up vs ref | GB/s |", "|---|---|---|---|---|---|---|"]
for line in (res / "bench_scan.jsonl").read_text().splitlines():
    try: r = json.loads(line)
    except ValueError: continue
    rows.append(f"| scan | {r.get('impl')} | {r.get('shape')} | {r.get('fwd_ms')} | {r.get('fwd_bwd_ms')} | {r.get('speedup_vs_reference')} | {r.get('gb_per_s')} |")
for line in (res / "bench_step.jsonl").read_text().splitlines():
    try: r = json.loads(line)
    except ValueError: continue
    rows.append(f"| step | {r.get('block_pattern', r.get('config'))} | | | {r.get('median_ms', r.get('step_ms'))} | tok/s {r.get('tok_per_s')} | |")
table = "\n".join(rows)
(res / "table.md").write_text(table + "\n")
print(table)
PYEOF
