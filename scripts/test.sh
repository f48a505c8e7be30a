#!/usr/bin/env bash
# Runs the whole test suite: the format check (clang-format-14), configure + build (Release,
# warnings as errors), then every GoogleTest through ctest. With --fuzz SECONDS also runs the
# LaTeX-parser fuzzer that long.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
fuzz_seconds=0
if [ "${1:-}" = "--fuzz" ]; then fuzz_seconds="${2:-60}"; fi

# The CPU flags that decide which kernel paths run (ours: scalar / AVX2+FMA / AVX-512, see
# src/core/cpu.h; libtorch's bf16 GEMMs need AVX-512 BW/VL/DQ): failures can depend on them.
flags="$(grep -o -w -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512dq|avx512_bf16' /proc/cpuinfo \
  | sort -u | tr '\n' ' ')"
echo "test: CPU flags: ${flags:-(no AVX2)}; METAMATH_ISA=${METAMATH_ISA:-(unset: best available)}"

# Formatting is part of the suite: Google style, 100 columns (.clang-format), every C++ file.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t cxx_files < <(git ls-files '*.cpp' '*.h')
else
  mapfile -t cxx_files < <(find src tests bench fuzz -name node_modules -prune -o \
    \( -name '*.cpp' -o -name '*.h' \) -print)
fi
if ! clang-format-14 --dry-run --Werror "${cxx_files[@]}"; then
  echo "test: formatting differs from .clang-format: run clang-format-14 -i on the files above" >&2
  exit 1
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMETAMATH_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"

if [ "$fuzz_seconds" -gt 0 ]; then
  bash fuzz/run.sh "$fuzz_seconds"
fi
echo "test: done in ${SECONDS} s (CPU flags: ${flags:-(no AVX2)})"
