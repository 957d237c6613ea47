#!/usr/bin/env bash
# Session 20 call 3: the loader that converts a plain checkpoint's dense linears straight from
# the mapped tensors (965142f, .carry_s20c; old_slidesparse = e89f39a's CLI, the previous loader).
# Every gpu test binary + memcheck of bench e2e on tiny-qwen2 + HF parity (plain HF checkpoints
# through the new loader), then Qwen2.5-7B: synth, generate on the GPU from the
# plain checkpoint (bf16 and --quant int8) with the new and the old CLI alternating (the converted
# checkpoint: call 2); wall time and peak host RSS of each (load + 8 tokens).
set -u
D=/tmp/ss; mkdir -p $D/bin $D/lib; tar xJf .carry_s20c/bins.tar.xz -C $D/bin; tar xJf .carry_s20c/libs.tar.xz -C $D/lib
mv $D/bin/test_cli_bench_e2e $D/bin/old_slidesparse $D/
export LD_LIBRARY_PATH=$D/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:${LD_LIBRARY_PATH:-}
R=$OUT/call3.txt; L=/tmp/logs3; mkdir -p $L
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv >>$R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 ))s] $*" >>$R; }
OUT=$L/dr SS_PREBUILT=$D/bin E2E_PARTS=memcheck,hfcmp E2E_SANITIZE_ATTENTION=0 scripts/device_run.sh e2e >$L/device_run.log 2>&1; st "device_run e2e memcheck,hfcmp: rc=$?"
grep -v '^  # tiny' $L/dr/summary.txt | grep -v '^{' >>$R
grep -E '^\[  FAILED|Failure' -A3 $L/dr/*.log $L/dr/*/*.log 2>/dev/null | head -30 >>$R
SS_CLI_OVERRIDE=$D/bin/slidesparse $D/test_cli_bench_e2e >$L/cli_bench_e2e.log 2>&1; st "test_cli_bench_e2e: rc=$? $(grep -E '^\[  (PASSED|FAILED) ' $L/cli_bench_e2e.log | tr '\n' ' ')"
m=/tmp/m7
$D/bin/slidesparse synth --arch qwen2.5-7b --out $m --force >$L/synth.log 2>&1; st "synth qwen2.5-7b: rc=$?"
gen() {  # gen TAG CLI ARGS...
  local tag=$1 cli=$2; shift 2
  [ $(( $(date +%s) - t0 )) -gt 380 ] && { st "skipped $tag $* (time)"; return; }
  /usr/bin/time -f '%e s wall, max RSS %M KB' $cli generate "$@" --device cuda --tokens 1,2,3,4,5 --max-new-tokens 8 --print-ids >$L/gen.log 2>&1
  st "$tag generate $*: rc=$? | $(grep -E '^[0-9]' $L/gen.log | tr '\n' ' ') | $(tail -n1 $L/gen.log)"
}
gen new $D/bin/slidesparse $m; gen old $D/old_slidesparse $m
gen new $D/bin/slidesparse $m --quant int8; gen old $D/old_slidesparse $m --quant int8
tar czf $OUT/call3_logs.tar.gz -C $L .
