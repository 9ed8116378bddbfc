#!/usr/bin/env bash
# train.sh — set up (idempotent), build base_train alone (the tests, benchmarks and other tools are
# scripts/test.sh's), and train a config (default: the small CPU model on the built-in corpus).
# Extra arguments go to base_train, e.g. `scripts/train.sh configs/mamba_d20.json` or
# `scripts/train.sh configs/tiny_cpu.json --num_iterations=50`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A first build on a machine without an NVIDIA GPU leaves the CUDA code out (it could not run);
# scripts/test.sh configures it back in, so the tests still compile every GPU path.
if [[ -z "${HGPT_CUDA:-}" && ! -f "$ROOT/${HGPT_BUILD_DIR:-build}/build.ninja" ]] && ! nvidia-smi -L >/dev/null 2>&1; then
  export HGPT_CUDA=OFF
fi
HGPT_BUILD_TARGETS="${HGPT_BUILD_TARGETS:-base_train}" bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
if [[ $# -eq 0 || "$1" == --* ]]; then
  set -- configs/tiny_cpu.json "$@"
fi
exec "$ROOT/build/base_train" "$@"
