#!/usr/bin/env bash
# One call on the GPU machine does everything: configure + build (Release, sm_90a), the gpu-labelled
# tests, a compute-sanitizer memcheck of one small GPU test, the tuner, the kernel benchmark, the
# PyTorch baseline and the plot. Writes summary.txt + logs + kernel.json/csv + tuning.json +
# torch_baseline.json + speedup.svg into $OUT (default: ./device_out).
#
#   scripts/device_run.sh short   # build, tests, memcheck, a small tune + bench (Qwen2.5-7B, int8/fp8)
#   scripts/device_run.sh full    # build, tune + full M sweep bench (Qwen2.5-7B, int8/fp8/bf16)
#   scripts/device_run.sh bench   # like full, without the tests (build dir reused if present)
#
# Environment: SS_PREBUILT (a directory with slidesparse, kernels_test, linear_test built elsewhere
# for sm_90a: skips the build and runs the gpu test binaries directly, saving device time),
# CUSPARSELT_ROOT (default: the device's PyTorch venv copy), SS_SYSROOT (a prefix with
# nlohmann-json, CLI11, GoogleTest and OpenBLAS when the machine lacks them), SS_MODELS (models for
# tune/bench, default qwen2.5-7b), SS_DTYPES (full mode, default int8,fp8,bf16), SS_BENCH_M / SS_TUNE_M (full mode M lists), SS_MEMCHECK_LINEAR=0 (skip the
# linear_test memcheck), SS_ARCH (default 90a-real), PYTHON (for the torch baseline).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-short}
OUT=${OUT:-$ROOT/device_out}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0))s]"; }

CUSPARSELT_ROOT=${CUSPARSELT_ROOT:-/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt}
[ -f "$CUSPARSELT_ROOT/include/cusparseLt.h" ] || CUSPARSELT_ROOT=$ROOT/.deps/cusparselt
export LD_LIBRARY_PATH=$CUSPARSELT_ROOT/lib:${LD_LIBRARY_PATH:-}
PREFIX=()
if [ -n "${SS_SYSROOT:-}" ] && [ -d "$SS_SYSROOT" ]; then
  PREFIX=(-DCMAKE_PREFIX_PATH="$SS_SYSROOT")
  export LD_LIBRARY_PATH=$SS_SYSROOT/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH
fi
MODELS=${SS_MODELS:-qwen2.5-7b}
PY=${PYTHON:-/opt/torch/.venv/bin/python}
command -v "$PY" >/dev/null 2>&1 || PY=python3

say "== SlideSparse device run ($MODE) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>/dev/null)"
say "nvcc: $(nvcc --version 2>/dev/null | tail -n1)"
say "cuSPARSELt: $(ls "$CUSPARSELT_ROOT"/lib 2>/dev/null | tr '\n' ' ') ($CUSPARSELT_ROOT)"
say "cuBLASLt: $(ls /usr/local/cuda/lib64/libcublasLt.so.* 2>/dev/null | head -n1)"

# ---- build ----------------------------------------------------------------------------------------
B=$ROOT/build-device
if [ -n "${SS_PREBUILT:-}" ] && [ -x "$SS_PREBUILT/slidesparse" ]; then
  say "$(stamp) build: prebuilt binaries from $SS_PREBUILT"
  mkdir -p "$B/bin"
  cp "$SS_PREBUILT"/* "$B/bin/"
elif [ ! -f "$B/CMakeCache.txt" ]; then
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${SS_ARCH:-90a-real}" \
    -DCUSPARSELT_ROOT="$CUSPARSELT_ROOT" "${PREFIX[@]}" >"$OUT/cmake.log" 2>&1
fi
if [ -n "${SS_PREBUILT:-}" ] && [ -x "$SS_PREBUILT/slidesparse" ]; then
  :
elif cmake --build "$B" -j "$(nproc)" >"$OUT/build.log" 2>&1; then
  say "$(stamp) build: ok"
else
  say "$(stamp) build: FAILED (tail of build.log follows)"
  tail -n 40 "$OUT/build.log" | tee -a "$SUMMARY"
  tail -n 20 "$OUT/cmake.log" 2>/dev/null | tee -a "$SUMMARY"
  exit 1
fi

# ---- tests ----------------------------------------------------------------------------------------
if [ "$MODE" != bench ]; then
  if [ -f "$B/CTestTestfile.cmake" ]; then
    (cd "$B" && ctest -L gpu --output-on-failure --timeout 300) >"$OUT/ctest_gpu.log" 2>&1
    rc=$?
    say "$(stamp) ctest -L gpu: rc=$rc; $(grep -E 'tests passed|tests failed' "$OUT/ctest_gpu.log" | tail -n1)"
    grep -E "^\s+[0-9]+ - .*(Failed|Not Run|Timeout)" "$OUT/ctest_gpu.log" | head -n 20 | tee -a "$SUMMARY"
  else
    # Prebuilt: the gpu-labelled test executables (exactly what ctest -L gpu runs).
    for t in "$B"/bin/*_test; do
      "$t" >"$OUT/$(basename "$t").log" 2>&1
      rc=$?
      say "$(stamp) $(basename "$t"): rc=$rc; $(grep -E '^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \]' "$OUT/$(basename "$t").log" | tr '\n' ' ')"
      grep -E '^\[  FAILED  \]' "$OUT/$(basename "$t").log" | head -n 10 | tee -a "$SUMMARY"
    done
  fi
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$CS" ]; then
    "$CS" --tool memcheck --leak-check full --error-exitcode 9 "$B/bin/kernels_test" \
      --gtest_filter='CudaKernels.LiftBitExact:CudaKernels.EpilogueBitExact:CudaKernels.SlideBuildBitExact' \
      >"$OUT/memcheck.log" 2>&1
    rc=$?
    say "$(stamp) compute-sanitizer memcheck (kernels_test lift/epilogue/slide_build): rc=$rc; $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -n1)"
    if [ "${SS_MEMCHECK_LINEAR:-1}" = 1 ]; then
      "$CS" --tool memcheck --error-exitcode 9 "$B/bin/linear_test" \
        --gtest_filter='Sm80_AutoLinear_int8.*:Sm80_SparseLinear.*' >"$OUT/memcheck_linear.log" 2>&1
      rc=$?
      say "$(stamp) compute-sanitizer memcheck (linear_test auto int8 + bad input): rc=$rc; $(grep -E 'ERROR SUMMARY' "$OUT/memcheck_linear.log" | tail -n1)"
    fi
  else
    say "compute-sanitizer: not found"
  fi
fi

# ---- tune + bench -----------------------------------------------------------------------------------
CLI=$B/bin/slidesparse
if [ "$MODE" = short ]; then
  TUNE_ARGS=(--model "$MODELS" --M 1,256,4096,16384 --dtype int8,fp8 --pattern 2:4,6:8 --split-k 1 --reps 3)
  BENCH_ARGS=(--model "$MODELS" --M 1,256,4096,16384 --dtype int8,fp8 --pattern 2:4,6:8 --reps 20)
  TORCH_M=256,4096,16384
else
  TUNE_ARGS=(--model "$MODELS" --M "${SS_TUNE_M:-1,16,64,256,1024,4096,16384}" --dtype "${SS_DTYPES:-int8,fp8,bf16}"
    --pattern 2:4,4:6,6:8,8:10 --split-k 1 --reps 2)
  BENCH_ARGS=(--model "$MODELS" --M "${SS_BENCH_M:-1,16,64,256,1024,4096,8192,16384,32768,65536}" --dtype "${SS_DTYPES:-int8,fp8,bf16}"
    --pattern 2:4,4:6,6:8,8:10 --reps 20)
  TORCH_M=${SS_BENCH_M:-1,16,64,256,1024,4096,8192,16384,32768,65536}
fi
if [ "${SS_SKIP_TUNE:-0}" != 1 ]; then
  "$CLI" tune "${TUNE_ARGS[@]}" --out "$OUT/tuning.json" >"$OUT/tune.log" 2>&1
  say "$(stamp) tune: rc=$? ($(grep -c '^tune' "$OUT/tune.log") searches; log tune.log)"
fi
TUNING=()
[ -f "$OUT/tuning.json" ] && TUNING=(--tuning "$OUT/tuning.json")
"$CLI" bench kernel "${BENCH_ARGS[@]}" "${TUNING[@]}" --out "$OUT" >"$OUT/bench.log" 2>&1
rc=$?
say "$(stamp) bench kernel: rc=$rc (log bench.log)"
[ $rc -ne 0 ] && tail -n 5 "$OUT/bench.log" | tee -a "$SUMMARY"
"$PY" bench/torch_baseline.py --model "$MODELS" --M "$TORCH_M" --out "$OUT/torch_baseline.json" \
  >"$OUT/torch.log" 2>&1
say "$(stamp) torch baseline: rc=$? (log torch.log)"
python3 scripts/plot.py "$OUT" >>"$SUMMARY" 2>&1
# The device tool returns a limited number of files: logs go into one archive.
(cd "$OUT" && tar czf logs.tar.gz --remove-files ./*.log 2>/dev/null)
say "$(stamp) done"
