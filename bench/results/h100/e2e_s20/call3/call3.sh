#!/usr/bin/env bash
# Session 20 call 3: the loader that converts a plain checkpoint's dense linears straight from
# the mapped tensors (965142f, .carry_s20c; old_slidesparse = e89f39a's CLI, the previous loader).
# The loader's and dense linear's GPU tests + HF parity (plain HF checkpoints through the new
# loader), then Qwen2.5-7B: synth, generate on the GPU from the
# plain checkpoint (bf16 and --quant int8) with the new CLI, then bf16 with the old one if time
# allows (the device budget left ~160 s of wall time; call 2 has the old loader's figures and
# the converted checkpoint's); wall time and peak host RSS of each (load + 8 tokens).
set -u
D=/tmp/ss; mkdir -p $D/bin $D/lib; tar xJf .carry_s20c/bins.tar.xz -C $D/bin; tar xJf .carry_s20c/libs.tar.xz -C $D/lib
mv $D/bin/old_slidesparse $D/
export LD_LIBRARY_PATH=$D/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cusparselt/lib:${LD_LIBRARY_PATH:-}
R=$OUT/call3.txt; L=/tmp/logs3; mkdir -p $L
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm,driver_version --format=csv >>$R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 ))s] $*" >>$R; }
# Kernels are unchanged since call 2 (host code only): the tests of the loader and of the dense
# linear, and HF parity (plain HF checkpoints through the new loader).
for t in cuda_model_test linear_test; do
  $D/bin/$t >$L/$t.log 2>&1; st "$t: rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' $L/$t.log | tr '\n' ' ')"
  grep -E '^\[  FAILED' $L/$t.log | head >>$R
done
/opt/torch/.venv/bin/python scripts/hf_compare_cuda.py --bin $D/bin/slidesparse --json $L/hf_compare_cuda.json >$L/hf_compare_cuda.log 2>&1
st "hf_compare_cuda: rc=$? $(grep -E '^hf_compare_cuda' $L/hf_compare_cuda.log)"
m=/tmp/m7
$D/bin/slidesparse synth --arch qwen2.5-7b --out $m --force >$L/synth.log 2>&1; st "synth qwen2.5-7b: rc=$?"
gen() {  # gen TAG CLI ARGS...
  local tag=$1 cli=$2; shift 2
  [ $(( $(date +%s) - t0 )) -gt 100 ] && { st "skipped $tag $* (time)"; return; }
  /usr/bin/time -f '%e s wall, max RSS %M KB' $cli generate "$@" --device cuda --tokens 1,2,3,4,5 --max-new-tokens 8 --print-ids >$L/gen.log 2>&1
  st "$tag generate $*: rc=$? | $(grep -E '^[0-9]' $L/gen.log | tr '\n' ' ') | $(tail -n1 $L/gen.log)"
}
gen new $D/bin/slidesparse $m; gen new $D/bin/slidesparse $m --quant int8
gen old $D/old_slidesparse $m
tar czf $OUT/call3_logs.tar.gz -C $L .
