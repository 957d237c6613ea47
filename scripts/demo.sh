#!/usr/bin/env bash
# The main job: set up, build, then measure the perplexity of the embedded SmolLM2-135M-Instruct
# (Q4_1 GGUF dequantized to fp32 = the "dense" baseline) and of every pattern {2:4, 4:6, 6:8, 8:10}
# x prune {magnitude, wanda} x quant {none, int8, fp8}, pruned at load time exactly as `convert`
# does, on the CPU engine. Writes results/demo/accuracy.{json,md,svg}.
# Environment: SS_DEMO_SKIP_SETUP=1 (already set up and built), SS_DEMO_TOKENS (evaluation tokens, default 2048), SS_DEMO_CTX (default 512).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SS_DEMO_SKIP_SETUP:-0}" = 1 ] || scripts/setup.sh
[ "${SS_DEMO_SKIP_SETUP:-0}" = 1 ] || scripts/build.sh build
BIN=build/bin/slidesparse
MODEL=.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=results/demo
TOKENS=${SS_DEMO_TOKENS:-2048}
CTX=${SS_DEMO_CTX:-512}
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Stage 1 (issue 2): a tiny random model, converted to 6:8 and 2:4 and inspected.
if $BIN synth --help >/dev/null 2>&1; then
  echo "== tiny model: synth -> convert 6:8 / 2:4 -> inspect"
  $BIN synth --arch tiny-llama --out "$tmp/tiny" >/dev/null
  for p in 6:8 2:4; do
    $BIN convert "$tmp/tiny" --out "$tmp/tiny-${p/:/_}" --pattern "$p" --quant int8 >/dev/null
    $BIN inspect "$tmp/tiny-${p/:/_}" | tail -n 3
  done
fi

echo "== perplexity of $MODEL: $TOKENS tokens of the fortunes evaluation text, ctx $CTX"
recs=()
run() {  # pattern prune quant
  local args=()
  [ "$1" != dense ] && args=(--pattern "$1" --prune "$2" --quant "$3")
  local j
  j=$($BIN eval ppl "$MODEL" --max-tokens "$TOKENS" --ctx "$CTX" --json "${args[@]}")
  printf '%-6s %-9s %-5s %s\n' "$1" "$2" "$3" "$j" >&2
  recs+=("$(python3 -c 'import json,sys; r=json.loads(sys.argv[4]); print(json.dumps({"pattern":sys.argv[1],"prune":sys.argv[2],"quant":sys.argv[3],"ppl":round(r["ppl"],4),"ppl_stderr":round(r["ppl_stderr"],4),"tokens":r["tokens"],"tokens_per_s":r["tokens_per_s"]}))' "$1" "$2" "$3" "$j")")
}
run dense none none
for p in 2:4 4:6 6:8 8:10; do
  for pr in magnitude wanda; do
    for q in none int8 fp8; do run "$p" "$pr" "$q"; done
  done
done
printf '%s\n' "${recs[@]}" | python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin], indent=1))' > "$OUT/accuracy.json"
python3 scripts/plot_accuracy.py "$OUT/accuracy.json" --md "$OUT/accuracy.md" --svg "$OUT/accuracy.svg"
cat "$OUT/accuracy.md"
