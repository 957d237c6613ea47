#!/usr/bin/env bash
# Session 20 call 1: the landed code (437b8f3, built on the CPU machine, carried as .carry_s20)
# on the GPU: every gpu test binary + memcheck of bench e2e on tiny-qwen2 + HF parity
# (device_run e2e, parts memcheck,hfcmp), the CLI bench-e2e tests, then Qwen2.5-7B prefill
# M = 16384 int8 + fp8 x dense / 2:4 / 6:8 --profile twice (the README's "current code" row).
set -u
D=/tmp/ss; mkdir -p $D/bin $D/lib; tar xJf .carry_s20/bins.tar.xz -C $D/bin; tar xJf .carry_s20/libs.tar.xz -C $D/lib
mv $D/bin/test_cli_bench_e2e $D/
export LD_LIBRARY_PATH=$D/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:${LD_LIBRARY_PATH:-}
R=$OUT/call1.txt; L=/tmp/logs1; mkdir -p $L
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv >>$R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 ))s] $*" >>$R; }
OUT=$L/dr SS_PREBUILT=$D/bin E2E_PARTS=memcheck,hfcmp E2E_SANITIZE_ATTENTION=0 scripts/device_run.sh e2e >$L/device_run.log 2>&1; st "device_run e2e memcheck,hfcmp: rc=$?"
cat $L/dr/summary.txt >>$R
grep -E '^\[  FAILED|Failure' -A3 $L/dr/*.log $L/dr/*/*.log 2>/dev/null | head -30 >>$R
SS_CLI_OVERRIDE=$D/bin/slidesparse $D/test_cli_bench_e2e >$L/cli_bench_e2e.log 2>&1; st "test_cli_bench_e2e: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' $L/cli_bench_e2e.log | tr '\n' ' ')"
TUN=bench/results/h100/tuning_best.json
e2e() {  # e2e RUN_NO
  local n=$1
  [ $(( $(date +%s) - t0 )) -gt ${2:-420} ] && { st "skipped e2e $n (time)"; return; }
  o=$L/e2e_$n
  timeout 150 $D/bin/slidesparse bench e2e --arch qwen2.5-7b --mode prefill --pattern dense,2:4,6:8 \
    --quant int8,fp8 --M 16384 --reps 2 --profile --out $o --tuning $TUN >$o.log 2>&1
  st "e2e $n: rc=$?"; cp $o/e2e.json $OUT/e2e_$n.json 2>/dev/null
  python3 -c "import json,sys;[print(' ',r['dtype'],r['pattern'],round(r['tokens_per_s']),round(r['ttft_ms'],2),r['sm_mhz'],{k:round(x,2) for k,x in r['profile_ms'].items() if k in ('attention','rmsnorm','silu_mul','rope_kv','gate_up')},round(r['non_gemm_frac'],4)) for r in json.load(open(sys.argv[1]))]" $o/e2e.json >>$R 2>&1
}
e2e 1 330; e2e 2 420
tar czf $OUT/call1_logs.tar.gz -C $L .
