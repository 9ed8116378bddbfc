#!/usr/bin/env bash
# test.sh — set up (idempotent), build, and run the whole test suite with CTest.
# Extra arguments go to ctest, e.g. `scripts/test.sh -L unit` or `scripts/test.sh -R Config`.
# Tests labelled gpu skip with a message on machines without a CUDA device.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The tests compile the CUDA code wherever LibTorch and nvcc allow (HGPT_CUDA=AUTO), GPU or not.
HGPT_CUDA="${HGPT_CUDA:-AUTO}" bash "$ROOT/scripts/setup.sh"
cd "$ROOT/build"
ctest --output-on-failure --parallel "${HGPT_TEST_JOBS:-2}" "$@"
