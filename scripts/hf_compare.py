#!/usr/bin/env python3
"""Logits of the SlideSparse CPU engine vs Hugging Face transformers on the same random models.

Creates small random-initialized Llama (untied, and tied with Llama-3 rope scaling) and Qwen2
configs, save_pretrained() them as fp32 safetensors, runs the HF forward on fixed token ids and
`slidesparse eval logits` on the same directory, and prints the max abs error per model.
Needs torch + transformers (the device machine has them).

  python3 scripts/hf_compare.py --bin build/bin/slidesparse [--workdir DIR] [--json OUT]
"""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--workdir", default=None)
ap.add_argument("--json", default=None)
a = ap.parse_args()
work = a.workdir or tempfile.mkdtemp()
torch.manual_seed(0)

common = dict(vocab_size=1000, hidden_size=128, intermediate_size=352, num_hidden_layers=3,
              num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=512,
              rms_norm_eps=1e-5, torch_dtype="float32")
models = {
    "llama": (LlamaForCausalLM, LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=False)),
    "llama-tied-rope-llama3": (LlamaForCausalLM, LlamaConfig(
        **common, rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
    "qwen2": (Qwen2ForCausalLM, Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=False)),
}
ids = [int(x) for x in torch.randint(0, 1000, (96,), generator=torch.Generator().manual_seed(1))]
results = []
for name, (cls, cfg) in models.items():
    m = cls(cfg).float().eval()
    with torch.no_grad():  # larger weights than the default init so errors are not hidden
        for p in m.parameters():
            p.mul_(2.0)
    d = os.path.join(work, name)
    m.save_pretrained(d, safe_serialization=True)
    with torch.no_grad():
        ref = m(torch.tensor([ids])).logits[0].double().numpy()
    out = os.path.join(work, name + ".bin")
    r = subprocess.run([a.bin, "eval", "logits", d, "--tokens", ",".join(map(str, ids)), "--out", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{name}: slidesparse failed: {r.stderr.strip()}")
        results.append({"model": name, "error": r.stderr.strip()})
        continue
    ours = np.fromfile(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
    err = float(np.abs(ours - ref).max())
    scale = float(np.abs(ref).max())
    same_argmax = float((ours.argmax(-1) == ref.argmax(-1)).mean())
    rec = {"model": name, "tokens": len(ids), "max_abs_err": err, "max_abs_logit": scale,
           "argmax_agreement": same_argmax, "transformers": __import__("transformers").__version__,
           "torch": torch.__version__}
    results.append(rec)
    print(json.dumps(rec))
if a.json:
    json.dump(results, open(a.json, "w"), indent=1)
sys.exit(0 if all("max_abs_err" in r and r["max_abs_err"] < 1e-3 for r in results) else 1)
