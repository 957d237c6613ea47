#!/usr/bin/env bash
# Session 18 call 1: quant8 = fast path + fix of the flagged elements only, and e4m3's subnormal
# range on the fast path. New binaries: GPU tests + memcheck (device_run e2e), compute-sanitizer on
# the quantizer tests, engine_kernels Bandwidth (old kernels vs new, same test source, uniform and
# Gaussian inputs), then Qwen2.5-7B prefill M = 16384 int8 + fp8, new / old / new alternating.
set -u
D=/tmp/ss; mkdir -p $D/bin $D/lib; tar xJf .carry_s18/bins.tar.xz -C $D/bin; tar xJf .carry_s18/libs.tar.xz -C $D/lib
mv $D/bin/old $D/old; mv $D/bin/test_cli_bench_e2e $D/
export LD_LIBRARY_PATH=$D/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:${LD_LIBRARY_PATH:-}
R=$OUT/call1.txt; L=/tmp/logs1; mkdir -p $L
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv >>$R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 ))s] $*" >>$R; }
OUT=$L/dr SS_PREBUILT=$D/bin E2E_PARTS=memcheck E2E_SANITIZE_ATTENTION=0 scripts/device_run.sh e2e >$L/device_run.log 2>&1; st "device_run e2e memcheck: rc=$?"
cat $L/dr/summary.txt >>$R
grep -E '^\[  FAILED|Failure' -A3 $L/dr/*.log $L/dr/*/*.log 2>/dev/null | head -30 >>$R
SS_CLI_OVERRIDE=$D/bin/slidesparse $D/test_cli_bench_e2e >$L/cli_bench_e2e.log 2>&1; st "test_cli_bench_e2e: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' $L/cli_bench_e2e.log | tr '\n' ' ')"
compute-sanitizer --tool memcheck $D/bin/engine_kernels_test --gtest_filter='*Quantize*:*Prologue*' >$L/memcheck_quant.log 2>&1
st "memcheck engine_kernels Quantize*/Prologue*: rc=$? $(grep -E 'ERROR SUMMARY|PASSED|FAILED' $L/memcheck_quant.log | tr '\n' ' ')"
$D/old/engine_kernels_test --gtest_filter='*QuantizeTiny*' >$L/old_tiny.log 2>&1; st "old kernels, new test QuantizeTiny*: rc=$?"
TUN=bench/results/h100/tuning_best.json
e2e() {  # e2e RUN_NO BIN_DIR_NAME
  local n=$1 b=$2
  [ $(( $(date +%s) - t0 )) -gt ${3:-420} ] && { st "skipped e2e $n $b (time)"; return; }
  o=$L/e2e_${n}_$b
  timeout 140 $D/$b/slidesparse bench e2e --arch qwen2.5-7b --mode prefill --pattern dense,2:4,6:8 \
    --quant int8,fp8 --M 16384 --reps 2 --profile --out $o --tuning $TUN >$o.log 2>&1
  st "e2e $n $b: rc=$?"; cp $o/e2e.json $OUT/e2e_${n}_$b.json 2>/dev/null
  python3 -c "import json,sys;[print('  $b',r['dtype'],r['pattern'],round(r['tokens_per_s']),round(r['ttft_ms'],2),r['sm_mhz'],{k:round(x,2) for k,x in r['profile_ms'].items() if k in ('attention','rmsnorm','silu_mul','rope_kv','gate_up')},round(r['non_gemm_frac'],4)) for r in json.load(open(sys.argv[1]))]" $o/e2e.json >>$R 2>&1
}
e2e 1 bin; e2e 2 old
for b in bin old; do
  $D/$b/engine_kernels_test --gtest_also_run_disabled_tests --gtest_filter='*Bandwidth*' >$L/bw_$b.log 2>&1
  st "Bandwidth $b: rc=$?"; grep -E 'register row|silu_mul_prologue fast' $L/bw_$b.log | sed "s/^/  $b /" >>$R
done
e2e 3 bin 400; e2e 4 old 480
tar czf $OUT/call1_logs.tar.gz -C $L .
