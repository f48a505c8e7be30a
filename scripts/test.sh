#!/usr/bin/env bash
# Runs the whole test suite: configure + build (Release, warnings as errors), then every
# GoogleTest through ctest. With --fuzz SECONDS also runs the LaTeX-parser fuzzer that long.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
fuzz_seconds=0
if [ "${1:-}" = "--fuzz" ]; then fuzz_seconds="${2:-60}"; fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMETAMATH_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"

if [ "$fuzz_seconds" -gt 0 ]; then
  bash fuzz/run.sh "$fuzz_seconds"
fi
