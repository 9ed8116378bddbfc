#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets of fuzz/ with clang under AddressSanitizer +
# UndefinedBehaviorSanitizer, replay every saved regression input, then fuzz each target for a
# bounded time starting from its seed corpus.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     (default: 30 seconds, every fuzz_* target)
#
# Idempotent: installs clang and its runtime (libFuzzer, sanitizers) from Debian only when missing,
# configures build-fuzz/ once. Fails (exit 1) on any crash, sanitizer report, leak, an input that
# runs longer than 10 s, or an exception other than hgpt::UserError. libFuzzer then leaves the
# input as build-fuzz/artifacts/<target>-crash-*: copy it to fuzz/regressions/<target>/ and add a
# test in tests/<area>/ for the fault. Inputs found along the way go to build-fuzz/corpus/<target>/
# (fuzz/corpus/ holds the seeds and is only read).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-30}"
shift || true
BUILD_DIR="${HGPT_FUZZ_BUILD_DIR:-build-fuzz}"

log() { printf '[fuzz] %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# 1. clang, libFuzzer and the sanitizer runtimes (Debian's clang; libclang-rt-dev holds the runtimes)
bash "$ROOT/scripts/install_debian_packages.sh" clang libclang-rt-dev cmake ninja-build nlohmann-json3-dev libpcre2-dev

# ---------------------------------------------------------------------------------------------
# 2. Configure (once) and build
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  args=(-S fuzz -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++)
  command -v ccache >/dev/null && args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake "${args[@]}" >/dev/null
fi
log "building $BUILD_DIR"
cmake --build "$BUILD_DIR"

# ---------------------------------------------------------------------------------------------
# 3. Replay the regressions, then fuzz
targets=("$@")
if ((${#targets[@]} == 0)); then
  for src in fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"  # the targets' scratch files
mkdir -p "$BUILD_DIR/artifacts"
for t in "${targets[@]}"; do
  exe="$BUILD_DIR/$t"
  [[ -x "$exe" ]] || { log "no such target: $t"; exit 2; }
  if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
    log "$t: replaying fuzz/regressions/$t"
    "$exe" -timeout=10 fuzz/regressions/"$t"/* 2>&1 | tail -n 3
  fi
  mkdir -p "$BUILD_DIR/corpus/$t"
  log "$t: fuzzing for ${SECONDS_PER_TARGET}s"
  if ! "$exe" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$BUILD_DIR/artifacts/$t-" "$BUILD_DIR/corpus/$t" "fuzz/corpus/$t" \
      >"$BUILD_DIR/$t.log" 2>&1; then
    tail -n 60 "$BUILD_DIR/$t.log"
    log "$t: FAILED (input saved under $BUILD_DIR/artifacts/)"
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+ +DONE' "$BUILD_DIR/$t.log" | tail -n 2 | sed "s/^/[fuzz] $t: /"
done
log "all targets clean: ${targets[*]}"
