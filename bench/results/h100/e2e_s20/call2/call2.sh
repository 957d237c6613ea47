#!/usr/bin/env bash
# Session 20 call 2: the code after the loader checks (HEAD of this session, carried as
# .carry_s20b): every gpu test binary + memcheck of bench e2e on tiny-qwen2 + HF parity, the CLI
# bench-e2e tests, then real checkpoints through the CUDA loader: synth Llama3.2-1B, convert 6:8
# int8, generate on the GPU from the converted and the plain checkpoint (load times in the log;
# nm_linear now scans every stored value), and Qwen2.5-7B the same if time allows.
set -u
D=/tmp/ss; mkdir -p $D/bin $D/lib; tar xJf .carry_s20b/bins.tar.xz -C $D/bin; tar xJf .carry_s20b/libs.tar.xz -C $D/lib
mv $D/bin/test_cli_bench_e2e $D/
export LD_LIBRARY_PATH=$D/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:${LD_LIBRARY_PATH:-}
R=$OUT/call2.txt; L=/tmp/logs2; mkdir -p $L
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv >>$R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 ))s] $*" >>$R; }
OUT=$L/dr SS_PREBUILT=$D/bin E2E_PARTS=memcheck,hfcmp E2E_SANITIZE_ATTENTION=0 scripts/device_run.sh e2e >$L/device_run.log 2>&1; st "device_run e2e memcheck,hfcmp: rc=$?"
cat $L/dr/summary.txt >>$R
grep -E '^\[  FAILED|Failure' -A3 $L/dr/*.log $L/dr/*/*.log 2>/dev/null | head -30 >>$R
SS_CLI_OVERRIDE=$D/bin/slidesparse $D/test_cli_bench_e2e >$L/cli_bench_e2e.log 2>&1; st "test_cli_bench_e2e: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' $L/cli_bench_e2e.log | tr '\n' ' ')"
S=$D/bin/slidesparse
real() {  # real ARCH LIMIT_S
  local a=$1 m=/tmp/m_$1
  [ $(( $(date +%s) - t0 )) -gt $2 ] && { st "skipped $a (time)"; return; }
  /usr/bin/time -f '%e s, max RSS %M KB' $S synth --arch $a --out $m --force >$L/synth_$a.log 2>&1; st "synth $a: rc=$? $(tail -n1 $L/synth_$a.log)"
  /usr/bin/time -f '%e s, max RSS %M KB' $S convert $m --out $m-68 --pattern 6:8 --quant int8 --force --quiet >$L/convert_$a.log 2>&1; st "convert $a 6:8 int8: rc=$? $(tail -n1 $L/convert_$a.log)"
  du -sh $m $m-68 | tr '\n' ' ' >>$R; echo >>$R
  for args in "$m-68" "$m --quant int8" "$m"; do
    /usr/bin/time -f '%e s wall, max RSS %M KB' $S generate $args --device cuda --tokens 1,2,3,4,5 --max-new-tokens 8 --print-ids >$L/gen.log 2>&1
    st "generate $args --device cuda: rc=$? | $(grep -E 'loaded|^[0-9]' $L/gen.log | tr '\n' ' ') | $(tail -n1 $L/gen.log)"
  done
  rm -rf $m $m-68
}
real llama3.2-1b 300; real qwen2.5-7b 330
tar czf $OUT/call2_logs.tar.gz -C $L .
