#!/usr/bin/env python3
"""PyTorch dense baselines for `bench kernel`, measured on the same GPU in the same device run:
F.linear (bf16), torch._scaled_mm (fp8 e4m3, row-wise scales, bf16 out) and torch._int_mm
(int8 -> int32). Cold L2 (256 MiB zeroed between runs), median of 20 CUDA-event timings.
Writes a JSON list of {"backend": "torch", "op", "dtype", "model", "layer", "M", "N", "K", "us"}."""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F

SHAPES = {
    "llama3.2-1b": [("qkv", 3072, 2048), ("o", 2048, 2048), ("gate_up", 16384, 2048), ("down", 2048, 8192)],
    "llama3.2-3b": [("qkv", 5120, 3072), ("o", 3072, 3072), ("gate_up", 16384, 3072), ("down", 3072, 8192)],
    "qwen2.5-7b": [("qkv", 4608, 3584), ("o", 3584, 3584), ("gate_up", 37888, 3584), ("down", 3584, 18944)],
    "qwen2.5-14b": [("qkv", 7168, 5120), ("o", 5120, 5120), ("gate_up", 27648, 5120), ("down", 5120, 13824)],
}


def timed(fn, reps, flush):
    for _ in range(2):
        fn()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in ev:
        flush.zero_()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1000.0 for s, e in ev)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-7b")
    ap.add_argument("--M", default="1,16,256,4096,16384")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    recs = []
    models = list(SHAPES) if a.model == "all" else a.model.split(",")
    for model in models:
        for layer, N, K in SHAPES[model]:
            w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
            w8 = w.to(torch.float8_e4m3fn)
            wi = torch.randint(-127, 128, (N, K), device="cuda", dtype=torch.int8)
            sb = torch.ones(1, N, device="cuda", dtype=torch.float32)
            for M in (int(m) for m in a.M.split(",")):
                x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
                x8 = x.to(torch.float8_e4m3fn)
                xi = torch.randint(-127, 128, (M, K), device="cuda", dtype=torch.int8)
                sa = torch.ones(M, 1, device="cuda", dtype=torch.float32)
                ops = [
                    ("F.linear", "bf16", lambda: F.linear(x, w)),
                    ("torch._scaled_mm", "fp8",
                     lambda: torch._scaled_mm(x8, w8.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)),
                    ("torch._int_mm", "int8", lambda: torch._int_mm(xi, wi.t())),
                ]
                for op, dt, fn in ops:
                    try:
                        us = timed(fn, a.reps, flush)
                        err = None
                    except Exception as e:  # e.g. _int_mm needs M > 16 on some versions
                        us, err = None, str(e).splitlines()[0][:160]
                    r = {"backend": "torch", "op": op, "dtype": dt, "model": model, "layer": layer,
                         "M": M, "N": N, "K": K, "us": us}
                    if err:
                        r["error"] = err
                    recs.append(r)
                    print(json.dumps(r), flush=True)
                del x, x8, xi, sa
    with open(a.out, "w") as f:
        json.dump({"torch": torch.__version__, "cuda": torch.version.cuda,
                   "device": torch.cuda.get_device_name(0), "records": recs}, f, indent=1)


if __name__ == "__main__":
    main()
