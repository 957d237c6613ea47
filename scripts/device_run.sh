#!/usr/bin/env bash
# One call on the GPU machine does everything: configure + build (Release, sm_90a), the gpu-labelled
# tests, a compute-sanitizer memcheck of one small GPU test, the tuner, the kernel benchmark, the
# PyTorch baseline and the plot. Writes summary.txt + logs + kernel.json/csv + tuning.json +
# torch_baseline.json + speedup.svg into $OUT (default: ./device_out).
#
#   scripts/device_run.sh short   # build, tests, memcheck, a small tune + bench (Qwen2.5-7B, int8/fp8)
#   scripts/device_run.sh full    # build, tune + full M sweep bench (Qwen2.5-7B, int8/fp8/bf16)
#   scripts/device_run.sh bench   # like full, without the tests (build dir reused if present)
#   scripts/device_run.sh e2e     # issue 5: gpu tests, engine memcheck, HF parity, bench e2e
#                                 # prefill/decode/profile/other models, HF baseline, e2e.svg
#                                 # (see the e2e section below for its parts, env vars and timing)
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
# Logs: $OUT (archived at the end) or, in e2e mode, a work folder archived into $OUT after every
# part: the device tool returns at most 8 files, also from a run cut off by its time limit.
LOGDIR=$OUT
if [ "$MODE" = e2e ]; then
  LOGDIR=${E2E_WORK:-/tmp/ss_e2e_work}
  rm -rf "$LOGDIR"
  mkdir -p "$LOGDIR"
fi
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
# The CUTLASS GEMMs when their headers are here (CUTLASS_ROOT, or .deps/cutlass carried along).
CUTLASS_ON=()
[ -n "${CUTLASS_ROOT:-}" ] || [ -f "$ROOT/.deps/cutlass/include/cutlass/cutlass.h" ] &&
  CUTLASS_ON=(-DSLIDESPARSE_CUTLASS=ON)
B=$ROOT/build-device
if [ -n "${SS_PREBUILT:-}" ] && [ -x "$SS_PREBUILT/slidesparse" ]; then
  say "$(stamp) build: prebuilt binaries from $SS_PREBUILT"
  mkdir -p "$B/bin"
  cp "$SS_PREBUILT"/* "$B/bin/" 2>/dev/null
  # scripts/carry_bins.sh layout: .carry_<name>/bin + .carry_<name>/lib (OpenBLAS, gfortran)
  [ -d "$SS_PREBUILT/../lib" ] && export LD_LIBRARY_PATH=$(cd "$SS_PREBUILT/../lib" && pwd):$LD_LIBRARY_PATH
  export SS_CLI_OVERRIDE=$B/bin/slidesparse  # tests that run the CLI: not their build tree's path
elif [ ! -f "$B/CMakeCache.txt" ]; then
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${SS_ARCH:-90a-real}" \
    -DCUSPARSELT_ROOT="$CUSPARSELT_ROOT" "${PREFIX[@]}" "${CUTLASS_ON[@]}" >"$LOGDIR/cmake.log" 2>&1
fi
if [ -n "${SS_PREBUILT:-}" ] && [ -x "$SS_PREBUILT/slidesparse" ]; then
  :
elif cmake --build "$B" -j "$(nproc)" >"$LOGDIR/build.log" 2>&1; then
  say "$(stamp) build: ok"
else
  say "$(stamp) build: FAILED (tail of build.log follows)"
  tail -n 40 "$LOGDIR/build.log" | tee -a "$SUMMARY"
  tail -n 20 "$LOGDIR/cmake.log" 2>/dev/null | tee -a "$SUMMARY"
  exit 1
fi

# The binary's build (slidesparse --version): without the CUTLASS GEMMs `--gemm-backend best` runs
# the library GEMMs, so every W8A8 prefill figure of bench e2e changes (session 16's call 1).
version=$("$B/bin/slidesparse" --version 2>&1)
say "$version"
[[ "$version" == *CUTLASS* ]] ||
  say "WARNING: no CUTLASS GEMMs in this build: W8A8 linears run the library GEMMs (configure with -DSLIDESPARSE_CUTLASS=ON)"

# ---- tests ----------------------------------------------------------------------------------------
if [ "$MODE" != bench ] && [ "${SS_SKIP_TESTS:-0}" != 1 ]; then
  if [ -f "$B/CTestTestfile.cmake" ]; then
    (cd "$B" && ctest -L gpu --output-on-failure --timeout 300) >"$LOGDIR/ctest_gpu.log" 2>&1
    rc=$?
    say "$(stamp) ctest -L gpu: rc=$rc; $(grep -E 'tests passed|tests failed' "$LOGDIR/ctest_gpu.log" | tail -n1)"
    grep -E "^\s+[0-9]+ - .*(Failed|Not Run|Timeout)" "$LOGDIR/ctest_gpu.log" | head -n 20 | tee -a "$SUMMARY"
  else
    # Prebuilt: the gpu-labelled test executables (exactly what ctest -L gpu runs).
    for t in "$B"/bin/*_test; do
      [ -x "$t" ] || continue
      "$t" >"$LOGDIR/$(basename "$t").log" 2>&1
      rc=$?
      say "$(stamp) $(basename "$t"): rc=$rc; $(grep -E '^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \]' "$LOGDIR/$(basename "$t").log" | tr '\n' ' ')"
      grep -E '^\[  FAILED  \]' "$LOGDIR/$(basename "$t").log" | head -n 10 | tee -a "$SUMMARY"
    done
  fi
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ "$MODE" = e2e ] && [ "${SS_MEMCHECK_KERNELS:-0}" != 1 ]; then
    :  # e2e mode: the engine memcheck below instead of the linear-layer ones
  elif [ -x "$CS" ]; then
    "$CS" --tool memcheck --leak-check full --error-exitcode 9 "$B/bin/kernels_test" \
      --gtest_filter='CudaKernels.LiftBitExact:CudaKernels.EpilogueBitExact:CudaKernels.SlideBuildBitExact' \
      >"$LOGDIR/memcheck.log" 2>&1
    rc=$?
    say "$(stamp) compute-sanitizer memcheck (kernels_test lift/epilogue/slide_build): rc=$rc; $(grep -E 'ERROR SUMMARY' "$LOGDIR/memcheck.log" | tail -n1)"
    if [ "${SS_MEMCHECK_LINEAR:-1}" = 1 ]; then
      "$CS" --tool memcheck --error-exitcode 9 "$B/bin/linear_test" \
        --gtest_filter='Sm80_AutoLinear_int8.*:Sm80_SparseLinear.*' >"$LOGDIR/memcheck_linear.log" 2>&1
      rc=$?
      say "$(stamp) compute-sanitizer memcheck (linear_test auto int8 + bad input): rc=$rc; $(grep -E 'ERROR SUMMARY' "$LOGDIR/memcheck_linear.log" | tail -n1)"
    fi
  else
    say "compute-sanitizer: not found"
  fi
fi

# ---- e2e (issue 5) ----------------------------------------------------------------------------------
# Parts (E2E_PARTS, comma list; default all, in this order). Work folder: $LOGDIR (logs + one folder
# per part); after every part it is archived into $OUT/e2e_work.tar.gz and the merged results are
# refreshed, so $OUT always holds <= 6 files (summary.txt, e2e.json, e2e.csv, e2e.svg,
# e2e_tables.txt, e2e_work.tar.gz) and a run cut off by the device tool's limit keeps what it did.
# Time: each part = model loads + measurement. Measured on an H200 (main a6cf09a): a synthetic
# Qwen2.5-7B load took 55-62 s before synthetic models repeated one drawn layer (int8 8.9 GB / bf16 15.4 GB weights; the engine drew weights on
# the host), prefill M=65536 took 1.0 s (int8) / 1.4 s (bf16) per step, decode 3.6-4.2 ms per step
# at B = 1..64. Per part, with L = one 7B load:
#   memcheck  compute-sanitizer memcheck of bench e2e on tiny-qwen2 (dense + 6:8, int8 + bf16,
#             prefill + decode: every engine kernel runs)                                     ~25 s
#   hfcmp     scripts/hf_compare_cuda.py: logits + greedy generations vs transformers         ~80 s
#   prefill   Qwen2.5-7B, E2E_PATTERNS x E2E_QUANTS + bf16 E2E_BF16_PATTERNS, M = E2E_M:
#             7 loads + (warmup + reps) x sum(M) tokens                                  7 L + ~90 s
#   decode    Qwen2.5-7B, E2E_DECODE_PATTERNS x E2E_DECODE_QUANTS + bf16 dense, E2E_BATCH:
#             E2E_DECODE_ROUNDS (2) interleaved rounds of 4 loads + (warmup + reps) x 128 steps per B
#   profile   Qwen2.5-7B --profile at M = 16384: int8 dense + 6:8, bf16 dense            3 L + ~10 s
#   others    E2E_OTHER_MODELS at M = 16384, E2E_OTHER_PATTERNS x E2E_OTHER_QUANTS   ~(1B+3B+2x7B) L
#   hf        bench/hf_e2e.py on the same config.json: prefill at E2E_M, decode at E2E_HF_BATCH ~90 s
#   attention attention_test's Perf (every prefill kernel, decode)                        ~10 s
#   longprompt M = 16384 as one 16384-token prompt, int8/bf16 dense/2:4/6:8 --profile, with
#             SLIDESPARSE_PREFILL_ATTENTION=mma128 and the default (wgmma on the H100)      ~3 min
#   enginebw  engine_kernels_test's Bandwidth (norm / SwiGLU prologues, both SwiGLU maths) ~20 s
#   ab        like swiglu for any engine switch: E2E_AB_VAR (e.g. SLIDESPARSE_PREFILL_ROPE) set to
#             each word of E2E_AB_RUNS in turn, or words VAR=VALUE[,VAR=VALUE] (not in the
#             default list)                                                       per run ~6 L + ~15 s
#   ncu       Nsight Compute --set full of single launches of Bandwidth's kernels (E2E_NCU; not in
#             the default list; logs in e2e_work.tar.gz)                          ~20 s per kernel
#   swiglu    M = 16384 --profile, E2E_QUANTS x E2E_PATTERNS, one run per word of E2E_SWIGLU_RUNS
#             (default "exact fast fast exact": SLIDESPARSE_SWIGLU per run; not in the default
#             list)                                                         per run ~6 L + ~15 s
# With L ~ 60 s the whole list is ~30 min: split it over device calls of <= 10 min with E2E_PARTS
# (E2E_PREVIOUS=<a previous call's e2e_work.tar.gz, carried back> merges its parts in), e.g.
#   call 1: E2E_PARTS=memcheck,hfcmp,hf,profile   call 2: E2E_PARTS=prefill   call 3: decode,others
# With faster loads (a few s) one call does everything. Every part runs under `timeout
# E2E_PART_TIMEOUT` (default 540 s); bench e2e rewrites its e2e.json after every model, so a part
# cut off by its timeout keeps the models it finished.
if [ "$MODE" = e2e ]; then
  CLI=$B/bin/slidesparse
  E=$LOGDIR/e2e
  mkdir -p "$E"
  if [ -n "${E2E_PREVIOUS:-}" ] && [ -f "$E2E_PREVIOUS" ]; then  # a previous call's e2e_work.tar.gz
    tar xzf "$E2E_PREVIOUS" -C "$LOGDIR" && say "$(stamp) merged previous parts from $E2E_PREVIOUS"
  fi
  PARTS=",${E2E_PARTS:-memcheck,attention,hfcmp,prefill,decode,profile,longprompt,others,hf},"
  TMO=${E2E_PART_TIMEOUT:-540}
  ARCH=${E2E_ARCH:-qwen2.5-7b}
  PATS=${E2E_PATTERNS:-dense,2:4,6:8}
  QUANTS=${E2E_QUANTS:-int8,fp8}
  EM=${E2E_M:-512,2048,8192,16384,65536}
  EB=${E2E_BATCH:-1,16,64,256,512}
  REPS=${E2E_REPS:-5}
  DROUNDS=${E2E_DECODE_ROUNDS:-2}  # decode: interleaved rounds, the last reported (docs/e2e.md)
  has() { [[ "$PARTS" == *",$1,"* ]]; }
  # Merged results + tables into $OUT, work folder archived into $OUT.
  publish() {
    mapfile -t J < <(ls "$E"/*/e2e.json "$E"/hf_e2e_*.json 2>/dev/null | grep -v /memcheck/)
    if [ ${#J[@]} -gt 0 ]; then
      python3 scripts/plot_e2e.py --out "$OUT" "${J[@]}" >"$OUT/e2e_tables.txt" 2>&1
    fi
    tar czf "$OUT/e2e_work.tar.gz" -C "$LOGDIR" . 2>/dev/null
  }
  # part NAME LOG CMD...: runs CMD under the timeout, logs to $LOGDIR/LOG, one summary line.
  part() {
    local name=$1 log=$2
    shift 2
    timeout "$TMO" "$@" >"$LOGDIR/$log" 2>&1
    local rc=$?
    say "$(stamp) $name: rc=$rc$([ $rc = 124 ] && echo ' (TIMEOUT)') (log $log)"
    [ $rc -ne 0 ] && tail -n 3 "$LOGDIR/$log" | tee -a "$SUMMARY"
    grep -E '^# .*loaded' "$LOGDIR/$log" | sed 's/^/  /' >>"$SUMMARY"
    publish
    return 0
  }
  if has memcheck; then
    CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    part "memcheck bench e2e tiny-qwen2" memcheck_e2e.log "$CS" --tool memcheck --error-exitcode 9 \
      "$CLI" bench e2e --arch tiny-qwen2 --pattern dense,6:8 --quant int8,none --M 64 --prompt-len 32 \
      --batch 3 --gen-len 4 --reps 1 --warmup 0 --out "$E/memcheck"
    say "  $(grep -E 'ERROR SUMMARY' "$LOGDIR/memcheck_e2e.log" | tail -n1)"
    # The prefill attention kernels (the wgmma one hands tiles over through mbarriers): memcheck,
    # synccheck, racecheck on the small cases (E2E_SANITIZE_ATTENTION=0 skips them).
    for tool in $([ "${E2E_SANITIZE_ATTENTION:-1}" = 1 ] && echo memcheck synccheck racecheck); do
      part "$tool attention_test PrefillSmall" "${tool}_attention.log" "$CS" --tool $tool \
        --error-exitcode 9 "$B/bin/attention_test" --gtest_filter='*PrefillSmall*'
      say "  $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGDIR/${tool}_attention.log" | tail -n1)"
    done
  fi
  if has attention; then  # kernel speed of every prefill kernel and of decode (docs/attention.md)
    part "attention_test Perf" attention_perf.log "$B/bin/attention_test" \
      --gtest_also_run_disabled_tests --gtest_filter='*Perf*'
    grep -E '^(prefill|decode) ' "$LOGDIR/attention_perf.log" | tee -a "$SUMMARY"
  fi
  if has longprompt; then  # one 16384-token prompt per step: mma.sync vs the default (wgmma)
    for k in mma128 auto; do
      part "bench e2e $ARCH prefill M=16384 --prompt-len 16384 attention=$k --profile" \
        "e2e_long_$k.log" env SLIDESPARSE_PREFILL_ATTENTION=$k "$CLI" bench e2e --arch "$ARCH" \
        --mode prefill --pattern dense,2:4,6:8 --quant int8,none --M 16384 --prompt-len 16384 \
        --reps 2 --profile --out "$E/long_$k" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
    done
  fi
  if has enginebw; then  # the engine's memory-bound kernels at engine sizes (GB/s, % of peak)
    part "engine_kernels_test Bandwidth" engine_bw.log "$B/bin/engine_kernels_test" \
      --gtest_also_run_disabled_tests --gtest_filter='*Bandwidth*'
    grep -E 'GB/s|fused saves' "$LOGDIR/engine_bw.log" | tee -a "$SUMMARY"
  fi
  if has swiglu; then  # SLIDESPARSE_SWIGLU=exact vs the default fast SwiGLU, same binary, --profile
    for math in ${E2E_SWIGLU_RUNS:-exact fast fast exact}; do
      n=$((${n:-0} + 1))
      part "bench e2e $ARCH prefill M=16384 --profile SwiGLU=$math (run $n)" "e2e_swiglu_${math}_$n.log" \
        env SLIDESPARSE_SWIGLU=$math "$CLI" bench e2e --arch "$ARCH" --mode prefill \
        --pattern "$PATS" --quant "$QUANTS" --M 16384 --reps 2 --profile \
        --out "$E/swiglu_${math}_$n" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
      grep -E "^$ARCH " "$LOGDIR/e2e_swiglu_${math}_$n.log" | tee -a "$SUMMARY"
    done
  fi
  if has ab; then  # engine switch A/B in one binary: each word of E2E_AB_RUNS, --profile
    # A word is a value of E2E_AB_VAR, or VAR=VALUE[,VAR=VALUE...] (several switches at once).
    for val in ${E2E_AB_RUNS:?E2E_AB_RUNS}; do
      n=$((${n:-0} + 1))
      if [[ "$val" == *=* ]]; then IFS=, read -r -a envs <<<"$val"; else envs=("$E2E_AB_VAR=$val"); fi
      tag=$(echo "$val" | sed 's/SLIDESPARSE_//g; s/[^A-Za-z0-9]/_/g')
      part "bench e2e $ARCH prefill M=16384 --profile ${envs[*]} (run $n)" "e2e_ab_${tag}_$n.log" \
        env "${envs[@]}" "$CLI" bench e2e --arch "$ARCH" --mode prefill \
        --pattern "$PATS" --quant "$QUANTS" --M 16384 --reps 2 --profile \
        --out "$E/ab_${tag}_$n" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
      grep -E "^$ARCH " "$LOGDIR/e2e_ab_${tag}_$n.log" | tee -a "$SUMMARY"
    done
  fi
  if has ncu; then  # Nsight Compute (--set full, real clocks) of single launches of Bandwidth's kernels
    NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
    # E2E_NCU: space-separated NAME=REGEX@SKIP (REGEX on mangled names; SKIP = launches of the
    # matching kernel before the profiled one: median_us runs 3 warm-up + 20 timed per case).
    # Defaults: the W8A8 norm without the add, CTA per row (int8 dense: the no-add case follows
    # the add one's 23 launches) and the register-row kernel (C = 3584: 7 chunks a thread, FULL),
    # the fast SwiGLU prologues int8 and fp8 dense (row_kernel<bf16, OP, OUT, FP8>).
    for spec in ${E2E_NCU:-norm_noadd_int8=row_kernelI13__nv_bfloat16Li0ELi1ELb0E@26 \
        norm_regs_int8=norm_reg_kernelI13__nv_bfloat16Lb0ELb0ELi7ELb1E@5 \
        silu_fast_int8=row_kernelI13__nv_bfloat16Li1ELi1ELb0E@5 \
        silu_fast_fp8=row_kernelI13__nv_bfloat16Li1ELi1ELb1E@5}; do
      nm=${spec%%=*} rx=${spec#*=}
      part "ncu $nm" "ncu_$nm.log" "$NCU" --set full --clock-control none --kernel-name-base mangled \
        -k "regex:${rx%@*}" --launch-skip "${rx##*@}" --launch-count 1 "$B/bin/engine_kernels_test" \
        --gtest_also_run_disabled_tests --gtest_filter='*Bandwidth*'
      grep -E 'Duration|DRAM Throughput|Compute \(SM\) Throughput|Issue Slots Busy|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|No Eligible|One or More Eligible' \
        "$LOGDIR/ncu_$nm.log" | sed 's/^ */  /' | tee -a "$SUMMARY"
    done
  fi
  if has hfcmp; then
    part "hf_compare_cuda.py" hf_compare_cuda.log "$PY" scripts/hf_compare_cuda.py --bin "$CLI" \
      --json "$E/hf_compare_cuda.json"
    grep -E '^\{|^hf_compare_cuda' "$LOGDIR/hf_compare_cuda.log" | tee -a "$SUMMARY"
  fi
  if has prefill; then
    part "bench e2e $ARCH prefill ($QUANTS x $PATS)" e2e_prefill_w8.log "$CLI" bench e2e --arch "$ARCH" \
      --mode prefill --pattern "$PATS" --quant "$QUANTS" --M "$EM" --reps "$REPS" --out "$E/prefill_w8" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
    part "bench e2e $ARCH prefill (bf16 ${E2E_BF16_PATTERNS:-dense})" e2e_prefill_bf16.log "$CLI" bench e2e \
      --arch "$ARCH" --mode prefill --pattern "${E2E_BF16_PATTERNS:-dense}" --quant none --M "$EM" \
      --reps "$REPS" --out "$E/prefill_bf16" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
  fi
  if has decode; then
    part "bench e2e $ARCH decode (${E2E_DECODE_QUANTS:-int8} x ${E2E_DECODE_PATTERNS:-$PATS})" \
      e2e_decode_w8.log "$CLI" bench e2e --arch "$ARCH" --mode decode \
      --pattern "${E2E_DECODE_PATTERNS:-$PATS}" --quant "${E2E_DECODE_QUANTS:-int8}" --batch "$EB" \
      --reps "$REPS" --rounds "$DROUNDS" --out "$E/decode_w8" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
    # e.g. E2E_DECODE_AUTO=6:8 E2E_TUNING=tuning.json: the `auto >= 0.98x dense` target (auto picks
    # sparse only where tuning data says it wins: without E2E_TUNING it runs dense throughout)
    if [ -n "${E2E_DECODE_AUTO:-}" ]; then
      part "bench e2e $ARCH decode auto ($E2E_DECODE_AUTO)" e2e_decode_auto.log "$CLI" bench e2e \
        --arch "$ARCH" --mode decode --linear-mode auto --pattern "dense,$E2E_DECODE_AUTO" \
        --quant "${E2E_DECODE_QUANTS:-int8}" --batch "$EB" --reps "$REPS" --rounds "$DROUNDS" --out "$E/decode_auto" \
        ${E2E_TUNING:+--tuning "$E2E_TUNING"}
    fi
    part "bench e2e $ARCH decode (bf16 dense)" e2e_decode_bf16.log "$CLI" bench e2e --arch "$ARCH" \
      --mode decode --pattern dense --quant none --batch "$EB" --reps "$REPS" --rounds "$DROUNDS" --out "$E/decode_bf16" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
  fi
  if has profile; then
    part "bench e2e $ARCH --profile M=16384 (int8 dense,6:8)" e2e_profile_w8.log "$CLI" bench e2e \
      --arch "$ARCH" --mode prefill --pattern dense,6:8 --quant int8 --M 16384 --reps 2 --profile \
      --out "$E/profile_w8" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
    part "bench e2e $ARCH --profile M=16384 (bf16 dense)" e2e_profile_bf16.log "$CLI" bench e2e \
      --arch "$ARCH" --mode prefill --pattern dense --quant none --M 16384 --reps 2 --profile \
      --out "$E/profile_bf16" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
  fi
  if has others; then
    for m in $(echo "${E2E_OTHER_MODELS:-llama3.2-1b,llama3.2-3b,qwen2.5-14b}" | tr ',' ' '); do
      part "bench e2e $m prefill M=16384" "e2e_$m.log" "$CLI" bench e2e --arch "$m" --mode prefill \
        --pattern "${E2E_OTHER_PATTERNS:-dense,6:8}" --quant "${E2E_OTHER_QUANTS:-int8}" --M 16384 \
        --reps "$REPS" --out "$E/other_$m" ${E2E_TUNING:+--tuning "$E2E_TUNING"}
    done
  fi
  if has hf; then
    "$CLI" synth --arch "$ARCH" --config-only --force --out "$LOGDIR/config_$ARCH" >/dev/null 2>&1
    part "HF transformers baseline $ARCH (bf16, sdpa)" hf_e2e.log "$PY" bench/hf_e2e.py \
      --config "$LOGDIR/config_$ARCH" --name "$ARCH" --M "$EM" --batch "${E2E_HF_BATCH:-1,16,64}" \
      --reps "${E2E_HF_REPS:-3}" --out "$E/hf_e2e_$ARCH.json"
  fi
  publish
  [ -f "$OUT/e2e_tables.txt" ] && cat "$OUT/e2e_tables.txt" >>"$SUMMARY"
  say "$(stamp) done (results: e2e.json e2e.csv e2e.svg e2e_tables.txt; logs + parts: e2e_work.tar.gz)"
  exit 0
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
  rc=$?  # before any $(...) below: a command substitution resets $?
  say "$(stamp) tune: rc=$rc ($(grep -c '^tune' "$OUT/tune.log") searches; log tune.log)"
fi
TUNING=()
[ -f "$OUT/tuning.json" ] && TUNING=(--tuning "$OUT/tuning.json")
"$CLI" bench kernel "${BENCH_ARGS[@]}" "${TUNING[@]}" --out "$OUT" >"$OUT/bench.log" 2>&1
rc=$?
say "$(stamp) bench kernel: rc=$rc (log bench.log)"
[ $rc -ne 0 ] && tail -n 5 "$OUT/bench.log" | tee -a "$SUMMARY"
"$PY" bench/torch_baseline.py --model "$MODELS" --M "$TORCH_M" --out "$OUT/torch_baseline.json" \
  >"$OUT/torch.log" 2>&1
rc=$?
say "$(stamp) torch baseline: rc=$rc (log torch.log)"
python3 scripts/plot.py "$OUT" >>"$SUMMARY" 2>&1
# The device tool returns a limited number of files: logs go into one archive.
(cd "$OUT" && tar czf logs.tar.gz --remove-files ./*.log 2>/dev/null)
say "$(stamp) done"
