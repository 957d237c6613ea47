#!/usr/bin/env python3
"""Hugging Face transformers baseline for `slidesparse bench e2e`, on the same GPU: the model is
built from the same config.json (`slidesparse synth --arch X --config-only --out DIR`) with HF's
random init, bf16, attn_implementation="sdpa", directly on the GPU (no download, no weights file).

  prefill: M tokens = S x L (L = --prompt-len, or one sequence of M tokens when M < L), one output
           token: forward with the KV cache, logits of the last position only, argmax on the GPU,
           ids copied to the host. tokens_per_s = M / TTFT.
  decode:  model.generate(greedy, exactly --gen-len new tokens, B prompts of --decode-prompt
           tokens). TTFT = the prompt's forward measured alone (as above); TPOT = (generate time -
           TTFT) / (gen_len - 1); tokens_per_s = B / TPOT (the decode-phase rate, the same
           definition as bench e2e's B * gen_len / decode time); generate_tokens_per_s =
           B * gen_len / generate time (everything included).
Timing: torch.cuda.synchronize() + perf_counter around each call, --warmup runs, median of --reps.
Writes {"torch", "transformers", "device", "records": [...]} with records in e2e.json's format
(+ backend "hf-transformers").

  /opt/torch/.venv/bin/python bench/hf_e2e.py --config DIR --name qwen2.5-7b --out hf_e2e.json
"""
import argparse
import inspect
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def ints(s):
    return [int(x) for x in s.split(",") if x]


def build(config_dir, dtype):
    cfg = AutoConfig.from_pretrained(config_dir)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in bf16: no fp32 copy of a 14B model
    try:
        with torch.device("cuda"):
            m = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    finally:
        torch.set_default_dtype(old)
    m = m.to(dtype).eval()
    return cfg, m


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), ts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="directory with config.json")
    ap.add_argument("--name", default=None, help="model name in the records (default: dir name)")
    ap.add_argument("--mode", default="both", choices=["prefill", "decode", "both"])
    ap.add_argument("--M", default="512,1024,2048,4096,8192,16384,32768,65536")
    ap.add_argument("--prompt-len", type=int, default=1024)
    ap.add_argument("--batch", default="1,2,4,8,16,32,64")
    ap.add_argument("--decode-prompt", type=int, default=16)
    ap.add_argument("--gen-len", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.gen_len < 2:
        sys.exit("hf_e2e.py: error: --gen-len must be >= 2 (TPOT needs a decode step)")
    name = a.name or a.config.rstrip("/").split("/")[-1]
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    cfg, model = build(a.config, torch.bfloat16)
    print(f"# {name}: built {type(model).__name__} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B "
          f"params, bf16, sdpa) in {time.perf_counter() - t0:.1f} s; transformers {transformers.__version__}, "
          f"torch {torch.__version__}", flush=True)
    fwd = inspect.signature(model.forward).parameters
    keep = ({"logits_to_keep": 1} if "logits_to_keep" in fwd
            else {"num_logits_to_keep": 1} if "num_logits_to_keep" in fwd else {})
    if not keep:
        print("# warning: this transformers has no logits_to_keep: prefill computes all logits", flush=True)
    V = cfg.vocab_size
    gen = torch.Generator(device="cuda").manual_seed(a.seed + 1)
    recs = []

    def prefill(ids):
        out = model(input_ids=ids, use_cache=True, **keep)
        return out.logits[:, -1].argmax(-1).cpu()

    def base(mode, M, B, L):
        return {"model": name, "dtype": "bf16", "pattern": "dense", "backend": "hf-transformers",
                "mode": mode, "M": M, "batch": B, "prompt_len": L, "reps": a.reps}

    def emit(r):
        recs.append(r)
        print(json.dumps(r), flush=True)
        with open(a.out, "w") as f:  # rewritten after each record: a cut-off run keeps its data
            json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                       "device": torch.cuda.get_device_name(0), "records": recs}, f, indent=1)

    with torch.inference_mode():
        if a.mode in ("prefill", "both"):
            for M in ints(a.M):
                L = min(M, a.prompt_len)
                S = M // L
                r = base("prefill", M, S, L)
                try:
                    ids = torch.randint(0, V, (S, L), device="cuda", generator=gen)
                    torch.cuda.reset_peak_memory_stats()
                    ms, ts = timed(lambda: prefill(ids), a.warmup, a.reps)
                    r.update(tokens_per_s=M / (ms / 1e3), ttft_ms=ms, tpot_ms=None,
                             ttft_ms_min=min(ts), ttft_ms_max=max(ts),
                             peak_mem_gb=torch.cuda.max_memory_reserved() / 1e9)
                except torch.cuda.OutOfMemoryError as e:
                    r.update(tokens_per_s=None, error="out of memory: " + str(e).splitlines()[0][:120])
                    torch.cuda.empty_cache()
                emit(r)
        if a.mode in ("decode", "both"):
            G = a.gen_len
            for B in ints(a.batch):
                r = base("decode", B, B, a.decode_prompt)
                r["gen_len"] = G
                try:
                    ids = torch.randint(0, V, (B, a.decode_prompt), device="cuda", generator=gen)
                    mask = torch.ones_like(ids)
                    torch.cuda.reset_peak_memory_stats()
                    ttft, _ = timed(lambda: prefill(ids), a.warmup, a.reps)
                    shapes = []

                    def generate():
                        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                             max_new_tokens=G, min_new_tokens=G, pad_token_id=0)
                        shapes.append(tuple(out.shape))
                        return out

                    total, ts = timed(generate, a.warmup, a.reps)
                    assert all(s == (B, a.decode_prompt + G) for s in shapes), shapes
                    tpot = (total - ttft) / (G - 1)
                    r.update(tokens_per_s=B / (tpot / 1e3), ttft_ms=ttft, tpot_ms=tpot,
                             generate_ms=total, generate_ms_min=min(ts), generate_ms_max=max(ts),
                             generate_tokens_per_s=B * G / (total / 1e3),
                             peak_mem_gb=torch.cuda.max_memory_reserved() / 1e9)
                except torch.cuda.OutOfMemoryError as e:
                    r.update(tokens_per_s=None, error="out of memory: " + str(e).splitlines()[0][:120])
                    torch.cuda.empty_cache()
                emit(r)
    if not recs:
        emit_empty = {"torch": torch.__version__, "transformers": transformers.__version__,
                      "device": torch.cuda.get_device_name(0), "records": []}
        json.dump(emit_empty, open(a.out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
