#!/usr/bin/env python3
"""Summarizes a `bench kernel` run (kernel.json [+ torch_baseline.json]) in DIR: prints the tables
of issue 3's targets (sums over a model's four linear layers) and writes DIR/speedup.svg, the
full-layer speedup vs dense per pattern and dtype over M. Standard library only.
Usage: scripts/plot.py DIR"""
import json
import math
import os
import sys
from collections import defaultdict

GAMMA = {"2:4": 1.0, "4:6": 4 / 3, "6:8": 1.5, "8:10": 1.6}


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    path = os.path.join(d, "kernel.json")
    if not os.path.exists(path):
        print("plot: no kernel.json in", d)
        return 1
    recs = json.load(open(path))
    # sums over layers: (model, dtype, pattern, M) -> [gemm, layer, prologue, n]
    agg = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for r in recs:
        k = (r["model"], r["dtype"], r["pattern"], r["M"])
        a = agg[k]
        a[0] += r["gemm_us"]
        a[1] += r["layer_us"]
        a[2] += r.get("prologue_us") or 0.0
        a[3] += 1
    models = sorted({k[0] for k in agg})
    dtypes = sorted({k[1] for k in agg})
    pats = sorted({k[2] for k in agg if k[2] != "dense" and not k[2].startswith("auto")},
                  key=lambda p: GAMMA.get(p, 9))
    Ms = sorted({k[3] for k in agg})
    series = {}
    for model in models:
        print(f"\n## {model}: sums over its linear layers (speedup = dense / sparse, same dtype)")
        for dt in dtypes:
            print(f"\n{dt}: M | " + " | ".join(f"{p} S_layer S_gemm eff" for p in pats) + " | auto/dense min")
            for M in Ms:
                dn = agg.get((model, dt, "dense", M))
                if not dn:
                    continue
                row, s24 = [], None
                ref = agg.get((model, dt, "2:4", M))
                if ref:
                    s24 = dn[0] / ref[0]
                for p in pats:
                    sp = agg.get((model, dt, p, M))
                    if not sp:
                        row.append("-")
                        continue
                    sl, sg = dn[1] / sp[1], dn[0] / sp[0]
                    eff = sg * GAMMA.get(p, 1) / s24 if s24 else float("nan")
                    row.append(f"{sl:.3f} {sg:.3f} {eff:.2f}")
                    series.setdefault((model, dt, p), []).append((M, sl))
                autos = [dn[1] / agg[(model, dt, f"auto-{p}", M)][1] for p in pats
                         if (model, dt, f"auto-{p}", M) in agg]
                print(f"{M:>6} | " + " | ".join(row) + f" | {min(autos):.3f}" if autos else "")
    # prologue: fused quantize+lift vs quantize only
    print("\n## prologue (sum over layers): fused quantize+lift / quantize-only")
    for (model, dt, p, M), a in sorted(agg.items()):
        if p in GAMMA and dt in ("int8", "fp8") and M >= 4096:
            dn = agg.get((model, dt, "dense", M))
            if dn and dn[2] > 0:
                print(f"{model} {dt} {p} M={M}: {a[2]:.1f} us vs {dn[2]:.1f} us = {a[2] / dn[2]:.3f}x")
    # honest dense baseline
    print("\n## dense baseline: ours vs best of cuBLASLt top candidates (GEMM only)")
    worst = 1.0
    for r in recs:
        if r["pattern"] == "dense" and r.get("dense_best_candidate_us"):
            worst = max(worst, r["gemm_us"] / r["dense_best_candidate_us"])
    print(f"max ours/best-candidate over all records: {worst:.3f}")
    tpath = os.path.join(d, "torch_baseline.json")
    if os.path.exists(tpath):
        t = json.load(open(tpath))
        print(f"\n## dense baseline vs PyTorch {t.get('torch')} ({t.get('device')}), GEMM-only us")
        tb = {(r["model"], r["dtype"], r["layer"], r["M"]): r for r in t["records"]}
        for r in recs:
            if r["pattern"] != "dense":
                continue
            x = tb.get((r["model"], r["dtype"], r["layer"], r["M"]))
            if x and x.get("us"):
                print(f"{r['model']} {r['dtype']} {r['layer']} M={r['M']}: ours {r['gemm_us']:.1f} "
                      f"(layer {r['layer_us']:.1f}) vs {x['op']} {x['us']:.1f} -> {x['us'] / r['gemm_us']:.3f}x")
            elif x:
                print(f"{r['model']} {r['dtype']} {r['layer']} M={r['M']}: {x['op']} failed: {x.get('error')}")
    write_svg(os.path.join(d, "speedup.svg"), series)
    print("\nwrote", os.path.join(d, "speedup.svg"))
    return 0


def write_svg(path, series):
    W, H, L, R, T, B = 900, 520, 70, 200, 40, 50
    pts = [p for s in series.values() for p in s]
    if not pts:
        return
    xs = [math.log2(m) for m, _ in pts]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = 0.0, max(2.0, max(v for _, v in pts) * 1.05)
    X = lambda m: L + (math.log2(m) - x0) / (x1 - x0) * (W - L - R)
    Y = lambda v: T + (1 - (v - y0) / (y1 - y0)) * (H - T - B)
    colors = {"2:4": "#1f77b4", "4:6": "#2ca02c", "6:8": "#d62728", "8:10": "#9467bd"}
    dashes = {"int8": "", "fp8": "6,3", "bf16": "2,3", "fp16": "8,2,2,2"}
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="15">Full-layer speedup vs dense (same dtype), sum over layers</text>']
    for v in [0.5 * i for i in range(int(y1 / 0.5) + 1)]:
        o.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>'
                 f'<text x="{L - 8}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    o.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(1):.1f}" y2="{Y(1):.1f}" stroke="#000"/>')
    for e in range(int(x0), int(math.ceil(x1)) + 1):
        o.append(f'<text x="{X(2 ** e):.1f}" y="{H - B + 18}" text-anchor="middle">{2 ** e}</text>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">M (tokens)</text>')
    ly = T
    for (model, dt, p), s in sorted(series.items()):
        s = sorted(s)
        c = colors.get(p, "#555")
        da = dashes.get(dt, "")
        path_d = " ".join(f"{'M' if i == 0 else 'L'}{X(m):.1f},{Y(v):.1f}" for i, (m, v) in enumerate(s))
        o.append(f'<path d="{path_d}" fill="none" stroke="{c}" stroke-width="2" stroke-dasharray="{da}"/>')
        o.append(f'<line x1="{W - R + 10}" x2="{W - R + 40}" y1="{ly}" y2="{ly}" stroke="{c}" '
                 f'stroke-width="2" stroke-dasharray="{da}"/><text x="{W - R + 45}" y="{ly + 4}">'
                 f'{model} {dt} {p}</text>')
        ly += 16
    o.append("</svg>")
    open(path, "w").write("\n".join(o))


if __name__ == "__main__":
    sys.exit(main())
