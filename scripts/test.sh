#!/usr/bin/env bash
# Sets up, builds and runs every test: the normal build (CUDA compiled when nvcc is present; GPU
# tests skip without a device) and an ASan+UBSan build of the CPU tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

echo "== build (release)"
# With nvcc, the CUTLASS sm90a GEMMs are compiled too (about 10 minutes on 2 cores): code that the
# tests do not build rots.
cutlass=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cutlass=(-DSLIDESPARSE_CUTLASS=ON)
fi
scripts/build.sh build "${cutlass[@]}"
echo "== tests (release)"
(cd build && ctest --output-on-failure -j "$jobs" --timeout 900)

if [ "${SS_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build (asan+ubsan, CPU only)"
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLIDESPARSE_SANITIZE=ON \
    -DSLIDESPARSE_CUDA=OFF
  echo "== tests (asan+ubsan: unit + e2e, not slow)"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j "$jobs" --timeout 900 -L 'unit|e2e' -LE slow -E format_check)
fi
