#!/usr/bin/env bash
# Session 17 call 2: the final tree (wgmma prefill attention with both schedules, auto picks the
# overlapped one from 4096 keys): GPU tests + sanitizers (device_run e2e memcheck), attention Perf,
# and one 16384-token prompt per step end to end, SLIDESPARSE_PREFILL_ATTENTION=wgmma vs auto.
set -u
D=/tmp/ss; mkdir -p $D/bin $D/lib; tar xJf .carry_s17/bins.tar.xz -C $D/bin; tar xJf .carry_s17/libs.tar.xz -C $D/lib
export LD_LIBRARY_PATH=$D/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:${LD_LIBRARY_PATH:-}
R=$OUT/call2.txt; L=/tmp/logs2; mkdir -p $L
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv >>$R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 ))s] $*" >>$R; }
mv $D/bin/test_cli_bench_e2e $D/
mkdir -p /work/main/build/test_tmp 2>/dev/null
SS_CLI_OVERRIDE=$D/bin/slidesparse $D/test_cli_bench_e2e >$L/cli_bench_e2e.log 2>&1; st "test_cli_bench_e2e: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' $L/cli_bench_e2e.log | tr '\n' ' ')"
OUT=$L/dr SS_PREBUILT=$D/bin E2E_PARTS=memcheck,attention scripts/device_run.sh e2e >$L/device_run.log 2>&1; st "device_run e2e memcheck,attention: rc=$?"
cat $L/dr/summary.txt >>$R
grep -E '^\[  FAILED|Failure|wgmma\]|PrefillWgmma' -A2 $L/dr/*.log $L/dr/*/*.log 2>/dev/null | head -30 >>$R
grep -E 'wgmma\]' $L/dr/*.log 2>/dev/null >>$R
TUN=bench/results/h100/tuning_best.json
for k in wgmma auto auto wgmma; do
  [ $(( $(date +%s) - t0 )) -gt 350 ] && { st "skipped long e2e $k (time)"; continue; }
  o=$L/long_${k}_$(date +%s)
  SLIDESPARSE_PREFILL_ATTENTION=$k timeout 110 $D/bin/slidesparse bench e2e --arch qwen2.5-7b --mode prefill --pattern dense,2:4,6:8 \
    --quant int8 --M 16384 --prompt-len 16384 --reps 2 --profile --out $o --tuning $TUN >$o.log 2>&1
  st "long e2e attention=$k: rc=$?"
  python3 -c "import json,sys;[print('  $k',r['dtype'],r['pattern'],round(r['tokens_per_s']),round(r['ttft_ms'],2),r['sm_mhz'],r.get('gemm_backend_resolved'),{k:round(x,2) for k,x in r['profile_ms'].items() if k in ('attention','rmsnorm','silu_mul','rope_kv')},round(r['non_gemm_frac'],4)) for r in json.load(open(sys.argv[1]))]" $o/e2e.json >>$R 2>&1
done
tar czf $OUT/call2_logs.tar.gz -C $L .
