"""Readers of what the benchmarks write, for targets.py and summarize.py: the JSON report of
`qwen3vl-attn-bench ROUTINE --json FILE` (one object: routine, machine, commit, date, context,
rows), and the outputs of the executables it replaced (qwen3vl-cuda-bench's JSON lines,
qwen3vl-decode-bench's and qwen3vl-quest-bench's text lines), which a baseline build may still be."""
import json


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


def load_report(path):
    """The report a routine wrote, or None (missing, cut short, or not a report)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and "rows" in doc else None


def prefill_rows(path):
    """(sgemm row, attention rows) of a cuda-prefill report or a qwen3vl-cuda-bench JSON-lines
    file, in the JSON-lines form: kind, case, variant, ms, gflops, ratio_sgemm, ..."""
    doc = load_report(path)
    if doc is None:
        rows = load_jsonl(path)
        sgemm = next((r for r in rows if r.get("kind") == "sgemm"), None)
        return sgemm, [r for r in rows if r.get("kind") == "attention"]
    ctx = doc.get("context", {})
    gpus = doc.get("machine", {}).get("gpus", [])
    sgemm = None
    if ctx.get("sgemm_gflops"):
        sgemm = dict(kind="sgemm", device=gpus[0]["name"] if gpus else "unknown", n=ctx.get("sgemm_n"),
                     gflops=ctx["sgemm_gflops"])
    return sgemm, [dict(r, kind="attention") for r in doc["rows"]]


def decode_rows(path):
    """Rows of a decode report, or of qwen3vl-decode-bench's text output (cuda lines), as dicts
    with kv_len, ms, ratio, copy_gbps and, where measured, graph_ms, graph_ratio, graph_copy_gbps;
    `legacy_graph_only` marks a binary from before the event columns (it timed graphs only)."""
    doc = load_report(path)
    if doc is not None:
        return [r for r in doc["rows"] if r.get("device") == "cuda"]
    rows = []
    try:
        lines = open(path, errors="replace").readlines()
    except OSError:
        return rows
    for line in lines:
        f = line.split()
        if len(f) < 9 or f[0] != "cuda" or not f[1].isdigit():
            continue
        num = lambda x: None if x == "-" else float(x)  # noqa: E731
        if len(f) >= 14:  # events first, graph columns last
            rows.append(dict(kv_len=int(f[1]), ms=float(f[3]), copy_gbps=float(f[6]), ratio=float(f[7]),
                             graph_ms=num(f[11]), graph_copy_gbps=num(f[12]), graph_ratio=num(f[13])))
        else:
            rows.append(dict(kv_len=int(f[1]), graph_ms=float(f[3]), graph_copy_gbps=float(f[6]),
                             graph_ratio=float(f[7]), legacy_graph_only=True))
    return rows


def quest_rows(path):
    """CUDA rows of a quest report or of qwen3vl-quest-bench's text output: data, kv_len, budget,
    aggregation, speedup, graph_speedup, same_selection."""
    doc = load_report(path)
    if doc is not None:
        return [r for r in doc["rows"] if r.get("device") == "cuda"]
    rows = []
    try:
        lines = open(path, errors="replace").readlines()
    except OSError:
        return rows
    for line in lines:
        f = line.split()
        # cuda structured 16384 1024 max dense quest speedup recall min_rec same-selection
        #   graph: dense X quest Y speedup Z
        if len(f) >= 8 and f[0] == "cuda" and f[2].isdigit():
            rows.append(dict(data=f[1], kv_len=int(f[2]), budget=int(f[3]), aggregation=f[4],
                             speedup=float(f[7]), same_selection="same-selection" in f,
                             graph_speedup=float(f[-1]) if "graph:" in f and f[-2] == "speedup" else None))
    return rows
