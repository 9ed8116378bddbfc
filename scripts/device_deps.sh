#!/usr/bin/env bash
# device_deps.sh — gather the build dependencies a bare GPU machine lacks into .deps/ (ignored by
# git), laid out as an install prefix: headers of nlohmann-json, CLI11, Gloo, PCRE2 and GoogleTest,
# their CMake package files, and the static GoogleTest and PCRE2 libraries. Run it here (after
# scripts/setup.sh), then carry .deps to the GPU machine, where scripts/device_check.sh uses it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
MULTIARCH=$(gcc -print-multiarch)
rm -rf "$DEPS"
mkdir -p "$DEPS/include" "$DEPS/share/cmake" "$DEPS/lib/$MULTIARCH/cmake"
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/gloo /usr/include/gtest /usr/include/gmock "$DEPS/include/"
cp /usr/include/pcre2.h "$DEPS/include/"
cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$DEPS/share/cmake/"
cp -r "/usr/lib/$MULTIARCH/cmake/GTest" "$DEPS/lib/$MULTIARCH/cmake/"
cp "/usr/lib/$MULTIARCH/"lib{gtest,gtest_main,gmock,gmock_main,pcre2-8}.a "$DEPS/lib/$MULTIARCH/"
du -sh "$DEPS"
