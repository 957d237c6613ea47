#!/usr/bin/env python3
"""Summarizes `slidesparse bench e2e` runs (+ bench/hf_e2e.py baselines): prints the tables of
issue 5's targets and writes OUT/e2e.svg (tokens/s speedup vs the dense model of the same
precision: prefill vs M on the left, decode vs batch on the right, one line per model, precision
and pattern). With several inputs it also writes the merged OUT/e2e.json and OUT/e2e.csv.
Inputs: e2e.json files (a list of records) and hf_e2e.py outputs (an object with "records").
Records measured with --profile are used for the GEMM / non-GEMM table only. Standard library only.

  scripts/plot_e2e.py --out DIR DIR/prefill/e2e.json DIR/decode/e2e.json DIR/hf_e2e.json
  scripts/plot_e2e.py DIR          # DIR/e2e.json and DIR/hf_e2e*.json
"""
import argparse
import glob
import json
import math
import os
import sys
from collections import defaultdict

COLS = ["model", "dtype", "pattern", "mode", "M", "batch", "prompt_len", "gen_len", "tokens_per_s",
        "ttft_ms", "tpot_ms", "peak_mem_gb", "speedup", "non_gemm_frac", "linear_mode", "reps",
        "round", "sm_mhz", "power_w", "gemm_backend", "gemm_backend_resolved"]
PAT_ORDER = {"dense": 0, "2:4": 1, "4:6": 2, "6:8": 3, "8:10": 4}
COLORS = {"2:4": "#1f77b4", "4:6": "#2ca02c", "6:8": "#d62728", "8:10": "#9467bd"}
DASHES = {"int8": "", "fp8": "6,3", "bf16": "2,3", "fp16": "8,2,2,2"}


def load(paths):
    ours, hf, meta = [], [], []
    for p in paths:
        d = json.load(open(p))
        if isinstance(d, dict):
            hf += d.get("records", [])
            meta.append(f"{os.path.basename(p)}: transformers {d.get('transformers')}, torch "
                        f"{d.get('torch')}, {d.get('device')}")
        else:
            # bench e2e --rounds R: the last round only. Earlier rounds are warm-up: the first
            # model a process runs decodes up to 4 % faster than the same model loaded after it
            # (bench/results/h100/README.md), so one round would favour whichever model runs first.
            last = max((r.get("round", 0) for r in d), default=0)
            if last > 0:
                meta.append(f"{os.path.basename(p)}: round {last} of rounds 0..{last} (earlier: warm-up)")
            ours += [r for r in d if r.get("round", 0) == last]
    return ours, hf, meta


def fmt(v, f="{:.3f}"):
    return "-" if v is None else f.format(v)


def pat_key(p):
    return (PAT_ORDER.get(p, 9), p)


def tables(ours, hf):
    timed = [r for r in ours if not r.get("profiled")]
    out = []
    groups = defaultdict(list)
    for r in timed:
        groups[(r["model"], r["mode"], r.get("linear_mode") if r["pattern"] != "dense" else None)].append(r)
    for model in sorted({r["model"] for r in timed}):
        for mode in ("prefill", "decode"):
            rs = [r for r in timed if r["model"] == model and r["mode"] == mode]
            if not rs:
                continue
            xs = sorted({r["M"] for r in rs})
            cols = sorted({(r["dtype"], r["pattern"], r.get("linear_mode", "")) for r in rs},
                          key=lambda c: (c[0], pat_key(c[1]), c[2]))
            idx = {(r["dtype"], r["pattern"], r.get("linear_mode", ""), r["M"]): r for r in rs}
            unit = "M" if mode == "prefill" else "batch"
            out.append(f"\n## {model} {mode}: tokens/s (speedup vs dense of the same precision)"
                       + (", TPOT ms" if mode == "decode" else ", TTFT ms"))
            out.append(f"{unit:>6} | " + " | ".join(
                f"{d} {p}{'' if p == 'dense' or lm in ('', 'sparse') else ' ' + lm}" for d, p, lm in cols))
            for x in xs:
                cells = []
                for d, p, lm in cols:
                    r = idx.get((d, p, lm, x))
                    if not r:
                        cells.append("-")
                        continue
                    t = r["tpot_ms"] if mode == "decode" else r["ttft_ms"]
                    cells.append(f"{r['tokens_per_s']:.0f} ({fmt(r.get('speedup'))}) {fmt(t, '{:.2f}')}")
                out.append(f"{x:>6} | " + " | ".join(cells))
            peaks = {f"{d} {p}": max(r.get("peak_mem_gb") or 0 for r in rs if r["dtype"] == d and r["pattern"] == p)
                     for d, p, _ in cols}
            out.append("peak GPU memory GB: " + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()))
    # Our bf16 dense vs HF transformers (same model name, mode, M / batch).
    if hf:
        out.append("\n## ours (bf16 dense) vs Hugging Face transformers (bf16, sdpa): tokens/s ratio")
        idx = {(r["model"], r["mode"], r["M"]): r for r in timed if r["dtype"] == "bf16" and r["pattern"] == "dense"}
        for h in sorted(hf, key=lambda r: (r["model"], r["mode"], r["M"])):
            o = idx.get((h["model"], h["mode"], h["M"]))
            if h.get("tokens_per_s") is None:
                out.append(f"{h['model']} {h['mode']} {h['M']}: HF failed: {h.get('error')}")
                continue
            extra = f", HF generate() overall {h['generate_tokens_per_s']:.0f} tok/s" if h.get("generate_tokens_per_s") else ""
            if o:
                out.append(f"{h['model']} {h['mode']:7s} {'M' if h['mode'] == 'prefill' else 'B'}={h['M']:<6} ours "
                           f"{o['tokens_per_s']:.0f} vs HF {h['tokens_per_s']:.0f} tok/s -> "
                           f"{o['tokens_per_s'] / h['tokens_per_s']:.2f}x (TTFT {o['ttft_ms']:.2f} vs "
                           f"{h['ttft_ms']:.2f} ms{extra})")
            else:
                out.append(f"{h['model']} {h['mode']} {h['M']}: HF {h['tokens_per_s']:.0f} tok/s (no bf16 dense run of ours)")
    out += targets(timed, hf, [r for r in ours if r.get("profiled") and r.get("profile_ms")])
    prof = [r for r in ours if r.get("profiled") and r.get("profile_ms")]
    if prof:
        out.append("\n## per-op breakdown (--profile; ms per step: prefill = one forward, decode = one token)")
        for r in prof:
            ops = sorted(r["profile_ms"].items(), key=lambda kv: -kv[1])
            out.append(f"{r['model']} {r['dtype']} {r['pattern']} {r['mode']} M={r['M']}: non-GEMM "
                       f"{fmt(r.get('non_gemm_frac'))} of {r['profile_total_ms']:.2f} ms; "
                       + ", ".join(f"{k} {v:.2f}" for k, v in ops))
    return out


def targets(timed, hf, prof):
    """Issue 5's targets, each line: what, measured, met (only what the records hold)."""
    out = ["\n## issue 5 targets (measured in these records)"]
    def line(what, vals, ok):
        out.append(f"{what}: {vals} -> {'met' if ok else 'NOT met'}")
    for model in sorted({r["model"] for r in timed}):
        for dt in ("int8", "fp8"):
            for p, bound in (("6:8", 1.15), ("2:4", 1.45)):
                rs = [r for r in timed if r["model"] == model and r["mode"] == "prefill" and r["M"] == 16384
                      and r["dtype"] == dt and r["pattern"] == p and r.get("speedup")
                      and r.get("linear_mode") != "auto"]
                if rs:
                    line(f"{model} prefill M=16384 {dt} {p} >= {bound}x dense", f"{rs[0]['speedup']:.3f}x",
                         rs[0]["speedup"] >= bound)
        autos = [r for r in timed if r["model"] == model and r["mode"] == "decode"
                 and r.get("linear_mode") == "auto" and r.get("speedup")]
        if autos:
            worst = min(autos, key=lambda r: r["speedup"])
            line(f"{model} decode auto >= 0.98x dense at every batch",
                 f"min {worst['speedup']:.3f}x ({worst['dtype']} {worst['pattern']} B={worst['M']})",
                 worst["speedup"] >= 0.98)
    idx = {(r["model"], r["mode"], r["M"]): r for r in timed if r["dtype"] == "bf16" and r["pattern"] == "dense"}
    for mode, bound, cond in (("prefill", 1.0, lambda M: True), ("decode", 2.0, lambda M: M <= 64)):
        ratios = [(h["M"], idx[(h["model"], mode, h["M"])]["tokens_per_s"] / h["tokens_per_s"])
                  for h in hf if h["mode"] == mode and h.get("tokens_per_s") and cond(h["M"])
                  and (h["model"], mode, h["M"]) in idx]
        if ratios:
            line(f"ours bf16 dense vs HF {mode} >= {bound}x" + (" (batch <= 64)" if mode == "decode" else ""),
                 ", ".join(f"{'M' if mode == 'prefill' else 'B'}={m} {x:.2f}x" for m, x in ratios),
                 min(x for _, x in ratios) >= bound)
    for r in prof:
        if r["mode"] == "prefill" and r["M"] == 16384 and r.get("non_gemm_frac") is not None:
            line(f"{r['model']} {r['dtype']} {r['pattern']} non-GEMM <= 20% of a prefill step at M=16384",
                 f"{100 * r['non_gemm_frac']:.1f}%", r["non_gemm_frac"] <= 0.20)
    return out if len(out) > 1 else []


def write_svg(path, ours):
    timed = [r for r in ours if not r.get("profiled") and r["pattern"] != "dense" and r.get("speedup")]
    if not timed:
        return False
    PW, PH, L, T, B, GAP, LEG = 520, 420, 60, 40, 50, 40, 230
    W, H = L + 2 * PW + GAP + LEG, T + PH + B
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>']
    ymax = max(2.0, max(r["speedup"] for r in timed) * 1.05)
    series = defaultdict(list)
    for r in timed:
        lm = r.get("linear_mode", "sparse")
        series[(r["mode"], r["model"], r["dtype"], r["pattern"], lm)].append((r["M"], r["speedup"]))
    legend = {}
    for pi, mode in enumerate(("prefill", "decode")):
        x0p = L + pi * (PW + GAP)
        pts = [m for (md, *_), s in series.items() if md == mode for m, _ in s]
        title = "prefill: tokens/s speedup vs dense, by M" if mode == "prefill" else \
            "decode: tokens/s speedup vs dense, by batch"
        o.append(f'<text x="{x0p}" y="22" font-size="14">{title}</text>')
        if not pts:
            continue
        lx0, lx1 = math.log2(min(pts)), math.log2(max(pts))
        if lx1 - lx0 < 1:
            lx1 = lx0 + 1
        X = lambda m: x0p + (math.log2(m) - lx0) / (lx1 - lx0) * PW
        Y = lambda v: T + (1 - v / ymax) * PH
        for k in range(int(ymax / 0.25) + 1):
            v = 0.25 * k
            o.append(f'<line x1="{x0p}" x2="{x0p + PW}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="{"#000" if v == 1 else "#e4e4e4"}"/>')
            if k % 2 == 0:
                o.append(f'<text x="{x0p - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
        for e in range(int(math.floor(lx0)), int(math.ceil(lx1)) + 1):
            if lx0 - 1e-9 <= e <= lx1 + 1e-9:
                o.append(f'<text x="{X(2 ** e):.1f}" y="{T + PH + 16}" text-anchor="middle">{2 ** e}</text>')
        o.append(f'<text x="{x0p + PW / 2}" y="{H - 10}" text-anchor="middle">{"M (tokens per step)" if mode == "prefill" else "batch (sequences)"}</text>')
        for key, s in sorted(series.items()):
            if key[0] != mode:
                continue
            _, model, dt, p, lm = key
            s = sorted(s)
            c = COLORS.get(p, "#555")
            da = DASHES.get(dt, "")
            width = 2 if lm != "auto" else 1
            d = " ".join(f"{'M' if i == 0 else 'L'}{X(m):.1f},{Y(v):.1f}" for i, (m, v) in enumerate(s))
            o.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="{width}" stroke-dasharray="{da}"/>')
            for m, v in s:
                o.append(f'<circle cx="{X(m):.1f}" cy="{Y(v):.1f}" r="2" fill="{c}"/>')
            legend[(model, dt, p, lm)] = (c, da, width)
    ly = T
    lx = L + 2 * PW + GAP + 10
    for (model, dt, p, lm), (c, da, w) in sorted(legend.items()):
        o.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="{w}" '
                 f'stroke-dasharray="{da}"/><text x="{lx + 34}" y="{ly + 4}">{model} {dt} {p}'
                 f'{" auto" if lm == "auto" else ""}</text>')
        ly += 16
    o.append("</svg>")
    open(path, "w").write("\n".join(o))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="*")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    inputs = list(a.inputs)
    out = a.out
    if not out:
        if len(inputs) != 1 or not os.path.isdir(inputs[0]):
            ap.error("give --out DIR and input files, or one directory")
        out = inputs[0]
        inputs = [p for p in [os.path.join(out, "e2e.json")] if os.path.exists(p)]
        inputs += sorted(glob.glob(os.path.join(out, "hf_e2e*.json")))
    inputs = [p for p in inputs if os.path.exists(p)]
    if not inputs:
        print("plot_e2e: no input files")
        return 1
    ours, hf, meta = load(inputs)
    for m in meta:
        print("#", m)
    os.makedirs(out, exist_ok=True)
    ours_files = [p for p in inputs if isinstance(json.load(open(p)), list)]
    merged = os.path.join(out, "e2e.json")
    if ours and [os.path.abspath(p) for p in ours_files] != [os.path.abspath(merged)]:
        json.dump(ours, open(merged, "w"), indent=1)
        with open(os.path.join(out, "e2e.csv"), "w") as f:
            f.write(",".join(COLS) + "\n")
            for r in ours:
                f.write(",".join("" if r.get(c) is None else str(r[c]) for c in COLS) + "\n")
        print(f"# merged {len(ours)} records into {merged} and e2e.csv")
    print("\n".join(tables(ours, hf)))
    if write_svg(os.path.join(out, "e2e.svg"), ours):
        print("\nwrote", os.path.join(out, "e2e.svg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
