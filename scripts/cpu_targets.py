#!/usr/bin/env python3
"""The CPU rows of docs/performance.md's targets table, rerun in one call on this machine, beside a
baseline build measured in the same run (rounds alternate baseline and current, the order flipping
each round).

  scripts/cpu_targets.py [--current DIR] [--baseline DIR] [--rounds N] [--steps a,b] [--out DIR]

--current: the directory holding this tree's qwen3vl-attn-bench (default: the Release build's
bench/ folder). --baseline: a directory holding another build's benchmarks: qwen3vl-attn-bench
with routines, or the executables it replaced (qwen3vl-attn-bench for prefill alone,
qwen3vl-decode-bench, qwen3vl-sparse-bench-cpu, qwen3vl-linear-bench: e.g. built from d380380).
Steps (each the same workload for both builds):
  prefill       flash2 at N 4096, Hq 32 / Hkv 8, D 128, causal and not, native ISA and AVX2 forced,
                and the standard variant (non-causal, native): ms and the ratio to sgemm
  decode        paged f16 decode at KV 4096 / 16384 / 65536, 2 threads: ms and the copy ratio
  block_sparse  block-sparse at 10% of the blocks against dense flash2, N 16384, H 1: the speedup
  linear        linear attention T(16384) / T(4096)
Prints the machine, then a table of medians over rounds (min-max spread) with current / baseline;
writes cpu_targets.json to --out. Speed is wall clock on a shared VM: run it with nothing else busy.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = "qwen3vl-attn-bench"
OLD = {"decode": "qwen3vl-decode-bench", "block_sparse": "qwen3vl-sparse-bench-cpu",
       "linear": "qwen3vl-linear-bench"}
STEPS = ["prefill", "decode", "block_sparse", "linear"]
PREFILL_CASES = [  # (name, variant, causal, isa)
    ("flash2 N4096", "flash2", False, None),
    ("flash2 N4096 causal", "flash2", True, None),
    ("flash2 N4096 avx2", "flash2", False, "avx2"),
    ("flash2 N4096 causal avx2", "flash2", True, "avx2"),
    ("standard N4096", "standard", False, None),
]


class Build:
    """One build's benchmarks: the routine driver, or the old per-family executables."""

    def __init__(self, directory, name):
        self.dir = directory
        self.name = name
        self.driver = os.path.join(directory, DRIVER)
        if not os.access(self.driver, os.X_OK):
            sys.exit(f"cpu_targets: no {DRIVER} in {directory}")
        self.old = os.access(os.path.join(directory, OLD["decode"]), os.X_OK)
        self.anchors = set()  # the sgemm each "/ sgemm" figure divided by

    def command(self, step, *flags):
        """The command line of a routine: `driver ROUTINE flags` or the old executable's form."""
        routine = {"prefill": "prefill", "decode": "decode", "block_sparse": "block-sparse",
                   "linear": "linear"}[step]
        if not self.old:
            return [self.driver, routine, *flags]
        if step == "prefill":  # its --json is a switch: the JSON goes to stdout
            i = flags.index("--json")
            return [self.driver, *flags[:i], "--json", *flags[i + 2:]], flags[i + 1]
        if step == "block_sparse":  # a Google Benchmark binary: --name=value, and a filter
            pairs = [f"{flags[i]}={flags[i + 1]}" for i in range(0, len(flags), 2)]
            return [os.path.join(self.dir, OLD[step]), *pairs,
                    "--benchmark_filter=dense|density_10%"]
        return [os.path.join(self.dir, OLD[step]), *flags]


def run(cmd, timeout=900):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return done.stdout


def json_rows(path):
    """Every object holding an "ms" field, wherever the report keeps them."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "ms" in x:
                found.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    with open(path) as f:
        walk(json.load(f))
    return found


def step_prefill(build):
    out = {}
    for name, variant, causal, isa in PREFILL_CASES:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            path = tmp.name
        flags = ["--device", "cpu", "--variant", variant, "--seq", "4096", "--heads", "32",
                 "--kv-heads", "8", "--head-dim", "128", "--threads", "2", "--repeats", "3",
                 "--json", path]
        if causal:
            flags.append("--causal")
        if isa:
            flags += ["--isa", isa]
        cmd = build.command("prefill", *flags)
        if isinstance(cmd, tuple):  # the old driver: its stdout is the JSON
            cmd, path = cmd
            with open(path, "w") as f:
                f.write(run(cmd))
        else:
            run(cmd)
        row = json_rows(path)[0]
        os.unlink(path)
        out[name + " ms"] = float(row["ms"])
        out[name + " / sgemm"] = float(row["ratio_to_sgemm"])
        build.anchors.add(str(row.get("sgemm_source", "?")))
    return out


def step_decode(build):
    text = run(build.command("decode", "--device", "cpu", "--lens", "4096,16384,65536",
                             "--threads", "2"))
    out = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) > 7 and cols[0] == "cpu" and cols[1].isdigit():
            out[f"decode KV {cols[1]} ms"] = float(cols[3])
            out[f"decode KV {cols[1]} / copy"] = float(cols[7])
    if not out:
        raise RuntimeError("decode: no rows in\n" + text)
    return out


def step_block_sparse(build):
    text = run(build.command("block_sparse", "--n", "16384", "--threads", "2"))
    dense = re.search(r"dense flash2 ([\d.]+) ms wall, ([\d.]+) ms CPU", text)
    sparse = re.search(r"density_10%.*?([\d.]+) ms wall \(dense/sparse\s+([\d.]+)x\)\s+"
                       r"([\d.]+) ms CPU \(\s*([\d.]+)x\)", text)
    if not dense or not sparse:
        raise RuntimeError("block_sparse: no summary in\n" + text)
    return {"block-sparse 10% ms": float(sparse.group(1)),
            "block-sparse 10% speedup (wall)": float(sparse.group(2)),
            "block-sparse 10% speedup (CPU time)": float(sparse.group(4)),
            "dense N16384 H1 ms": float(dense.group(1))}


def step_linear(build):
    text = run(build.command("linear", "--device", "cpu"))
    m = re.search(r"T\(16384\) / T\(4096\) = ([\d.]+)", text)
    if not m:
        raise RuntimeError("linear: no T(16384) / T(4096) in\n" + text)
    return {"linear T(16384)/T(4096)": float(m.group(1))}


def machine():
    model = isa = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not isa:
                flags = line.split()
                isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return {"cpu": model, "isa": isa, "cores": os.cpu_count(), "host": platform.node(),
            "load": os.getloadavg()}


def commit_of(directory):
    path = os.path.join(directory, "commit")
    if os.path.exists(path):
        return open(path).read().strip()
    try:
        return subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default = next((os.path.join(ROOT, d, "bench") for d in ("build-release", "build-release-nogpu")
                    if os.path.exists(os.path.join(ROOT, d, "bench", DRIVER))), None)
    ap.add_argument("--current", default=default)
    ap.add_argument("--baseline")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--out", default=os.path.join(ROOT, "build-cpu-targets"))
    a = ap.parse_args()
    if not a.current:
        sys.exit("cpu_targets: no Release build of qwen3vl-attn-bench (cmake --workflow --preset release)")
    steps = [s for s in a.steps.split(",") if s]
    for s in steps:
        if s not in STEPS:
            sys.exit(f"cpu_targets: --steps {s}: allowed {', '.join(STEPS)}")
    builds = [Build(a.current, "current")]
    if a.baseline:
        builds.append(Build(a.baseline, "baseline"))
    info = machine()
    info["current"] = commit_of(a.current)
    if a.baseline:
        info["baseline"] = commit_of(a.baseline)
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['isa']}; load {info['load']}")
    results = {b.name: {} for b in builds}  # build -> figure -> [values]
    fns = {"prefill": step_prefill, "decode": step_decode, "block_sparse": step_block_sparse,
           "linear": step_linear}
    start = time.time()
    for r in range(a.rounds):
        order = builds if r % 2 == 0 else list(reversed(builds))
        for step in steps:
            for b in order:
                try:
                    for k, v in fns[step](b).items():
                        results[b.name].setdefault(k, []).append(v)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    print(f"round {r + 1} {step} {b.name}: {e}", file=sys.stderr)
        print(f"round {r + 1}/{a.rounds} done ({time.time() - start:.0f} s)", flush=True)

    def cell(values):
        if not values:
            return "-", None
        med = statistics.median(values)
        return f"{med:.4g} ({min(values):.4g}-{max(values):.4g})", med

    print(f"\n| figure | current ({info['current']}) |" +
          (f" baseline ({info['baseline']}) | current / baseline |" if a.baseline else ""))
    print("|---|---|" + ("---|---|" if a.baseline else ""))
    # A ratio to sgemm compares across builds only when both divided by the same sgemm.
    same_anchor = len(builds) < 2 or builds[0].anchors == builds[1].anchors
    for k in results["current"]:
        cur, cm = cell(results["current"][k])
        line = f"| {k} | {cur} |"
        if a.baseline:
            base, bm = cell(results["baseline"].get(k, []))
            if k.endswith("/ sgemm") and not same_anchor:
                line += f" {base} | n/a (other sgemm) |"
            else:
                line += f" {base} | {cm / bm:.3f} |" if cm is not None and bm else f" {base} | - |"
        print(line)
    if not same_anchor:
        print("\n/ sgemm: current divides by " + ", ".join(sorted(builds[0].anchors)) +
              "; baseline by " + ", ".join(sorted(builds[1].anchors)))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "cpu_targets.json"), "w") as f:
        json.dump({"machine": info, "rounds": a.rounds, "results": results,
                   "sgemm": {b.name: sorted(b.anchors) for b in builds}}, f, indent=1)
    print(f"\nwrote {os.path.join(a.out, 'cpu_targets.json')}; time figures: lower is better")


if __name__ == "__main__":
    main()
