#!/usr/bin/env python3
"""Perplexity table (Markdown) and plot (SVG) from results/demo/accuracy.json. Stdlib only."""
import argparse, json, math

ap = argparse.ArgumentParser()
ap.add_argument("json")
ap.add_argument("--md", required=True)
ap.add_argument("--svg", required=True)
a = ap.parse_args()
recs = json.load(open(a.json))
dense = next(r for r in recs if r["pattern"] == "dense")

lines = ["| pattern | prune | quant | perplexity | ± stderr | vs dense | tokens |", "|---|---|---|---|---|---|---|"]
for r in recs:
    lines.append(f"| {r['pattern']} | {r['prune']} | {r['quant']} | {r['ppl']:.3f} | {r['ppl_stderr']:.3f} | "
                 f"{r['ppl'] / dense['ppl']:.3f}× | {r['tokens']} |")
open(a.md, "w").write("\n".join(lines) + "\n")

# Grouped bars: one group per pattern, bars for prune x quant, log-scale y, dense as a line.
pats = ["2:4", "4:6", "6:8", "8:10"]
series = [(p, q) for p in ("magnitude", "wanda") for q in ("none", "int8", "fp8")]
colors = ["#1f77b4", "#6baed6", "#c6dbef", "#d62728", "#fc9272", "#fcbba1"]
W, H, L, B, T = 760, 380, 60, 50, 30
vals = [r["ppl"] for r in recs]
lo, hi = math.log10(min(vals) * 0.8), math.log10(max(vals) * 1.25)
y = lambda v: T + (H - T - B) * (1 - (math.log10(v) - lo) / (hi - lo))
gw = (W - L - 20) / len(pats)
bw = gw * 0.8 / len(series)
s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
     f'<text x="{W/2}" y="18" text-anchor="middle" font-size="13">SmolLM2-135M perplexity (log scale), dense = {dense["ppl"]:.2f}</text>']
for e in range(int(math.floor(lo)), int(math.ceil(hi)) + 1):
    for m in (1, 2, 5):
        v = m * 10 ** e
        if lo <= math.log10(v) <= hi:
            s.append(f'<line x1="{L}" x2="{W-20}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{L-5}" y="{y(v)+4:.1f}" text-anchor="end">{v:g}</text>')
for gi, p in enumerate(pats):
    x0 = L + gi * gw + gw * 0.1
    s.append(f'<text x="{x0 + gw*0.4:.1f}" y="{H-B+16}" text-anchor="middle">{p}</text>')
    for si, (pr, q) in enumerate(series):
        r = next((r for r in recs if r["pattern"] == p and r["prune"] == pr and r["quant"] == q), None)
        if not r:
            continue
        yy = y(r["ppl"])
        s.append(f'<rect x="{x0 + si*bw:.1f}" y="{yy:.1f}" width="{bw*0.9:.1f}" height="{H-B-yy:.1f}" fill="{colors[si]}">'
                 f'<title>{p} {pr} {q}: {r["ppl"]:.2f} ± {r["ppl_stderr"]:.2f}</title></rect>')
s.append(f'<line x1="{L}" x2="{W-20}" y1="{y(dense["ppl"]):.1f}" y2="{y(dense["ppl"]):.1f}" stroke="black" stroke-dasharray="4"/>')
for si, (pr, q) in enumerate(series):
    s.append(f'<rect x="{L + 10 + si*112}" y="{H-22}" width="10" height="10" fill="{colors[si]}"/>'
             f'<text x="{L + 24 + si*112}" y="{H-13}">{pr} {q}</text>')
s.append("</svg>")
open(a.svg, "w").write("\n".join(s) + "\n")
