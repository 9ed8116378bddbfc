#!/usr/bin/env bash
# setup.sh — the one place that installs what hybridgpt needs, then configures and builds it.
#
# Idempotent: each step checks before it acts, so running it again is cheap.
#   1. Debian packages (compiler, CMake, header-only libraries, GoogleTest, PCRE2, Open MPI, and
#      Gloo's headers, which LibTorch's ProcessGroupGloo.hpp includes but the wheel does not ship).
#   2. LibTorch from the pinned `torch` wheel in a project-local virtual environment (.venv),
#      unless Torch_DIR or CMAKE_PREFIX_PATH already points at a LibTorch.
#   3. matplotlib and the pinned tensorboard in .venv, for the training report (scripts/report.py;
#      tensorboard for its --tensorboard export), and the pinned pyarrow, whose Arrow C++ library
#      tok_train and tokenize read parquet with.
#   4. CMake configure (Release, Ninja) and build into build/.
#
# Environment knobs: HGPT_SKIP_APT=1 skips step 1, HGPT_SKIP_BUILD=1 stops after step 3,
# HGPT_BUILD_DIR (default build), HGPT_CMAKE_ARGS (extra configure arguments), HGPT_BUILD_TARGETS
# (build only these targets, e.g. "base_train"; default: everything), HGPT_CUDA (AUTO, ON or OFF:
# the CMake option; a build folder configured with another value is configured again).
set -euo pipefail

# The one pinned LibTorch: PyPI's torch 2.11.0 wheel is a CUDA 13 build (cu130), as on the GPU
# machines we test on. Change it here and nowhere else.
TORCH_VERSION="2.11.0"
# The pinned TensorBoard, whose writer torch's SummaryWriter uses (scripts/report.py --tensorboard):
# torch accepts any TensorBoard >= 1.15; 2.21.0 needs Python >= 3.9. Change it here and nowhere else.
TENSORBOARD_VERSION="2.21.0"
# The pinned pyarrow, whose wheel carries Apache Arrow's C++ headers and libraries: tok_train and
# tokenize read parquet through them. 26.0.1 has wheels for CPython 3.10-3.14 on x86-64 and
# aarch64 Linux (manylinux_2_28). Change it here and nowhere else.
PYARROW_VERSION="26.0.1"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${HGPT_BUILD_DIR:-build}"
VENV="$ROOT/.venv"

log() { printf '[setup] %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# 1. Debian packages
APT_PACKAGES=(g++ cmake ninja-build ccache git python3 python3-venv nlohmann-json3-dev
              libcli11-dev libgtest-dev libgmock-dev libpcre2-dev libgloo-dev openmpi-bin libopenmpi-dev)
if [[ "${HGPT_SKIP_APT:-0}" != 1 ]]; then
  bash "$ROOT/scripts/install_debian_packages.sh" "${APT_PACKAGES[@]}"
fi

# ---------------------------------------------------------------------------------------------
# 2. LibTorch: a user-provided one, else the pinned wheel in .venv
torch_prefix=""
if [[ -n "${Torch_DIR:-}" ]]; then
  log "using LibTorch from Torch_DIR=$Torch_DIR"
elif [[ -n "${CMAKE_PREFIX_PATH:-}" ]] && compgen -G "${CMAKE_PREFIX_PATH%%:*}/share/cmake/Torch/TorchConfig.cmake" >/dev/null; then
  log "using LibTorch from CMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH"
else
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  have=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
  if [[ "${have%%+*}" != "$TORCH_VERSION" ]]; then
    log "installing torch==$TORCH_VERSION into .venv (a few GB with its CUDA libraries; once)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" numpy
  fi
  torch_prefix=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
fi

# ---------------------------------------------------------------------------------------------
# 3. matplotlib and tensorboard in .venv for scripts/report.py (the charts; --tensorboard)
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV (for scripts/report.py)"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  log "installing matplotlib into .venv (for scripts/report.py)"
  "$VENV/bin/python" -m pip install -q matplotlib
fi
have_tb=$("$VENV/bin/python" -c 'import tensorboard; print(tensorboard.__version__)' 2>/dev/null || true)
if [[ "$have_tb" != "$TENSORBOARD_VERSION" ]]; then
  log "installing tensorboard==$TENSORBOARD_VERSION into .venv (for scripts/report.py --tensorboard)"
  "$VENV/bin/python" -m pip install -q "tensorboard==$TENSORBOARD_VERSION"
fi

have_pa=$("$VENV/bin/python" -c 'import pyarrow; print(pyarrow.__version__)' 2>/dev/null || true)
if [[ "$have_pa" != "$PYARROW_VERSION" ]]; then
  log "installing pyarrow==$PYARROW_VERSION into .venv (Apache Arrow's C++ library, for parquet input)"
  "$VENV/bin/python" -m pip install -q "pyarrow==$PYARROW_VERSION"
fi

[[ "${HGPT_SKIP_BUILD:-0}" == 1 ]] && exit 0

# ---------------------------------------------------------------------------------------------
# 4. Configure (once) and build
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  log "configuring $BUILD_DIR"
  args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release)
  [[ -n "$torch_prefix" ]] && args+=("-DCMAKE_PREFIX_PATH=$torch_prefix")
  [[ -x "$VENV/bin/python" ]] && args+=("-DPython3_EXECUTABLE=$VENV/bin/python")
  # ccache caches files compiled with a precompiled header only when told to ignore the
  # header's time stamps and macros (the build's own PCH is rebuilt whenever its inputs change).
  ccache_launcher="env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;ccache"
  command -v ccache >/dev/null && args+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$ccache_launcher" -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  [[ -n "${HGPT_CUDA:-}" ]] && args+=("-DHGPT_CUDA=$HGPT_CUDA")
  # shellcheck disable=SC2086
  cmake "${args[@]}" ${HGPT_CMAKE_ARGS:-}
fi
# HGPT_CUDA asked for, and the build folder was configured otherwise: configure it again.
cached_cuda=$(sed -n 's/^HGPT_CUDA:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
if [[ -n "${HGPT_CUDA:-}" && "$cached_cuda" != "$HGPT_CUDA" ]]; then
  log "configuring $BUILD_DIR with HGPT_CUDA=$HGPT_CUDA (was $cached_cuda)"
  cmake -S . -B "$BUILD_DIR" "-DHGPT_CUDA=$HGPT_CUDA" >/dev/null
fi
# A folder configured before pyarrow was installed: configure it again to find Arrow.
if grep -q '^HGPT_WITH_PARQUET_FOUND:INTERNAL=OFF' "$BUILD_DIR/CMakeCache.txt" &&
   "$VENV/bin/python" -c 'import pyarrow' 2>/dev/null; then
  log "configuring $BUILD_DIR again: pyarrow is installed now (parquet input)"
  cmake -S . -B "$BUILD_DIR" >/dev/null
fi
if [[ -n "${HGPT_BUILD_TARGETS:-}" ]]; then
  log "building $HGPT_BUILD_TARGETS in $BUILD_DIR"
  # shellcheck disable=SC2086
  cmake --build "$BUILD_DIR" --target ${HGPT_BUILD_TARGETS}
else
  log "building $BUILD_DIR"
  cmake --build "$BUILD_DIR"
fi
