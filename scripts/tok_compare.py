#!/usr/bin/env python3
"""Token ids of our tokenizer (`slidesparse tokenize`) vs Hugging Face `tokenizers` on the same
tokenizer.json (the one `convert` generates from the GGUF vocab/merges) and text.

  python3 scripts/tok_compare.py --bin build/bin/slidesparse --tokenizer-dir DIR --text FILE
"""
import argparse, json, subprocess, sys
from tokenizers import Tokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--tokenizer-dir", required=True)
ap.add_argument("--text", required=True)
a = ap.parse_args()
hf = Tokenizer.from_file(a.tokenizer_dir + "/tokenizer.json").encode(open(a.text, encoding="utf-8", newline="").read()).ids
ours = [int(x) for x in subprocess.run([a.bin, "tokenize", a.tokenizer_dir, "--text", a.text], check=True,
                                       capture_output=True, text=True).stdout.strip().split(",")]
first = next((i for i, (x, y) in enumerate(zip(hf, ours)) if x != y), None)
print(json.dumps({"hf_tokens": len(hf), "our_tokens": len(ours), "identical": hf == ours,
                  "first_difference": first}))
sys.exit(0 if hf == ours else 1)
