#!/usr/bin/env python3
"""Test of scripts/plot_bench.py (python3 stdlib only).

Usage: check_plot_bench.py [path to qwen3vl-attn-bench]

Plots the JSON fixtures in plot_fixtures/ (CPU reports of real runs; CUDA reports and PyTorch SDPA
JSON lines made up in the formats bench/cuda, bench/kv_cache/decode_bench.cpp,
scripts/gpu/sdpa_bench.py and bench/kv_cache/sdpa_decode.py write) and checks each SVG: well-formed
XML, an <svg> root, the title naming the machine and the commit, tick labels on both axes, and the
series expected with their number of points, each with a legend entry. Input with nothing to plot
exits 1. The SVGs committed under docs/plots must equal what the script draws from the reports
in docs/plots/data. Given the driver, it also runs prefill (two sequence lengths), decode and block-sparse at
tiny sizes and plots their reports, so a change to a report's rows shows up here.
"""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from smoke import check, summary

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "plot_bench.py")
FIXTURES = os.path.join(HERE, "plot_fixtures")
SVG = "{http://www.w3.org/2000/svg}"


def plot(files, out_dir):
    return subprocess.run([sys.executable, SCRIPT, "--out-dir", out_dir] + files,
                          capture_output=True, text=True, timeout=120)


def fixtures(*names):
    return [os.path.join(FIXTURES, n) for n in names]


def series_of(path, what):
    """{label: (kind, points)} of the SVG's series, and the title and subtitle texts; None if the
    file is missing or not well-formed."""
    if not check(os.path.exists(path), f"{what}: {os.path.basename(path)} was not written"):
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        check(False, f"{what}: {os.path.basename(path)} is not well-formed XML: {e}")
        return None
    check(root.tag == SVG + "svg", f"{what}: root element {root.tag}, expected svg")
    texts = {}
    for t in root.iter(SVG + "text"):
        texts.setdefault(t.get("class"), []).append("".join(t.itertext()))
    for cls in ("title", "subtitle", "xlabel", "ylabel"):
        check(len(texts.get(cls, [])) == 1, f"{what}: expected one {cls} text")
    for cls in ("xtick", "ytick"):
        check(len(texts.get(cls, [])) >= 2, f"{what}: fewer than 2 {cls} labels")
    series = {}
    for g in root.iter(SVG + "g"):
        if g.get("class") == "series":
            n = int(g.get("data-points"))
            circles = len(g.findall(SVG + "circle"))
            lines = g.findall(SVG + "polyline")
            check(len(lines) == 1 and len(lines[0].get("points").split()) == n,
                  f"{what}: series {g.get('data-label')!r}: polyline does not have {n} points")
            check(circles in (0, n), f"{what}: series {g.get('data-label')!r}: {circles} markers, {n} points")
            series[g.get("data-label")] = (g.get("data-kind"), n)
    legend = {g.get("data-label") for g in root.iter(SVG + "g") if g.get("class") == "legend-entry"}
    check(legend == set(series), f"{what}: legend {sorted(legend)} != series {sorted(series)}")
    return series, (texts.get("title", [""])[0], texts.get("subtitle", [""])[0])


def expect(result, what, expected, machine, commit):
    """expected: {label: (kind, points)}, or {label: (kind, None)} where any count > 0 will do."""
    if result is None:
        return
    series, (title, subtitle) = result
    check(machine in subtitle, f"{what}: subtitle {subtitle!r} does not name the machine {machine!r}")
    check(commit in subtitle, f"{what}: subtitle {subtitle!r} does not name the commit {commit!r}")
    for label, (kind, n) in expected.items():
        got = series.get(label)
        if not check(got is not None, f"{what}: no series {label!r} (have {sorted(series)})"):
            continue
        check(got[0] == kind, f"{what}: series {label!r} kind {got[0]}, expected {kind}")
        check(got[1] == n if n is not None else got[1] > 0,
              f"{what}: series {label!r} has {got[1]} points, expected {n}")
    unexpected = set(series) - set(expected)
    check(not unexpected, f"{what}: unexpected series {sorted(unexpected)}")


def cpu_fixtures(tmp):
    out = os.path.join(tmp, "cpu")
    r = plot(fixtures("prefill_cpu_n256.json", "prefill_cpu_n1024.json", "decode_cpu.json",
                      "block_sparse_cpu.json"), out)
    check(r.returncode == 0, f"cpu fixtures: exit {r.returncode}: {r.stderr}")
    report = json.load(open(fixtures("decode_cpu.json")[0]))
    cpu, commit = report["machine"]["cpu"], report["commit"]
    expect(series_of(os.path.join(out, "prefill.svg"), "cpu prefill"), "cpu prefill",
           {"standard": ("measured", 2), "flash2": ("measured", 2),
            "sgemm (cpu, OpenBLAS 0.3.21)": ("sgemm", 2)}, cpu, commit)
    expect(series_of(os.path.join(out, "decode.svg"), "cpu decode"), "cpu decode",
           {"decode (cpu paged f16)": ("measured", 4),
            "copy bandwidth (cpu, std::memcpy, read + written)": ("copy", 4)}, cpu, commit)
    expect(series_of(os.path.join(out, "block_sparse.svg"), "cpu block-sparse"), "cpu block-sparse",
           {"block_sparse wall": ("measured", 4), "dense flash2 wall": ("dense", 2),
            "ideal: dense wall \u00d7 density": ("ideal", 4)}, cpu, commit)


def cuda_fixtures(tmp):
    out = os.path.join(tmp, "cuda")
    r = plot(fixtures("cuda_prefill.json", "cuda_prefill_block_sparse.json", "decode_cuda.json",
                      "sdpa.jsonl", "sdpa_decode.jsonl"), out)
    check(r.returncode == 0, f"cuda fixtures: exit {r.returncode}: {r.stderr}")
    gpu, commit = "Fixture GPU (sm_90)", "fixture0000"
    expect(series_of(os.path.join(out, "prefill.svg"), "cuda prefill"), "cuda prefill",
           {"flash2, text H32/8 D128 causal f32": ("measured", 3),
            "sm61_tiled, text H32/8 D128 causal f32": ("measured", 3),
            "flash2, vision H16/16 D72 x16 f32": ("measured", 1),
            "sgemm (cuda, cuBLAS SGEMM)": ("sgemm", 3),
            "PyTorch SDPA (fastest backend, H32/32 causal f32)": ("sdpa", 3)}, gpu, commit)
    expect(series_of(os.path.join(out, "decode.svg"), "cuda decode"), "cuda decode",
           {"decode (cuda paged f16)": ("measured", 3),
            "copy bandwidth (cuda, copy kernel, read + written)": ("copy", 3),
            "PyTorch SDPA (fastest backend, f16)": ("sdpa", 3)}, gpu, commit)
    expect(series_of(os.path.join(out, "block_sparse.svg"), "cuda block-sparse"), "cuda block-sparse",
           {"block_sparse (cuda f32, N 16384)": ("measured", 3),
            "dense flash2 (cuda f32, N 16384)": ("dense", 2),
            "ideal: dense \u00d7 density (cuda f32, N 16384)": ("ideal", 3)}, gpu, commit)
    # SDPA beside a CPU run of another KV head count: the label names its shape.
    out = os.path.join(tmp, "mixed")
    r = plot(fixtures("prefill_cpu_n256.json", "prefill_cpu_n1024.json", "sdpa.jsonl"), out)
    check(r.returncode == 0, f"cpu + sdpa: exit {r.returncode}: {r.stderr}")
    report = json.load(open(fixtures("prefill_cpu_n256.json")[0]))
    expect(series_of(os.path.join(out, "prefill.svg"), "cpu + sdpa prefill"), "cpu + sdpa prefill",
           {"standard": ("measured", 2), "flash2": ("measured", 2),
            "sgemm (cpu, OpenBLAS 0.3.21)": ("sgemm", 2),
            "PyTorch SDPA (fastest backend, H32/32 causal f32)": ("sdpa", 3)},
           report["machine"]["cpu"], report["commit"])
    # Only SDPA: nothing of ours to plot beside it.
    r = plot(fixtures("sdpa.jsonl"), os.path.join(tmp, "none"))
    check(r.returncode == 1 and "nothing to plot" in r.stderr,
          f"SDPA alone: exit {r.returncode} ({r.stderr.strip()}), expected 1 and 'nothing to plot'")


def live(bench, tmp):
    """The driver's own reports at tiny sizes, so the fixtures cannot drift from the real rows."""
    runs = {
        "prefill_a.json": ["prefill", "--device", "cpu", "--seq", "32", "--heads", "2", "--head-dim",
                           "32", "--causal", "--threads", "2", "--repeats", "1"],
        "prefill_b.json": ["prefill", "--device", "cpu", "--seq", "64", "--heads", "2", "--head-dim",
                           "32", "--causal", "--threads", "2", "--repeats", "1"],
        "decode.json": ["decode", "--lens", "256,512", "--repeats", "1", "--threads", "2",
                        "--rotate", "0", "--huge-pages", "0"],
        "block_sparse.json": ["block-sparse", "--n", "256", "--head-dim", "32", "--reps", "1",
                              "--threads", "2"],
    }
    files = []
    for name, args in runs.items():
        path = os.path.join(tmp, name)
        r = subprocess.run([bench] + args + ["--json", path], capture_output=True, text=True,
                           timeout=240)
        if check(r.returncode == 0, f"live {args[0]}: exit {r.returncode}: {r.stderr[-500:]}"):
            files.append(path)
    if len(files) != len(runs):
        return
    out = os.path.join(tmp, "live")
    r = plot(files, out)
    check(r.returncode == 0, f"live: exit {r.returncode}: {r.stderr}")
    report = json.load(open(files[0]))
    cpu, commit = report["machine"]["cpu"], report["commit"]
    variants = [row["variant"] for row in report["rows"]]
    sgemm = report["context"]["sgemm_source_cpu"].split(" (")[0]
    expected = {v: ("measured", 2) for v in variants}
    expected[f"sgemm (cpu, {sgemm})"] = ("sgemm", 2)
    expect(series_of(os.path.join(out, "prefill.svg"), "live prefill"), "live prefill", expected,
           cpu, commit)
    expect(series_of(os.path.join(out, "decode.svg"), "live decode"), "live decode",
           {"decode (cpu paged f16)": ("measured", 2),
            "copy bandwidth (cpu, std::memcpy, read + written)": ("copy", 2)}, cpu, commit)
    expect(series_of(os.path.join(out, "block_sparse.svg"), "live block-sparse"), "live block-sparse",
           {"block_sparse wall": ("measured", None), "dense flash2 wall": ("dense", 2),
            "ideal: dense wall \u00d7 density": ("ideal", None)}, cpu, commit)


def committed_plots(tmp):
    """The SVGs under docs/plots are what the script draws from the reports under docs/plots/data
    (the README shows them): regenerate them after changing either."""
    docs = os.path.join(HERE, "..", "..", "docs", "plots")
    data = os.path.join(docs, "data")
    if not os.path.isdir(data):
        return
    out = os.path.join(tmp, "docs")
    r = plot(sorted(os.path.join(data, f) for f in os.listdir(data) if f.endswith(".json")), out)
    check(r.returncode == 0, f"docs/plots/data: exit {r.returncode}: {r.stderr}")
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        committed = os.path.join(docs, name)
        same = os.path.exists(committed) and open(committed).read() == open(os.path.join(out, name)).read()
        check(same, f"docs/plots/{name} differs from what scripts/plot_bench.py draws from "
                    f"docs/plots/data (run: scripts/plot_bench.py --out-dir docs/plots docs/plots/data/*.json)")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        cpu_fixtures(tmp)
        cuda_fixtures(tmp)
        committed_plots(tmp)
        if len(sys.argv) > 1:
            live(sys.argv[1], tmp)
    return summary("plot_bench")


if __name__ == "__main__":
    sys.exit(main())
