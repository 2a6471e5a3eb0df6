#!/usr/bin/env python3
"""Smoke test of qwen3vl-attn-bench prefill (python3 stdlib only).

Usage: check_bench_json.py <path to qwen3vl-attn-bench> cuda|nocuda

Runs the prefill routine on tiny shapes with --repeats 1 --json - and checks that the output is
one JSON report (machine, commit, date) whose rows carry every field with a sane value and a small
max_rel_err, and that --csv - gives the same rows; then checks that bad flags, and a device this
build lacks, exit with status 2 and a message.
"""
import json
import math
import sys

from smoke import check, failures, run, summary


def run_prefill(bench, args):
    return run(bench, args, routine="prefill")


FIELDS = {
    "variant": str, "device": str, "dtype": str, "batch": int, "seq_q": int, "seq_k": int,
    "heads": int, "kv_heads": int, "head_dim": int, "causal": bool, "threads": int,
    "ms": float, "gflops": float, "sgemm_gflops": float, "ratio_to_sgemm": float,
    "max_rel_err": float, "workspace_bytes": int,
}
TOLERANCE = {"f32": 1e-5, "f16": 1e-2, "bf16": 1e-2}
def check_report(name, doc):
    """The fields every report carries besides its rows."""
    ok = check(isinstance(doc, dict) and doc.get("routine") == "prefill", f"[{name}] routine: {doc!r:.200}")
    ok = ok and check(isinstance(doc.get("commit"), str) and doc["commit"], f"[{name}] commit missing")
    ok = ok and check(isinstance(doc.get("date"), str) and len(doc["date"]) == 20, f"[{name}] date: {doc.get('date')!r}")
    machine = doc.get("machine", {}) if ok else {}
    ok = ok and check(isinstance(machine.get("cpu"), str) and machine.get("physical_cores", 0) >= 1
                      and machine.get("isa") in ("scalar", "avx2", "avx512")
                      and isinstance(machine.get("gpus"), list), f"[{name}] machine: {machine!r}")
    return ok


def check_json_run(bench, args, expect):
    proc = run_prefill(bench, args + ["--repeats", "1", "--json", "-"])
    name = " ".join(args)
    if not check(proc.returncode == 0, f"[{name}] exit {proc.returncode}: {proc.stderr.strip()}"):
        return
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        check(False, f"[{name}] stdout is not JSON ({e}): {proc.stdout[:200]!r}")
        return
    if not check_report(name, doc):
        return
    rows = doc.get("rows")
    if not check(isinstance(rows, list) and rows, f"[{name}] expected a non-empty JSON array"):
        return
    for row in rows:
        before = len(failures)
        for field, kind in FIELDS.items():
            value = row.get(field)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float \
                else isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            check(ok, f"[{name}] field {field} = {value!r}: expected {kind.__name__}")
        if len(failures) > before:
            return
        for field, want in expect.items():
            check(row[field] == want, f"[{name}] {field} = {row[field]!r}: expected {want!r}")
        check(row["ms"] > 0 and row["gflops"] > 0 and row["sgemm_gflops"] > 0,
              f"[{name}] ms/gflops/sgemm_gflops must be > 0: {row}")
        ratio = row["gflops"] / row["sgemm_gflops"]
        check(math.isclose(row["ratio_to_sgemm"], ratio, rel_tol=1e-3),
              f"[{name}] ratio_to_sgemm != gflops / sgemm_gflops: {row}")
        # FLOPs count visible pairs: 4*B*Hq*Lq*Lk*D without a mask; with the bottom-right causal
        # mask row i sees keys j <= i + Lk - Lq.
        lq, lk = row["seq_q"], row["seq_k"]
        pairs = lq * lk
        if row["causal"]:
            pairs = sum(min(max(i + lk - lq + 1, 0), lk) for i in range(lq))
        flops = 4 * row["batch"] * row["heads"] * row["head_dim"] * pairs
        check(math.isclose(row["gflops"], flops / (row["ms"] * 1e6), rel_tol=1e-3),
              f"[{name}] gflops does not match the visible-pair FLOP count: {row}")
        check(0 <= row["max_rel_err"] <= TOLERANCE[row["dtype"]],
              f"[{name}] max_rel_err = {row['max_rel_err']} above {TOLERANCE[row['dtype']]}")
        check(row["threads"] >= 1 if row["device"] == "cpu" else True, f"[{name}] threads: {row}")


def check_usage_error(bench, args, needle):
    proc = run_prefill(bench, args)
    name = " ".join(args)
    check(proc.returncode == 2, f"[{name}] exit {proc.returncode}, expected 2")
    check(needle in proc.stderr, f"[{name}] stderr lacks {needle!r}: {proc.stderr.strip()!r}")


def main():
    bench, cuda = sys.argv[1], sys.argv[2] == "cuda"
    shape = ["--device", "cpu", "--seq", "65", "--heads", "4", "--kv-heads", "2",
             "--head-dim", "72", "--threads", "2"]
    check_json_run(bench, shape, {"seq_q": 65, "seq_k": 65, "heads": 4, "kv_heads": 2,
                                  "head_dim": 72, "causal": False, "dtype": "f32", "threads": 2})
    check_json_run(bench, shape + ["--causal", "--dtype", "bf16", "--batch", "2"],
                   {"batch": 2, "causal": True, "dtype": "bf16"})
    check_json_run(bench, ["--device", "cpu", "--seq-q", "17", "--seq-k", "129", "--head-dim", "64",
                           "--heads", "3", "--dtype", "f16", "--causal", "--isa", "scalar"],
                   {"seq_q": 17, "seq_k": 129, "heads": 3, "kv_heads": 3, "dtype": "f16"})
    proc = run_prefill(bench, shape + ["--repeats", "1", "--csv", "-"])
    lines = proc.stdout.strip().splitlines()
    check(proc.returncode == 0 and len(lines) >= 2 and lines[0].startswith("variant,device,dtype,"),
          f"--csv -: exit {proc.returncode}, {proc.stdout[:200]!r}")
    check_usage_error(bench, ["--seq", "abc"], "--seq")
    check_usage_error(bench, ["--frobnicate"], "unknown argument")
    check_usage_error(bench, ["--dtype", "f64"], "allowed f32, f16, bf16")
    check_usage_error(bench, ["--heads", "32", "--kv-heads", "5"], "must divide")
    check_usage_error(bench, ["--variant", "nonsense"], "variant")
    if not cuda:
        check_usage_error(bench, ["--device", "cuda", "--seq", "16"], "cuda")
    proc = run_prefill(bench, ["--help"])
    check(proc.returncode == 0 and "--variant" in proc.stdout,
          "prefill --help must print the flags and exit 0")
    return summary("bench smoke")


if __name__ == "__main__":
    sys.exit(main())
