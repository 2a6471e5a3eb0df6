#!/usr/bin/env python3
"""Turns the outputs of `scripts/gpu/targets.sh run` into the GPU targets table: each figure of the
current build and of the baseline build when one was carried (the median over rounds with the
min-max spread), the last recorded value (bench/targets/recorded.json) and the ratios cur/base and
cur/recorded.

  targets.py OUT_DIR [--recorded bench/targets/recorded.json]

Reads OUT_DIR/raw/<step>.<build>.r<round>.<ext>: the JSON reports of qwen3vl-attn-bench (.json), or
for a baseline of the executables it replaced, qwen3vl-cuda-bench's JSON lines (.jsonl) and the
text of qwen3vl-decode-bench and qwen3vl-quest-bench (.log); and the PyTorch JSON (sdpa_f32.jsonl,
sdpa_gqa.jsonl, sdpa_decode.jsonl). OUT_DIR/card.txt names the card, kind_<build>.txt the kind of
binaries (driver or old).

Only like is compared with like: a ratio to the recorded figure needs the same card and the same
timing method (else "n/a (other card)" / "n/a (other method)"); cur/base needs the same method
(the copy a decode ratio divides by is a copy kernel in the driver, cudaMemcpyAsync or a graph's
memcpy node in the old executables). A step is within noise ("=") when the min-max spreads of the
two overlap (a recorded figure without a spread: when it lies within cur's), else "+" (better)
or "-" (worse).

Writes OUT_DIR/targets.jsonl (one object a figure, samples included) and
OUT_DIR/recorded.new.json (the current build's figures in the format of recorded.json, to copy over
it once checked), then prints the table."""
import argparse
import datetime
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_reports import decode_rows, load_jsonl, load_report, prefill_rows, quest_rows  # noqa: E402

LENS = (4096, 16384, 65536)
GQA_SEQS = (4096, 16384)
STEPS = ("prefill", "gqa", "decode_paged", "decode_contiguous", "quest", "block_sparse", "rope", "linear",
         "dynamic_sparse", "moh")


def text_name(n, dtype, causal=False, kv=None):
    return f"text H32 D128 N{n}{f' Hkv{kv}' if kv else ''}{' causal' if causal else ''} {dtype}"


class Samples:
    """Per build and round: the raw measurements the figures are computed from."""

    def __init__(self):
        self.runs = {}  # (build, round) -> {key: value}

    def put(self, build, rnd, key, value):
        if value is not None:
            self.runs.setdefault((build, rnd), {})[key] = value

    def append(self, build, rnd, key, value):
        if value is not None:
            self.runs.setdefault((build, rnd), {}).setdefault(key, []).append(value)

    def builds(self):
        return sorted({b for b, _ in self.runs}, key=lambda b: (b != "base", b))

    def rounds(self, build):
        return [self.runs[k] for k in sorted(self.runs) if k[0] == build]


def step_files(raw, step):
    """(build, round, path) of one step, the report preferred over the log of the same run."""
    best = {}
    for path in glob.glob(os.path.join(raw, f"{step}.*.r*.*")):
        m = re.match(rf"{step}\.(\w+)\.r(\d+)\.(json|jsonl|log)$", os.path.basename(path))
        if not m:
            continue
        rank = ("json", "jsonl", "log").index(m.group(3))
        key = (m.group(1), int(m.group(2)))
        if key not in best or rank < best[key][0]:
            best[key] = (rank, path)
    return [(b, r, p) for (b, r), (_, p) in sorted(best.items())]


def parse(out):
    s = Samples()
    raw = os.path.join(out, "raw")
    for step in ("prefill", "gqa", "block_sparse"):
        for b, r, path in step_files(raw, step):
            sgemm, rows = prefill_rows(path)
            if sgemm and step != "block_sparse":
                s.put(b, r, "sgemm", sgemm["gflops"])
            for row in rows:
                if step == "block_sparse":
                    m = re.search(r"bsr([\d.]+)%", row["case"])
                    if m and row.get("dense_over_sparse"):
                        s.put(b, r, ("bsr", row["dtype"], m.group(1)), row["dense_over_sparse"])
                else:
                    s.put(b, r, ("att", row["case"], row["variant"]), row["gflops"])
                    s.put(b, r, ("att_ms", row["case"], row["variant"]), row["ms"])
    for layout in ("paged", "contiguous"):
        for b, r, path in step_files(raw, f"decode_{layout}"):
            for row in decode_rows(path):
                n = row["kv_len"]
                s.put(b, r, ("dec_ms", layout, n), row.get("ms"))
                s.put(b, r, ("dec_ratio", layout, n), row.get("ratio"))
                s.append(b, r, "copy", row.get("copy_gbps"))
                s.put(b, r, ("dec_graph_ms", layout, n), row.get("graph_ms"))
                s.put(b, r, ("dec_graph_ratio", layout, n), row.get("graph_ratio"))
                s.append(b, r, "graph_copy", row.get("graph_copy_gbps"))
    for b, r, path in step_files(raw, "quest"):
        for row in quest_rows(path):
            if row.get("data") == "structured" and row.get("aggregation") == "max" and row.get("budget") == 1024:
                n = row["kv_len"]
                s.put(b, r, ("quest", n), row.get("speedup"))
                s.put(b, r, ("quest_graph", n), row.get("graph_speedup"))
                s.put(b, r, ("quest_same", n), 1.0 if row.get("same_selection") else 0.0)
    for b, r, path in step_files(raw, "rope"):
        for row in (load_report(path) or {}).get("rows", []):
            if row.get("device") == "cuda":
                s.put(b, r, ("rope", row["dtype"], row["mode"]), row.get("rope_over_copy"))
    for b, r, path in step_files(raw, "linear"):
        ctx = (load_report(path) or {}).get("context", {})
        s.put(b, r, "linear_scaling", ctx.get("t16384_over_t4096"))
        s.put(b, r, "linear_crossover", ctx.get("crossover_n"))
    for b, r, path in step_files(raw, "dynamic_sparse"):
        for row in (load_report(path) or {}).get("rows", []):
            m = re.match(r"(\d+) blocks", row.get("budget", ""))
            if row.get("method", "").startswith("block_topk") and m:
                s.put(b, r, ("ds_time", int(m.group(1))), row.get("over_dense"))
                s.put(b, r, ("ds_recall", int(m.group(1))), row.get("recall"))
    for b, r, path in step_files(raw, "moh"):
        for row in (load_report(path) or {}).get("rows", []):
            if row.get("case", "").startswith("moh "):
                s.put(b, r, ("moh", row["percent"]), row.get("over_dense"))
    torch = {}
    for name in ("sdpa_f32", "sdpa_gqa"):
        path = os.path.join(raw, name + ".jsonl")
        if os.path.exists(path):
            for row in load_jsonl(path):
                if row.get("backend") == "best" and row.get("ms"):
                    kv = row["kv_heads"] if row["kv_heads"] != row["heads"] else None
                    key = ("vision", row["dtype"]) if row["shape"] == "vision" else \
                        (row["seq"], row["dtype"], row["causal"], kv)
                    torch[("sdpa",) + key] = (row["ms"], row["gflops"], row.get("fastest"))
    path = os.path.join(raw, "sdpa_decode.jsonl")
    if os.path.exists(path):
        for row in load_jsonl(path):
            if row.get("backend") == "best":
                torch[("dec", row["kv_len"])] = (row.get("ms"), row.get("graph_ms"),
                                                 f"{row.get('fastest')}/{row.get('graph_fastest')}")
    return s, torch


def div(a, b):
    return a / b if a is not None and b else None


# How a figure was timed, by the kind of binaries ("driver" or "old") that produced it. Kernel
# times are event-timed single calls or groups ("events") or graph replays ("graph") in both; the
# copy a decode ratio divides by differs.
METHODS = {
    "events": {"driver": "events", "old": "events"},
    "graph": {"driver": "graph", "old": "graph"},
    "events_copy": {"driver": "events; copy kernel", "old": "events; cudaMemcpyAsync copy"},
    "graph_copy": {"driver": "graph; copy kernel", "old": "graph; memcpy-node copy"},
    "rope_copy": {"driver": "events; cudaMemcpyAsync copy", "old": "events; cudaMemcpyAsync copy"},
    "torch": {"driver": "torch events", "old": "torch events"},
}


def figures(torch):
    """(id, unit, higher_is_better, method kind, fn(run) -> value or None) for every figure; run is
    one round's measurements of one build."""
    out = []

    def att(run, name, variant="flash2"):
        return run.get(("att", name, variant))

    def att_ms(run, name, variant="flash2"):
        return run.get(("att_ms", name, variant))

    def sdpa(key, i):
        v = torch.get(("sdpa",) + key)
        return v[i] if v else None

    out.append(("sgemm_gflops", "GFLOP/s", True, "events", lambda r: r.get("sgemm")))
    f32 = text_name(4096, "f32")
    f32c = text_name(4096, "f32", True)
    vis = "vision H16 D72 N1024x16fr f32"
    out.append(("f32_n4096_gflops", "GFLOP/s", True, "events", lambda r: att(r, f32)))
    out.append(("f32_n4096_over_sgemm", "x", True, "events", lambda r: div(att(r, f32), r.get("sgemm"))))
    out.append(("f32_n4096_causal_over_sgemm", "x", True, "events", lambda r: div(att(r, f32c), r.get("sgemm"))))
    out.append(("f32_n4096_causal_rate_over_noncausal", "x", True, "events",
                lambda r: div(att(r, f32c), att(r, f32))))
    out.append(("vision_f32_over_sgemm", "x", True, "events", lambda r: div(att(r, vis), r.get("sgemm"))))
    out.append(("f32_n4096_over_torch_fp32", "x", True, "events",
                lambda r: div(att(r, f32), sdpa((4096, "f32", False, None), 1))))
    out.append(("f32_n4096_causal_over_torch_fp32", "x", True, "events",
                lambda r: div(att(r, f32c), sdpa((4096, "f32", True, None), 1))))
    out.append(("vision_f32_over_torch_fp32", "x", True, "events",
                lambda r: div(att(r, vis), sdpa(("vision", "f32"), 1))))
    for n, dt, causal in ((1024, "f32", False), (1024, "f32", True), (1024, "f16", False), (1024, "f16", True),
                          (4096, "f32", False), (4096, "f32", True)):
        name = text_name(n, dt, causal)
        out.append((f"sm61_over_flash2_n{n}_{dt}{'_causal' if causal else ''}", "x", True, "events",
                    lambda r, name=name: div(att(r, name, "sm61_tiled"), att(r, name))))
    for dt in ("f16", "bf16"):
        for n in GQA_SEQS:
            for causal in (False, True):
                name = text_name(n, dt, causal, 8)
                fid = f"{dt}_gqa8_n{n}{'_causal' if causal else ''}"
                out.append((fid + "_ms", "ms", False, "events", lambda r, name=name: att_ms(r, name)))
                out.append((fid + "_over_torch_best", "x", True, "events",
                            lambda r, name=name, k=(n, dt, causal, 8): div(sdpa(k, 0), att_ms(r, name))))
    med = lambda v: statistics.median(v) if v else None  # noqa: E731
    out.append(("decode_copy_gbps", "GB/s", True, "events_copy", lambda r: med(r.get("copy"))))
    out.append(("decode_graph_copy_gbps", "GB/s", True, "graph_copy", lambda r: med(r.get("graph_copy"))))
    for n in LENS:
        t = torch.get(("dec", n), (None, None, None))
        out.append((f"torch_decode_{n}_us", "us", False, "torch", lambda r, t=t: t[0] * 1e3 if t[0] else None))
        out.append((f"torch_decode_{n}_graph_us", "us", False, "torch",
                    lambda r, t=t: t[1] * 1e3 if t[1] else None))
    for layout in ("paged", "contiguous"):
        for n in LENS:
            t = torch.get(("dec", n), (None, None, None))
            p = f"decode_{layout}_{n}"
            out.append((p + "_us", "us", False, "events",
                        lambda r, k=("dec_ms", layout, n): r[k] * 1e3 if k in r else None))
            out.append((p + "_copy_ratio", "x", True, "events_copy", lambda r, k=("dec_ratio", layout, n): r.get(k)))
            out.append((p + "_graph_us", "us", False, "graph",
                        lambda r, k=("dec_graph_ms", layout, n): r[k] * 1e3 if k in r else None))
            out.append((p + "_graph_copy_ratio", "x", True, "graph_copy",
                        lambda r, k=("dec_graph_ratio", layout, n): r.get(k)))
            out.append((p + "_over_torch", "x", True, "events",
                        lambda r, k=("dec_ms", layout, n), t=t: div(t[0], r.get(k))))
            out.append((p + "_graph_over_torch", "x", True, "graph",
                        lambda r, k=("dec_graph_ms", layout, n), t=t: div(t[1], r.get(k))))
    for n in (16384, 65536):
        out.append((f"quest_{n}_speedup", "x", True, "events", lambda r, n=n: r.get(("quest", n))))
        out.append((f"quest_{n}_graph_speedup", "x", True, "graph", lambda r, n=n: r.get(("quest_graph", n))))
    for dt in ("f32", "f16"):
        for pct in ("50", "10", "5"):
            out.append((f"block_sparse_{dt}_{pct}pct_dense_over_sparse", "x", True, "events",
                        lambda r, k=("bsr", dt, pct): r.get(k)))
    for dt in ("f32", "bf16"):
        for mode in ("rope-1d/full", "mrope-qwen3/full", "mrope-qwen3/split"):
            fid = f"rope_{dt}_{mode.replace('-', '').replace('/', '_')}_copy_ratio"
            out.append((fid, "x", True, "rope_copy", lambda r, k=("rope", dt, mode): r.get(k)))
    out.append(("linear_t16384_over_t4096", "x", False, "events", lambda r: r.get("linear_scaling")))
    out.append(("linear_crossover_n", "N", False, "events", lambda r: r.get("linear_crossover")))
    for top in (8, 32):
        out.append((f"dynamic_sparse_top{top}_time_over_dense", "x", False, "events",
                    lambda r, top=top: r.get(("ds_time", top))))
        out.append((f"dynamic_sparse_top{top}_recall", "x", True, "events",
                    lambda r, top=top: r.get(("ds_recall", top))))
    for pct in (25, 50, 75, 100):
        out.append((f"moh_{pct}pct_time_over_dense", "x", False, "events", lambda r, pct=pct: r.get(("moh", pct))))
    return out


def safe(fn, run):
    """fn(run), or None where a malformed output left it nothing to compute with."""
    try:
        return fn(run)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 10 else f"{v:.3f}"


def spread(vals):
    return f"{fmt(min(vals))}-{fmt(max(vals))}" if len(vals) > 1 else ""


def verdict(a_lo, a_hi, b_lo, b_hi, a_med, b_med, higher):
    """'=' when [a_lo, a_hi] and [b_lo, b_hi] overlap (within noise), else '+' when a is better."""
    if a_lo <= b_hi and b_lo <= a_hi:
        return "="
    return "+" if (a_med > b_med) == higher else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--recorded", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                       "bench", "targets", "recorded.json"))
    args = ap.parse_args()
    samples, torch = parse(args.out)
    recorded = {}
    if os.path.exists(args.recorded):
        recorded = {f["id"]: f for f in json.load(open(args.recorded))["figures"]}
    meta = {}
    for name in ("card", "commit_cur", "commit_base", "kind_cur", "kind_base"):
        path = os.path.join(args.out, name + ".txt")
        meta[name] = open(path).read().strip() if os.path.exists(path) else None
    kinds = {"cur": meta["kind_cur"] or "driver", "base": meta["kind_base"] or "old"}
    card = meta["card"] or "unknown"
    builds = samples.builds()
    rows = []
    for fid, unit, higher, mkind, fn in figures(torch):
        row = dict(id=fid, unit=unit, higher_is_better=higher)
        for b in ("base", "cur"):
            if mkind == "torch":  # measured once, shown in the cur column
                vals = [v for v in [safe(fn, {})] if v is not None] if b == "cur" else []
            else:
                vals = [v for v in (safe(fn, run) for run in samples.rounds(b)) if v is not None]
            row[b + "_samples"] = vals
            row[b] = statistics.median(vals) if vals else None
            row[b + "_method"] = METHODS[mkind][kinds[b]]
        rec = recorded.get(fid)
        row["recorded"] = rec["value"] if rec else None
        row["recorded_source"] = f"{rec['card']} {rec['commit']}" if rec else None
        # Figures recorded before methods were named came from the old executables.
        row["recorded_method"] = (rec.get("method") or METHODS[mkind]["old"]) if rec else None
        row["cur_over_base"] = row["cur_vs_base"] = None
        if row["cur"] is not None and row["base"] is not None:
            if row["cur_method"] != row["base_method"]:
                row["cur_vs_base"] = "n/a (other method)"
            else:
                c, b = row["cur_samples"], row["base_samples"]
                row["cur_over_base"] = div(row["cur"], row["base"])
                row["cur_vs_base"] = verdict(min(c), max(c), min(b), max(b), row["cur"], row["base"], higher)
        row["cur_over_recorded"] = row["cur_vs_recorded"] = None
        if row["cur"] is not None and rec:
            if rec.get("card") != card:
                row["cur_vs_recorded"] = "n/a (other card)"
            elif row["recorded_method"] != row["cur_method"]:
                row["cur_vs_recorded"] = "n/a (other method)"
            else:
                c = row["cur_samples"]
                row["cur_over_recorded"] = div(row["cur"], row["recorded"])
                lo, hi = rec.get("min", rec["value"]), rec.get("max", rec["value"])
                row["cur_vs_recorded"] = verdict(min(c), max(c), lo, hi, row["cur"], rec["value"], higher)
        rows.append(row)
    with open(os.path.join(args.out, "targets.jsonl"), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    new = dict(about="Written by scripts/gpu/targets.py: the current build's figures of one run (median over "
                     "rounds, min and max), each with the card and the timing method.",
               figures=[dict(id=r["id"], value=r["cur"], min=min(r["cur_samples"]), max=max(r["cur_samples"]),
                             rounds=len(r["cur_samples"]), unit=r["unit"], card=card, method=r["cur_method"],
                             commit=meta["commit_cur"] or "unknown", date=datetime.date.today().isoformat(),
                             note="scripts/gpu/targets.sh run")
                        for r in rows if r["cur"] is not None])
    with open(os.path.join(args.out, "recorded.new.json"), "w") as f:
        json.dump(new, f, indent=1)
        f.write("\n")

    sources = sorted({r["recorded_source"] for r in rows if r["recorded_source"]})
    letter = {s: chr(ord("A") + i) for i, s in enumerate(sources)}
    print(f"# card: {card}; cur {meta['commit_cur']} ({kinds['cur']})"
          + (f"; base {meta['commit_base']} ({kinds['base']})" if "base" in builds else "; no baseline carried")
          + f"; rounds: cur {len(samples.rounds('cur'))}"
          + (f", base {len(samples.rounds('base'))}" if "base" in builds else ""))
    if sources:
        print("# recorded: " + "; ".join(f"{letter[s]} = {s}" for s in sources))
    dec = [f"{k[1]} {v[2]}" for k, v in sorted((k, v) for k, v in torch.items() if k[0] == "dec")]
    if dec:
        print("# torch decode, fastest backend events/graph: " + ", ".join(dec))
    pre = [f"{k[2]} N{k[1]}{' causal' if k[3] else ''}: {v[2]}" for k, v in torch.items()
           if k[0] == "sdpa" and k[1] != "vision"]
    if pre:
        print("# torch prefill, fastest backend: " + ", ".join(pre))
    print("# median over rounds [min-max]; = within noise (spreads overlap), + better, - worse")
    print(f"{'figure':44s} {'unit':7s} {'recorded':>10s} {'base':>9s} {'[spread]':>13s} {'cur':>9s} "
          f"{'[spread]':>13s} {'cur/base':>19s} {'cur/rec':>19s}")

    def compare(ratio, word):
        if word is None:
            return "-"
        return word if word.startswith("n/a") else f"{fmt(ratio)}{word}"

    for r in rows:
        if r["cur"] is None and r["base"] is None and r["recorded"] is None:
            continue
        src = letter.get(r["recorded_source"], " ")
        print(f"{r['id']:44s} {r['unit']:7s} {fmt(r['recorded']):>9s}{src} {fmt(r['base']):>9s} "
              f"{spread(r['base_samples']):>13s} {fmt(r['cur']):>9s} {spread(r['cur_samples']):>13s} "
              f"{compare(r['cur_over_base'], r['cur_vs_base']):>19s} "
              f"{compare(r['cur_over_recorded'], r['cur_vs_recorded']):>19s}")


if __name__ == "__main__":
    main()
