#!/usr/bin/env python3
"""SVG plots of qwen3vl-attn-bench JSON reports (python3 standard library only, so it runs on any
machine the benchmark ran on).

Give it any mix of files; each is recognised by its content:
  prefill / cuda-prefill reports   -> prefill.svg: GFLOP/s against sequence length, one line per
                                      variant (and shape family), the same run's sgemm rate dashed
  decode reports                   -> decode.svg: K/V GB/s against KV length, the same run's copy
                                      bandwidth dashed
  block-sparse reports, and        -> block_sparse.svg: time per call against the layout's
  cuda-prefill --block-sparse         density, dense flash2 dashed, the ideal dense x density dotted
  JSON lines of scripts/gpu/sdpa_bench.py (kind "sdpa")         -> a PyTorch SDPA line in prefill.svg
  JSON lines of bench/kv_cache/sdpa_decode.py (kind "sdpa_decode") -> one in decode.svg
(PyTorch lines use the fastest backend per case: backend "best".) Several reports of one routine
are merged, e.g. one prefill run per --seq. Titles carry the machine (CPU model, or GPU) and the
commit of the reports.

usage: scripts/plot_bench.py [--out-dir DIR] FILE...
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape, quoteattr

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f"]
REFERENCE = "#444444"  # sgemm, copy and dense lines: dashed and grey, beside the colored series


# ---------------------------------------------------------------------------------------- input

def load(path):
    """A benchmark report (one JSON object with "routine") or a list of JSON-lines records."""
    with open(path) as f:
        text = f.read()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and "routine" in doc:
            return {"report": doc}
        if isinstance(doc, dict):
            return {"records": [doc]}
    except ValueError:
        pass
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: neither a qwen3vl-attn-bench report nor JSON lines: {e}")
    return {"records": records}


def arg_value(report, flag, default):
    args = report.get("args", [])
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class Inputs:
    """Every file, sorted by what it feeds."""

    def __init__(self):
        self.reports = {}  # routine -> [report]
        self.sdpa = []
        self.sdpa_decode = []

    def add(self, path):
        doc = load(path)
        if "report" in doc:
            r = doc["report"]
            self.reports.setdefault(r["routine"], []).append(r)
            return
        for rec in doc["records"]:
            if rec.get("kind") == "sdpa":
                self.sdpa.append(rec)
            elif rec.get("kind") == "sdpa_decode":
                self.sdpa_decode.append(rec)

    def get(self, *routines):
        return [r for name in routines for r in self.reports.get(name, [])]


def machine_line(reports, devices):
    """'CPU model (N cores, isa)' or the GPU names, then the commits and dates of the reports."""
    names, commits, dates = [], [], []

    def once(lst, x):
        if x and x not in lst:
            lst.append(x)

    for r in reports:
        m = r.get("machine", {})
        if "cuda" in devices.get(id(r), ()):
            for g in m.get("gpus", []):
                once(names, f"{g.get('name', '?')} ({g.get('arch', '?')})")
        if "cpu" in devices.get(id(r), ()) or not m.get("gpus"):
            cores = m.get("physical_cores")
            extra = ", ".join(x for x in (f"{cores} cores" if cores else "", m.get("isa", "")) if x)
            once(names, m.get("cpu", "unknown CPU") + (f" ({extra})" if extra else ""))
        once(commits, r.get("commit", ""))
        once(dates, (r.get("date") or "")[:10])
    parts = ["; ".join(names) or "unknown machine"]
    if commits:
        parts.append("commit " + ", ".join(commits))
    if dates:
        parts.append(", ".join(dates))
    return " \u00b7 ".join(parts)


# ---------------------------------------------------------------------------------------- scales

def nice_step(span, target):
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt_number(v):
    if v == 0:
        return "0"
    if abs(v) >= 1e4 and v == int(v):
        return f"{int(v):,}"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    if v == int(v):
        return str(int(v))
    return f"{v:.3g}"


def fmt_pow2(v):
    v = int(round(v))
    if v >= 1 << 20 and v % (1 << 20) == 0:
        return f"{v >> 20}M"
    if v >= 1 << 10 and v % (1 << 10) == 0:
        return f"{v >> 10}K"
    return str(v)


class Scale:
    """Maps data to pixels: 'linear' (from 0), 'log2' (powers of two) or 'log10' (1-2-5 ticks)."""

    def __init__(self, kind, values, lo_px, hi_px):
        self.kind, self.lo_px, self.hi_px = kind, lo_px, hi_px
        values = [v for v in values if finite(v) and (kind == "linear" or v > 0)]
        if not values:
            values = [1.0]
        vmin, vmax = min(values), max(values)
        if kind == "linear":
            vmin = min(0.0, vmin)
            if vmax <= vmin:
                vmax = vmin + 1.0
            step = nice_step(vmax - vmin, 6)
            self.lo = math.floor(vmin / step) * step
            self.hi = math.ceil(vmax / step) * step
            if self.hi - vmax < 0.02 * (self.hi - self.lo):  # room above the top point
                self.hi += step
            n = int(round((self.hi - self.lo) / step))
            self.ticks = [(self.lo + i * step, fmt_number(self.lo + i * step)) for i in range(n + 1)]
        elif kind == "log2":
            lo, hi = math.floor(math.log2(vmin)), math.ceil(math.log2(vmax))
            if hi == lo:
                lo, hi = lo - 1, hi + 1
            self.lo, self.hi = 2.0 ** lo, 2.0 ** hi
            every = max(1, int(math.ceil((hi - lo) / 10)))
            self.ticks = [(2.0 ** e, fmt_pow2(2.0 ** e)) for e in range(lo, hi + 1, every)]
        else:
            lo, hi = math.log10(vmin), math.log10(vmax)
            pad = max(0.05 * (hi - lo), 0.05)
            lo, hi = lo - pad, hi + pad
            self.lo, self.hi = 10 ** lo, 10 ** hi
            decades = math.ceil(hi) - math.floor(lo)
            # Fewer marks over many decades; every digit where the range is narrow.
            for mults in (((1,) if decades > 3 else (1, 2, 5)), tuple(range(1, 10))):
                self.ticks = []
                for e in range(math.floor(lo), math.ceil(hi) + 1):
                    for m in mults:
                        v = m * 10.0 ** e
                        if self.lo <= v <= self.hi:
                            self.ticks.append((v, fmt_number(float(f"{v:.6g}"))))
                if len(self.ticks) >= 2:
                    break
            if len(self.ticks) < 2:  # narrower than one digit step: mark both ends
                self.ticks = [(v, fmt_number(float(f"{v:.3g}"))) for v in (self.lo, self.hi)]

    def __call__(self, v):
        if self.kind == "linear":
            t = (v - self.lo) / (self.hi - self.lo)
        else:
            t = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return self.lo_px + t * (self.hi_px - self.lo_px)


# ---------------------------------------------------------------------------------------- chart

class Series:
    def __init__(self, label, points, color=None, dash=None, marker=True, kind="measured"):
        self.label = label
        self.points = sorted((x, y) for x, y in points if finite(x) and finite(y))
        self.color, self.dash, self.marker, self.kind = color, dash, marker, kind


def text_width(s, size=12):
    return 0.6 * size * len(s)


def render(title, subtitle, xlabel, ylabel, xscale, yscale, series, note=None):
    """The chart as SVG text: plot area, ticks and grid, one <g class="series"> per series, and a
    legend below the plot, wrapped into rows to the chart's width."""
    width, plot_h = 760, 380
    left, right, top = 72, 24, 66
    series = [s for s in series if s.points]
    colors = iter(PALETTE * 4)
    for s in series:
        if s.color is None:
            s.color = next(colors)
    # Legend layout first: it decides the height.
    entries, row, x, rows = [], 0, 0.0, 1
    avail = width - left - right
    for s in series:
        w = 34 + text_width(s.label) + 18
        if x > 0 and x + w > avail:
            row, x, rows = row + 1, 0.0, rows + 1
        entries.append((s, x, row))
        x += w
    plot_bottom = top + plot_h
    legend_top = plot_bottom + 52
    height = int(legend_top + rows * 20 + (28 if note else 10))

    xs = Scale(xscale, [p[0] for s in series for p in s.points], left, width - right)
    ys = Scale(yscale, [p[1] for s in series for p in s.points], plot_bottom, top)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
           f"<title>{escape(title)}</title>",
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text class="title" x="{width / 2:.1f}" y="24" text-anchor="middle" '
           f'font-size="{min(16, int((width - 24) / (0.64 * max(len(title), 1))))}" '
           f'font-weight="bold">{escape(title)}</text>',
           f'<text class="subtitle" x="{width / 2:.1f}" y="44" text-anchor="middle" font-size="11" '
           f'fill="#333">{escape(subtitle)}</text>',
           '<g class="axes">']
    for v, label in xs.ticks:
        px = xs(v)
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{plot_bottom}" stroke="#e4e4e4"/>')
        out.append(f'<line x1="{px:.1f}" y1="{plot_bottom}" x2="{px:.1f}" y2="{plot_bottom + 5}" stroke="black"/>')
        out.append(f'<text class="xtick" x="{px:.1f}" y="{plot_bottom + 18}" text-anchor="middle">'
                   f"{escape(label)}</text>")
    for v, label in ys.ticks:
        py = ys(v)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{width - right}" y2="{py:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<line x1="{left - 5}" y1="{py:.1f}" x2="{left}" y2="{py:.1f}" stroke="black"/>')
        out.append(f'<text class="ytick" x="{left - 8}" y="{py + 4:.1f}" text-anchor="end">'
                   f"{escape(label)}</text>")
    out.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{plot_h}" '
               'fill="none" stroke="black"/>')
    out.append(f'<text class="xlabel" x="{(left + width - right) / 2:.1f}" y="{plot_bottom + 38}" '
               f'text-anchor="middle" font-size="13">{escape(xlabel)}</text>')
    cy = (top + plot_bottom) / 2
    out.append(f'<text class="ylabel" x="18" y="{cy:.1f}" text-anchor="middle" font-size="13" '
               f'transform="rotate(-90 18 {cy:.1f})">{escape(ylabel)}</text>')
    out.append("</g>")

    for s in series:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        pts = " ".join(f"{xs(x):.1f},{ys(y):.1f}" for x, y in s.points)
        out.append(f'<g class="series" data-label={quoteattr(s.label)} data-kind="{s.kind}" '
                   f'data-points="{len(s.points)}">')
        out.append(f'<polyline points="{pts}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>')
        if s.marker:
            for x, y in s.points:
                out.append(f'<circle cx="{xs(x):.1f}" cy="{ys(y):.1f}" r="3.5" fill="{s.color}">'
                           f"<title>{escape(s.label)}: {fmt_number(float(f'{x:.4g}'))}, "
                           f"{float(f'{y:.4g}'):g}</title></circle>")
        out.append("</g>")

    out.append('<g class="legend">')
    for s, x, row in entries:
        lx, ly = left + x, legend_top + row * 20
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<g class="legend-entry" data-label={quoteattr(s.label)}>')
        out.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 26:.1f}" y2="{ly - 4}" '
                   f'stroke="{s.color}" stroke-width="2"{dash}/>')
        if s.marker:
            out.append(f'<circle cx="{lx + 13:.1f}" cy="{ly - 4}" r="3.5" fill="{s.color}"/>')
        out.append(f'<text x="{lx + 32:.1f}" y="{ly}">{escape(s.label)}</text></g>')
    out.append("</g>")
    if note:
        out.append(f'<text class="note" x="{left}" y="{height - 10}" font-size="10" fill="#555">'
                   f"{escape(note)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- prefill

def prefill_points(inputs):
    """Rows of prefill and cuda-prefill reports as (report, device, family, variant, seq, gflops,
    sgemm): family names the shape, so text and vision, causal and not, stay separate lines."""
    out = []
    for r in inputs.get("prefill"):
        for row in r.get("rows", []):
            fam = (f"H{row['heads']}/{row['kv_heads']} D{row['head_dim']}"
                   f"{' x' + str(row['batch']) if row.get('batch', 1) > 1 else ''}"
                   f"{' causal' if row.get('causal') else ''} {row.get('dtype', '')}")
            out.append(dict(report=r, device=row.get("device", "cpu"), family=fam,
                            variant=row["variant"], seq=row.get("seq_k"), gflops=row.get("gflops"),
                            sgemm=row.get("sgemm_gflops"), sgemm_source=row.get("sgemm_source", ""),
                            causal=bool(row.get("causal")), dtype=row.get("dtype"),
                            heads=row.get("heads"), kv_heads=row.get("kv_heads"),
                            head_dim=row.get("head_dim")))
    for r in inputs.get("cuda-prefill"):
        ctx = r.get("context", {})
        if any(row.get("variant") == "block_sparse" for row in r.get("rows", [])):
            continue  # a --block-sparse run: block_sparse.svg
        for row in r.get("rows", []):
            frames = row.get("frames") or 0
            fam = (f"{row.get('shape', 'text')} H{row['heads']}/{row['kv_heads']} D{row['head_dim']}"
                   f"{' x' + str(frames) if frames else ''}"
                   f"{' causal' if row.get('causal') else ''} {row.get('dtype', '')}")
            out.append(dict(report=r, device="cuda", family=fam, variant=row["variant"],
                            seq=row.get("seq"), gflops=row.get("gflops"),
                            sgemm=ctx.get("sgemm_gflops"), sgemm_source=ctx.get("sgemm_source", ""),
                            causal=bool(row.get("causal")), dtype=row.get("dtype"),
                            heads=row.get("heads"), kv_heads=row.get("kv_heads"),
                            head_dim=row.get("head_dim"), shape=row.get("shape", "text")))
    return out


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2 if n else None


def group(points, key, x, y):
    """{key: [(x, median y over duplicates)]} in first-seen key order."""
    acc = {}
    for p in points:
        acc.setdefault(key(p), {}).setdefault(p[x], []).append(p[y])
    return {k: [(xv, median(ys)) for xv, ys in v.items() if None not in ys] for k, v in acc.items()}


def plot_prefill(inputs):
    pts = [p for p in prefill_points(inputs) if finite(p["seq"]) and finite(p["gflops"])]
    if not pts:
        return None
    families = list(dict.fromkeys(p["family"] for p in pts))
    devices = list(dict.fromkeys(p["device"] for p in pts))

    def label(p):
        s = p["variant"] + (f" ({p['device']})" if len(devices) > 1 else "")
        return s + (f", {p['family']}" if len(families) > 1 else "")

    series = [Series(k, v) for k, v in group(pts, label, "seq", "gflops").items()]
    # The same run's sgemm: one point per run (its sequence lengths), one line per device.
    for dev, v in group([p for p in pts if finite(p["sgemm"])], lambda p: p["device"], "seq",
                        "sgemm").items():
        src = next((p["sgemm_source"] for p in pts if p["device"] == dev and p["sgemm_source"]), "")
        src = src.split(" (")[0]
        series.append(Series(f"sgemm ({dev}{', ' + src if src else ''})", v, color=REFERENCE,
                             dash="6 4", kind="sgemm"))
    # PyTorch SDPA where its shape matches a plotted family (dtype, causal, Hq, D).
    plotted = {(p["dtype"], p["causal"], p["heads"], p["head_dim"]) for p in pts}
    sdpa = [dict(rec, causal=bool(rec.get("causal"))) for rec in inputs.sdpa
            if rec.get("backend") == "best" and rec.get("shape", "text") == "text"]
    sdpa = [s for s in sdpa if (s.get("dtype"), s["causal"], s.get("heads"), s.get("head_dim")) in plotted]
    if sdpa:
        # Its shape goes into the label unless it is the one shape plotted.
        fams = {(s["causal"], s.get("dtype"), s.get("kv_heads")) for s in sdpa}
        same_kv = {s.get("kv_heads") for s in sdpa} == {p["kv_heads"] for p in pts}
        named = len(fams) > 1 or len(families) > 1 or not same_kv

        def sdpa_label(s):
            shape = (f", H{s.get('heads')}/{s.get('kv_heads')}{' causal' if s['causal'] else ''} "
                     f"{s.get('dtype')}")
            return "PyTorch SDPA (fastest backend" + (shape if named else "") + ")"

        for k, v in group([s for s in sdpa if finite(s.get("gflops"))], sdpa_label, "seq",
                          "gflops").items():
            series.append(Series(k, v, color="#000000", dash="2 3", kind="sdpa"))
    reports = {id(p["report"]): p["report"] for p in pts}  # in first-seen order
    devs = {}
    for p in pts:
        devs.setdefault(id(p["report"]), set()).add(p["device"])
    fam = f" ({families[0]})" if len(families) == 1 else ""
    return render(f"Prefill attention: GFLOP/s vs sequence length{fam}",
                  machine_line(list(reports.values()), devs),
                  "sequence length (Lq = Lk)", "GFLOP/s", "log2", "linear", series,
                  note="GFLOP/s = 4 \u00b7 Hq \u00b7 D \u00b7 visible query-key pairs / median time "
                       "(causal: about half the pairs); sgemm measured in the same run.")


# ---------------------------------------------------------------------------------------- decode

def plot_decode(inputs):
    reports = inputs.get("decode")
    rows = [(r, row) for r in reports for row in r.get("rows", [])
            if finite(row.get("kv_len")) and finite(row.get("kv_gbps"))]
    if not rows:
        return None

    def config(row):
        fmt = row.get("format", "float")
        return (f"{row.get('device', 'cpu')} {row.get('layout', '')} "
                f"{row.get('dtype') if fmt == 'float' else fmt}"
                f"{', B' + str(row['batch']) if row.get('batch', 1) > 1 else ''}"
                f"{', ' + str(row['rows']) + ' rows' if row.get('rows', 1) > 1 else ''}")

    configs = list(dict.fromkeys(config(row) for _, row in rows))
    pts = [dict(cfg=config(row), device=row.get("device", "cpu"), x=row["kv_len"], y=row["kv_gbps"],
                copy=row.get("copy_gbps"), method=row.get("copy_method", "copy")) for _, row in rows]
    series = [Series(f"decode ({k})", v) for k, v in group(pts, lambda p: p["cfg"], "x", "y").items()]
    for k, v in group([p for p in pts if finite(p["copy"])],
                      lambda p: f"copy bandwidth ({p['device']}, {p['method']}, read + written)",
                      "x", "copy").items():
        series.append(Series(k, v, color=REFERENCE, dash="6 4", kind="copy"))
    sdpa = []
    for rec in inputs.sdpa_decode:
        if rec.get("backend") != "best" or not finite(rec.get("ratio")) or not finite(rec.get("copy_gbps")):
            continue
        # sdpa_decode.py records ms and ratio = K/V GB/s / copy GB/s: the same figure as decode's.
        sdpa.append(dict(x=rec["kv_len"], y=rec["ratio"] * rec["copy_gbps"]))
    if sdpa:
        series.append(Series("PyTorch SDPA (fastest backend, f16)",
                             group(sdpa, lambda p: 0, "x", "y")[0], color="#000000", dash="2 3",
                             kind="sdpa"))
    devs = {id(r): {row.get("device", "cpu")} for r, row in rows}
    one = f" ({configs[0]})" if len(configs) == 1 else ""
    return render(f"Decode attention: K/V bandwidth vs KV length{one}",
                  machine_line(list({id(r): r for r, _ in rows}.values()), devs),
                  "KV length (tokens)", "GB/s", "log2", "linear", series,
                  note="decode: K/V bytes read per second (Hq 32 / Hkv 8, D 128); "
                       "copy: bytes read + written per second in the same run.")


# ---------------------------------------------------------------------------------------- block-sparse

def plot_block_sparse(inputs):
    series, used, devs = [], [], {}
    cpu = inputs.get("block-sparse")
    cuda = [r for r in inputs.get("cuda-prefill")
            if any(row.get("variant") == "block_sparse" for row in r.get("rows", []))]
    many = len(cpu) + len(cuda) > 1
    for r in cpu:
        n = arg_value(r, "--n", "4096")
        heads = arg_value(r, "--heads", "1")
        causal = " causal" if "--causal" in r.get("args", []) else ""
        tag = f"N {n}, H {heads}{causal}"
        rows = r.get("rows", [])
        dense = [row for row in rows if row.get("case") == "dense"]
        sparse = [row for row in rows if row.get("case") != "dense" and finite(row.get("density"))]
        if not sparse:
            continue
        used.append(r)
        devs[id(r)] = {"cpu"}
        suffix = f", {tag}" if many else ""
        series.append(Series(f"block_sparse wall{suffix}",
                             [(row["density"], row["wall_ms"]) for row in sparse]))
        if dense and finite(dense[0].get("wall_ms")):
            d = dense[0]["wall_ms"]
            xs = [row["density"] for row in sparse]
            series.append(Series(f"dense flash2 wall{suffix}", [(min(xs), d), (1.0, d)],
                                 color=REFERENCE, dash="6 4", marker=False, kind="dense"))
            series.append(Series(f"ideal: dense wall \u00d7 density{suffix}",
                                 [(x, d * x) for x in xs], color="#999999", dash="2 3",
                                 marker=False, kind="ideal"))
    for r in cuda:
        rows = r.get("rows", [])
        for dtype in dict.fromkeys(row.get("dtype") for row in rows):
            sparse = [row for row in rows if row.get("dtype") == dtype
                      and row.get("variant") == "block_sparse" and finite(row.get("density"))]
            dense = [row for row in rows if row.get("dtype") == dtype and row.get("density") is None
                     and row.get("variant") == "flash2" and row.get("seq") == (sparse[0]["seq"] if sparse else None)]
            if not sparse:
                continue
            used.append(r)
            devs[id(r)] = {"cuda"}
            tag = f"cuda {dtype}, N {sparse[0].get('seq')}"
            series.append(Series(f"block_sparse ({tag})", [(row["density"], row["ms"]) for row in sparse]))
            if dense:
                d = dense[0]["ms"]
                xs = [row["density"] for row in sparse]
                series.append(Series(f"dense flash2 ({tag})", [(min(xs), d), (1.0, d)],
                                     color=REFERENCE, dash="6 4", marker=False, kind="dense"))
                series.append(Series(f"ideal: dense \u00d7 density ({tag})", [(x, d * x) for x in xs],
                                     color="#999999", dash="2 3", marker=False, kind="ideal"))
    if not series:
        return None
    one = ""
    if len(cpu) == 1 and not cuda:
        r = cpu[0]
        one = (f" (N {arg_value(r, '--n', '4096')}, H {arg_value(r, '--heads', '1')}, "
               f"D {arg_value(r, '--head-dim', '128')}, block {arg_value(r, '--block', '64')}, "
               f"{arg_value(r, '--threads', '2')} threads)")
    return render(f"Block-sparse attention: time vs density{one}",
                  machine_line(list({id(r): r for r in used}.values()), devs),
                  "layout density (kept blocks / visible blocks)", "ms per call", "log10", "log10",
                  series, note="Random BSR layouts with the diagonal block kept; median wall time "
                               "per call; dense flash2 on the same problem in the same run.")


# ---------------------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", metavar="FILE", help="JSON reports / JSON-lines files")
    ap.add_argument("--out-dir", default=".", help="where the SVGs go (default: .)")
    args = ap.parse_args(argv)
    inputs = Inputs()
    for path in args.files:
        inputs.add(path)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for name, plot in (("prefill.svg", plot_prefill), ("decode.svg", plot_decode),
                       ("block_sparse.svg", plot_block_sparse)):
        svg = plot(inputs)
        if svg is None:
            continue
        path = os.path.join(args.out_dir, name)
        with open(path, "w") as f:
            f.write(svg)
        written.append(path)
        print(path)
    if not written:
        print("plot_bench.py: nothing to plot: no prefill, cuda-prefill, decode or block-sparse rows",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
