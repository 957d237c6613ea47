#!/usr/bin/env bash
# Session 16 call 3: persistent prefill attention v2 (cached load cursor) vs the committed kernel.
set -u
D=/tmp/ss; for v in new old; do mkdir -p $D/$v/bin; tar xJf .carry_s16/$v.tar.xz -C $D/$v/bin; done
mkdir -p $D/lib; tar xJf .carry_s16/libs.tar.xz -C $D/lib
export LD_LIBRARY_PATH=$D/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:${LD_LIBRARY_PATH:-}
R=$OUT/call3.txt; L=/tmp/logs; mkdir -p $L
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv >>$R
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
N=$D/new/bin O=$D/old/bin
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 ))s] $*" >>$R; }
$N/attention_test >$L/attention_test_new.log 2>&1; st "attention_test (new): rc=$? $(grep -E '^\[  (PASSED|FAILED) ' $L/attention_test_new.log | tr '\n' ' ')"
grep -E '^\[  FAILED' $L/attention_test_new.log >>$R
$N/cuda_model_test --gtest_filter='*WgmmaPrefill*' >$L/cuda_model_wgmma.log 2>&1; st "cuda_model_test WgmmaPrefill (new): rc=$? $(grep -E '^\[  (PASSED|FAILED) |max\|' $L/cuda_model_wgmma.log | tr '\n' ' ')"
for tool in memcheck synccheck racecheck; do
  $CS --tool $tool --error-exitcode 9 $N/attention_test --gtest_filter='*PrefillSmall*:*PrefillPersistent*' >$L/${tool}.log 2>&1
  st "$tool attention_test PrefillSmall+PrefillPersistent (new): rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $L/${tool}.log | tail -n1)"
done
for v in new old new old; do
  eval b=\$$( [ $v = new ] && echo N || echo O)
  $b/attention_test --gtest_also_run_disabled_tests --gtest_filter='*Perf*' >$L/perf_$v.log 2>&1
  st "Perf $v"; grep -E '^prefill .*(wgmma|mma128)' $L/perf_$v.log | sed "s/^/  $v /" >>$R
done
TUN=bench/results/h100/tuning_best.json
for v in new old new; do
  eval b=\$$( [ $v = new ] && echo N || echo O)
  o=$L/e2e_${v}_$(date +%s)
  $b/slidesparse bench e2e --arch qwen2.5-7b --mode prefill --pattern dense,2:4,6:8 --quant int8 --M 16384 \
    --reps 2 --profile --out $o --tuning $TUN >$o.log 2>&1
  st "e2e int8 $v: rc=$?"; grep -E '^qwen2.5-7b' $o.log | cut -c1-250 | sed "s/^/  $v /" >>$R
  python3 -c "import json,sys;[print('  $v',r['dtype'],r['pattern'],round(r['ttft_ms'],2),r['sm_mhz'],{k:round(x,2) for k,x in r['profile_ms'].items() if k in ('attention','rmsnorm','gate_up')},round(r['non_gemm_frac'],4)) for r in json.load(open(sys.argv[1]))]" $o/e2e.json >>$R 2>&1
done
tar czf $OUT/call3_logs.tar.gz -C $L .
