#!/usr/bin/env python3
"""Smoke test of qwen3vl-attn-bench's driver and its CPU routines (python3 stdlib only).

Usage: check_bench_routines.py <path to qwen3vl-attn-bench> cuda|nocuda

The driver's --help lists every routine, and an unknown or missing routine exits 2. Each routine
answers --help (exit 0, its own usage line) and refuses an unknown flag and a malformed value
(exit 2, naming the flag). Each CPU routine then runs once at a tiny size with --json FILE: the
report names the routine, the machine, the commit and the date, and has at least one row with a
positive time, and draws no progress (stderr is a pipe); prefill, decode, quest, block-sparse and
static-sparse draw it with QWEN3VL_BENCH_PROGRESS=1, one erased line per case on stderr. In a
build without CUDA, --device cuda and cuda-prefill exit 2 and say so.
"""
import json
import os
import subprocess
import sys
import tempfile
from smoke import check, run, summary

# Routine -> (tiny CPU run, a flag of the routine given a malformed value, the time field).
ROUTINES = {
    "prefill": (["--device", "cpu", "--seq", "33", "--heads", "2", "--head-dim", "32",
                 "--threads", "2", "--repeats", "1"], "--seq", "ms"),
    "decode": (["--lens", "256", "--repeats", "1", "--threads", "2", "--rotate", "0",
                "--huge-pages", "0"], "--lens", "ms"),
    "quest": (["--lens", "512", "--budgets", "128", "--repeats", "1", "--threads", "2",
               "--data", "structured"], "--budgets", "quest_ms"),
    "rope": (["--tokens", "64", "--q-heads", "4", "--kv-heads", "2", "--reps", "1",
              "--threads", "2"], "--tokens", "rope_us"),
    "moh": (["--tokens", "64", "--heads", "4", "--kv-heads", "2", "--head-dim", "32",
             "--reps", "1", "--threads", "2"], "--heads", "ms"),
    "linear": (["--min-n", "64", "--max-n", "128", "--heads", "2", "--reps", "1"], "--max-n",
               "linear_ms"),
    "layer": (["--prefill", "32", "--decode", "2", "--hidden", "256", "--heads", "4",
               "--kv-heads", "2", "--reps", "1", "--threads", "2"], "--prefill", "total_ms"),
    "dynamic-sparse": (["--n", "256", "--heads", "2", "--kv-heads", "1", "--dim", "32",
                        "--rows", "2", "--methods", "block", "--threads", "2"], "--n", "total_ms"),
    "block-sparse": (["--n", "256", "--head-dim", "32", "--reps", "1", "--threads", "2"], "--n",
                     "wall_ms"),
    "static-sparse": (["--lens", "128", "--masks", "causal", "--heads", "2", "--kv-heads", "1",
                       "--head-dim", "32", "--reps", "1", "--threads", "2"], "--lens", "ms"),
    # {tmp}: the run's temporary directory (the slot files go there).
    "tiered": (["--layers", "2", "--context", "128", "--steps", "2", "--chunk", "64", "--heads", "4",
                "--kv-heads", "2", "--head-dim", "32", "--arena-mib", "0.05", "--host-mib", "0.02",
                "--threads", "2", "--disk-dir", "{tmp}/tiered"], "--steps", "step_ms"),
    "store": (["--file-mib", "4", "--block-kib", "64", "--qd", "4", "--reps", "1", "--dir",
               "{tmp}/store"], "--qd", "read_mib_s"),
    "plan": (["--layers", "2", "--kv-heads", "1", "--head-dim", "64", "--context", "4096",
              "--gpu-budget", "1.5MiB", "--disk-dir", "{tmp}/plan"], "--context",
             "predicted_transfer_ms"),
}
CUDA_ONLY = ["cuda-prefill", "tier-copy"]
def check_report(routine, path, time_field):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        check(False, f"[{routine}] report {path}: {e}")
        return
    check(doc.get("routine") == routine, f"[{routine}] report names {doc.get('routine')!r}")
    check(isinstance(doc.get("commit"), str) and doc["commit"], f"[{routine}] no commit")
    check(isinstance(doc.get("date"), str) and doc["date"].endswith("Z"), f"[{routine}] date {doc.get('date')!r}")
    machine = doc.get("machine", {})
    check(machine.get("cpu") and machine.get("physical_cores", 0) >= 1 and machine.get("isa"),
          f"[{routine}] machine {machine!r}")
    rows = doc.get("rows", [])
    if check(rows, f"[{routine}] no rows"):
        times = [r.get(time_field) for r in rows]
        check(all(isinstance(t, (int, float)) and t > 0 for t in times),
              f"[{routine}] {time_field} not positive in every row: {times}")


# Routines that draw progress while stderr is a terminal, and their case count at the tiny size.
PROGRESS = {"prefill": 2, "decode": 1, "block-sparse": 5, "quest": 2, "static-sparse": 7}


def check_progress(bench, routine, args, cases):
    """QWEN3VL_BENCH_PROGRESS=1 draws the line into the pipe: every case counted on stderr,
    each line erased (the last write leaves the cursor at column 0), stdout untouched."""
    # Bytes, decoded without newline translation (text mode would turn each \r into \n).
    proc = subprocess.run([bench, routine] + args, capture_output=True, timeout=240,
                          env=dict(os.environ, QWEN3VL_BENCH_PROGRESS="1"))
    if not check(proc.returncode == 0, f"[{routine}] with progress: exit {proc.returncode}"):
        return
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    for i in range(1, cases + 1):
        check(f"\r[{routine}] case {i}/{cases}" in proc.stderr,
              f"[{routine}] progress: no 'case {i}/{cases}' on stderr: {proc.stderr[-300:]!r}")
    check(f"[{routine}] case " not in proc.stdout, f"[{routine}] progress on stdout")
    drawn = proc.stderr.rsplit(f"[{routine}] case {cases}/{cases}", 1)[-1]
    check("\r" in drawn, f"[{routine}] progress: the last line was not erased: {drawn[:200]!r}")


def main():
    bench, cuda = sys.argv[1], sys.argv[2] == "cuda"
    proc = run(bench, ["--help"])
    check(proc.returncode == 0, f"--help: exit {proc.returncode}")
    for name in list(ROUTINES) + CUDA_ONLY:
        check(f"  {name} " in proc.stdout, f"--help does not list {name}")
    check(run(bench, []).returncode == 2, "no routine must exit 2")
    proc = run(bench, ["nonsense"])
    check(proc.returncode == 2 and "unknown routine" in proc.stderr, f"unknown routine: {proc.stderr!r}")
    with tempfile.TemporaryDirectory() as tmp:
        for routine, (args, flag, time_field) in ROUTINES.items():
            proc = run(bench, [routine, "--help"])
            check(proc.returncode == 0 and f"usage: qwen3vl-attn-bench {routine}" in proc.stdout,
                  f"[{routine}] --help: exit {proc.returncode}")
            proc = run(bench, [routine, "--frobnicate", "1"])
            check(proc.returncode == 2 and "unknown argument" in proc.stderr,
                  f"[{routine}] unknown flag: exit {proc.returncode}, {proc.stderr.strip()!r}")
            proc = run(bench, [routine, flag, "x1"])
            check(proc.returncode == 2 and flag in proc.stderr,
                  f"[{routine}] {flag} x1: exit {proc.returncode}, {proc.stderr.strip()!r}")
            path = os.path.join(tmp, routine + ".json")
            args = [a.replace("{tmp}", tmp) for a in args]
            proc = run(bench, [routine] + args + ["--json", path])
            if check(proc.returncode == 0, f"[{routine}] exit {proc.returncode}: {proc.stderr.strip()[-300:]}"):
                check_report(routine, path, time_field)
                print(f"[{routine}] ok")
            check(f"[{routine}] case " not in proc.stdout + proc.stderr,
                  f"[{routine}] progress drawn although stderr is not a terminal")
            if routine in PROGRESS:
                check_progress(bench, routine, args, PROGRESS[routine])
    if not cuda:
        for args in (["cuda-prefill"], ["decode", "--device", "cuda", "--lens", "64"]):
            proc = run(bench, args)
            check(proc.returncode == 2 and "CUDA" in proc.stderr,
                  f"{' '.join(args)} without CUDA: exit {proc.returncode}, {proc.stderr.strip()!r}")
    return summary("bench routines")


if __name__ == "__main__":
    sys.exit(main())
