#!/usr/bin/env python3
"""Turns the logs of `scripts/gpu/targets.sh run` into the GPU targets table: each figure of the
current build, of the baseline build when one was carried, the last recorded value
(bench/targets/recorded.json) and the ratios cur/base and cur/recorded.

  targets.py OUT_DIR [--recorded bench/targets/recorded.json]

Reads OUT_DIR/raw/*: qwen3vl-cuda-bench JSON (prefill.<build>.r<round>.jsonl, gqa.*), the text
output of qwen3vl-decode-bench and qwen3vl-quest-bench (decode_paged.*.log, decode_contiguous.*,
quest.*), and the PyTorch JSON (sdpa_f32.jsonl, sdpa_gqa.jsonl, sdpa_decode.jsonl). A figure
measured in several rounds is the median of the rounds. Writes OUT_DIR/targets.jsonl (one object
a figure, samples included) and OUT_DIR/recorded.new.json (the current build's figures in the
format of recorded.json, to copy over it once checked), then prints the table."""
import argparse
import datetime
import glob
import json
import os
import re
import statistics

LENS = (4096, 16384, 65536)
GQA_SEQS = (4096, 16384)


def load_jsonl(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line cut by a timeout
    return rows


def tag(path):
    """(build, round) from <step>.<build>.r<round>.<ext>."""
    m = re.match(r"[^.]+\.(\w+)\.r(\d+)\.", os.path.basename(path))
    return (m.group(1), int(m.group(2))) if m else (None, None)


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
        self.runs.setdefault((build, rnd), {}).setdefault(key, []).append(value)

    def builds(self):
        return sorted({b for b, _ in self.runs}, key=lambda b: (b != "base", b))

    def rounds(self, build):
        return [self.runs[k] for k in sorted(self.runs) if k[0] == build]


def parse(out):
    s = Samples()
    raw = os.path.join(out, "raw")
    for path in glob.glob(os.path.join(raw, "prefill.*.jsonl")) + glob.glob(os.path.join(raw, "gqa.*.jsonl")):
        b, r = tag(path)
        for row in load_jsonl(path):
            if row.get("kind") == "sgemm":
                s.put(b, r, "sgemm", row["gflops"])
            elif row.get("kind") == "attention":
                s.put(b, r, ("att", row["case"], row["variant"]), row["gflops"])
                s.put(b, r, ("att_ms", row["case"], row["variant"]), row["ms"])
    for layout in ("paged", "contiguous"):
        for path in glob.glob(os.path.join(raw, f"decode_{layout}.*.log")):
            b, r = tag(path)
            for line in open(path, errors="replace"):
                f = line.split()
                if len(f) < 9 or f[0] != "cuda" or not f[1].isdigit():
                    continue
                n = int(f[1])
                if len(f) >= 14:  # events first, graph columns last
                    s.put(b, r, ("dec_ms", layout, n), float(f[3]))
                    s.put(b, r, ("dec_ratio", layout, n), float(f[7]))
                    s.append(b, r, "copy", float(f[6]))
                    if f[11] != "-":
                        s.put(b, r, ("dec_graph_ms", layout, n), float(f[11]))
                        s.put(b, r, ("dec_graph_ratio", layout, n), float(f[13]))
                        s.append(b, r, "graph_copy", float(f[12]))
                else:  # a binary from before the events columns: it timed graphs only
                    s.put(b, r, ("dec_graph_ms", layout, n), float(f[3]))
                    s.put(b, r, ("dec_graph_ratio", layout, n), float(f[7]))
                    s.append(b, r, "graph_copy", float(f[6]))
    for path in glob.glob(os.path.join(raw, "quest.*.log")):
        b, r = tag(path)
        for line in open(path, errors="replace"):
            f = line.split()
            # cuda structured 16384 1024 max dense quest speedup recall min_rec same-selection
            #   graph: dense X quest Y speedup Z
            if len(f) >= 8 and f[0] == "cuda" and f[1] == "structured" and f[4] == "max":
                n = int(f[2])
                s.put(b, r, ("quest", n), float(f[7]))
                if "graph:" in f and f[-2] == "speedup":
                    s.put(b, r, ("quest_graph", n), float(f[-1]))
                s.put(b, r, ("quest_same", n), 1.0 if "same-selection" in f else 0.0)
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


def figures(torch):
    """(id, unit, higher_is_better, fn(run) -> value or None) for every figure; run is one round's
    measurements of one build."""
    out = []

    def att(run, name, variant="flash2"):
        return run.get(("att", name, variant))

    def att_ms(run, name, variant="flash2"):
        return run.get(("att_ms", name, variant))

    def sdpa(key, i):
        v = torch.get(("sdpa",) + key)
        return v[i] if v else None

    out.append(("sgemm_gflops", "GFLOP/s", True, lambda r: r.get("sgemm")))
    f32 = text_name(4096, "f32")
    f32c = text_name(4096, "f32", True)
    vis = "vision H16 D72 N1024x16fr f32"
    out.append(("f32_n4096_gflops", "GFLOP/s", True, lambda r: att(r, f32)))
    out.append(("f32_n4096_over_sgemm", "x", True, lambda r: div(att(r, f32), r.get("sgemm"))))
    out.append(("f32_n4096_causal_over_sgemm", "x", True, lambda r: div(att(r, f32c), r.get("sgemm"))))
    out.append(("f32_n4096_causal_rate_over_noncausal", "x", True, lambda r: div(att(r, f32c), att(r, f32))))
    out.append(("vision_f32_over_sgemm", "x", True, lambda r: div(att(r, vis), r.get("sgemm"))))
    out.append(("f32_n4096_over_torch_fp32", "x", True,
                lambda r: div(att(r, f32), sdpa((4096, "f32", False, None), 1))))
    out.append(("f32_n4096_causal_over_torch_fp32", "x", True,
                lambda r: div(att(r, f32c), sdpa((4096, "f32", True, None), 1))))
    out.append(("vision_f32_over_torch_fp32", "x", True, lambda r: div(att(r, vis), sdpa(("vision", "f32"), 1))))
    for n, dt, causal in ((1024, "f32", False), (1024, "f32", True), (1024, "f16", False), (1024, "f16", True),
                          (4096, "f32", False), (4096, "f32", True)):
        name = text_name(n, dt, causal)
        out.append((f"sm61_over_flash2_n{n}_{dt}{'_causal' if causal else ''}", "x", True,
                    lambda r, name=name: div(att(r, name, "sm61_tiled"), att(r, name))))
    for dt in ("f16", "bf16"):
        for n in GQA_SEQS:
            for causal in (False, True):
                name = text_name(n, dt, causal, 8)
                fid = f"{dt}_gqa8_n{n}{'_causal' if causal else ''}"
                out.append((fid + "_ms", "ms", False, lambda r, name=name: att_ms(r, name)))
                out.append((fid + "_over_torch_best", "x", True,
                            lambda r, name=name, k=(n, dt, causal, 8): div(sdpa(k, 0), att_ms(r, name))))
    med = lambda v: statistics.median(v) if v else None  # noqa: E731
    out.append(("decode_copy_gbps", "GB/s", True, lambda r: med(r.get("copy"))))
    out.append(("decode_graph_copy_gbps", "GB/s", True, lambda r: med(r.get("graph_copy"))))
    for n in LENS:
        t = torch.get(("dec", n), (None, None, None))
        out.append((f"torch_decode_{n}_us", "us", False, lambda r, t=t: t[0] * 1e3 if t[0] else None))
        out.append((f"torch_decode_{n}_graph_us", "us", False, lambda r, t=t: t[1] * 1e3 if t[1] else None))
    for layout in ("paged", "contiguous"):
        for n in LENS:
            t = torch.get(("dec", n), (None, None, None))
            p = f"decode_{layout}_{n}"
            out.append((p + "_us", "us", False, lambda r, k=("dec_ms", layout, n): r[k] * 1e3 if k in r else None))
            out.append((p + "_copy_ratio", "x", True, lambda r, k=("dec_ratio", layout, n): r.get(k)))
            out.append((p + "_graph_us", "us", False,
                        lambda r, k=("dec_graph_ms", layout, n): r[k] * 1e3 if k in r else None))
            out.append((p + "_graph_copy_ratio", "x", True, lambda r, k=("dec_graph_ratio", layout, n): r.get(k)))
            out.append((p + "_over_torch", "x", True,
                        lambda r, k=("dec_ms", layout, n), t=t: div(t[0], r.get(k))))
            out.append((p + "_graph_over_torch", "x", True,
                        lambda r, k=("dec_graph_ms", layout, n), t=t: div(t[1], r.get(k))))
    for n in (16384, 65536):
        out.append((f"quest_{n}_speedup", "x", True, lambda r, n=n: r.get(("quest", n))))
        out.append((f"quest_{n}_graph_speedup", "x", True, lambda r, n=n: r.get(("quest_graph", n))))
    return out


TORCH_ONLY = ("torch_",)


def safe(fn, run):
    """fn(run), or None where a malformed log left it nothing to compute with."""
    try:
        return fn(run)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 100 else f"{v:.2f}" if a >= 10 else f"{v:.3f}"


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
    for name in ("card", "commit_cur", "commit_base"):
        path = os.path.join(args.out, name + ".txt")
        meta[name] = open(path).read().strip() if os.path.exists(path) else "unknown"
    builds = samples.builds()
    rows = []
    for fid, unit, higher, fn in figures(torch):
        row = dict(id=fid, unit=unit, higher_is_better=higher)
        for b in ("base", "cur"):
            if fid.startswith(TORCH_ONLY):  # measured once, shown in the cur column
                vals = [v for v in [safe(fn, {})] if v is not None] if b == "cur" else []
            else:
                vals = [v for v in (safe(fn, run) for run in samples.rounds(b)) if v is not None]
            row[b + "_samples"] = vals
            row[b] = statistics.median(vals) if vals else None
        rec = recorded.get(fid)
        row["recorded"] = rec["value"] if rec else None
        row["recorded_source"] = f"{rec['card']} {rec['commit']}" if rec else None
        row["cur_over_base"] = div(row["cur"], row["base"])
        row["cur_over_recorded"] = div(row["cur"], row["recorded"])
        rows.append(row)
    with open(os.path.join(args.out, "targets.jsonl"), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    new = dict(about="Written by scripts/gpu/targets.py: the current build's figures of one run.", figures=[dict(id=r["id"], value=r["cur"], unit=r["unit"], card=meta["card"],
                             commit=meta["commit_cur"], date=datetime.date.today().isoformat(),
                             note="scripts/gpu/targets.sh run")
                        for r in rows if r["cur"] is not None])
    with open(os.path.join(args.out, "recorded.new.json"), "w") as f:
        json.dump(new, f, indent=1)
        f.write("\n")

    sources = sorted({r["recorded_source"] for r in rows if r["recorded_source"]})
    letter = {s: chr(ord("A") + i) for i, s in enumerate(sources)}
    print(f"# card: {meta['card']}; cur {meta['commit_cur']}"
          + (f"; base {meta['commit_base']}" if "base" in builds else "; no baseline carried")
          + f"; rounds: {len(samples.rounds('cur'))}")
    print("# recorded: " + "; ".join(f"{letter[s]} = {s}" for s in sources)
          + " (recorded *_graph_copy_ratio: graph decode / graph copy; *_copy_ratio at d380380: graph decode"
          " / event copy; recorded torch: its default backend)")
    dec = [f"{k[1]} {v[2]}" for k, v in sorted((k, v) for k, v in torch.items() if k[0] == "dec")]
    print("# torch decode, fastest backend events/graph: " + ", ".join(dec))
    pre = [f"{k[2]} N{k[1]}{' causal' if k[3] else ''}: {v[2]}" for k, v in torch.items()
           if k[0] == "sdpa" and k[1] != "vision"]
    print("# torch prefill, fastest backend: " + ", ".join(pre))
    print("# cur/base: + better, - worse, = within 0.5%; recorded letters name the card and commit above")
    print(f"{'figure':42s} {'unit':7s} {'recorded':>10s} {'base':>9s} {'cur':>9s} {'cur/base':>8s} {'cur/rec':>8s}")
    for r in rows:
        if r["cur"] is None and r["base"] is None and r["recorded"] is None:
            continue
        src = letter.get(r["recorded_source"], " ")
        q = r["cur_over_base"]  # +: cur better than base, -: worse, =: within 0.5%
        better = "" if q is None else "=" if abs(q - 1) < 0.005 else "+" if (q > 1) == r["higher_is_better"] else "-"
        print(f"{r['id']:42s} {r['unit']:7s} {fmt(r['recorded']):>9s}{src} {fmt(r['base']):>9s} {fmt(r['cur']):>9s} "
              f"{fmt(r['cur_over_base']):>7s}{better:1s} {fmt(r['cur_over_recorded']):>8s}")


if __name__ == "__main__":
    main()
