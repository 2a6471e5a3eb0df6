#!/usr/bin/env python3
"""Every variant qwen3vl-attn-bench prefill accepts runs with its default knobs and passes its own check
(python3 stdlib only).

Usage: check_bench_variants.py <path to qwen3vl-attn-bench> cuda|nocuda

The variant list comes from the CLI itself (the message for an unknown --variant lists the allowed
names), so a new variant is covered without editing this script. Each runs once on two small CPU
shapes (causal f32 GQA at 1100 tokens, non-causal bf16 at 333) with --repeats 1 --json: exit 0, one result row, its
max_rel_err within the dtype's tolerance. A variant this build lacks on a device must say so and
exit 2. With a CUDA build, each also runs on the GPU when one is visible: there block_sparse and moh
are skipped (their layout or routing would have to be uploaded), which must leave an empty array.
"""
import json
import re
import sys

from smoke import check, run, summary


def run_prefill(bench, args):
    return run(bench, args, routine="prefill")

TOLERANCE = {"f32": 1e-5, "f16": 1e-2, "bf16": 1e-2}
# Long enough that the default patterns skip blocks (sliding window: 3 blocks of 64; block top-k:
# 10 of the 18 blocks), so a check against plain dense attention would fail them.
SHAPES = [
    ["--seq", "1100", "--heads", "4", "--kv-heads", "2", "--head-dim", "64", "--causal"],
    ["--seq", "333", "--heads", "3", "--head-dim", "72", "--dtype", "bf16"],
]
HOST_INPUTS_ONLY = {"block_sparse", "moh"}  # skipped on CUDA by design
def json_rows(proc):
    """The rows of the report a run wrote to stdout (--json -)."""
    return json.loads(proc.stdout)["rows"]


def listed_variants(bench):
    proc = run_prefill(bench, ["--variant", "?"])
    m = re.search(r"allowed (.*)$", proc.stderr.strip())
    if not check(proc.returncode == 2 and m, f"--variant ? must list the variants: {proc.stderr!r}"):
        return []
    return [v.strip() for v in m.group(1).split(",")]


def check_variant(bench, variant, device, shape):
    args = ["--variant", variant, "--device", device, "--threads", "2", "--repeats", "1",
            "--json", "-"] + shape
    name = " ".join(args)
    proc = run_prefill(bench, args)
    if proc.returncode == 2 and "is not built" in proc.stderr:
        print(f"[{name}] not built: {proc.stderr.strip()}")
        return
    if not check(proc.returncode == 0, f"[{name}] exit {proc.returncode}: {proc.stderr.strip()}"):
        return
    try:
        rows = json_rows(proc)
    except (json.JSONDecodeError, KeyError) as e:
        check(False, f"[{name}] stdout is not JSON ({e}): {proc.stdout[:200]!r}")
        return
    if device == "cuda" and variant in HOST_INPUTS_ONLY:
        check(rows == [] and "skipped" in proc.stderr, f"[{name}] expected a skip: {proc.stderr!r}")
        return
    if not check(isinstance(rows, list) and len(rows) == 1, f"[{name}] expected one row: {rows!r}"):
        return
    row = rows[0]
    err, tol = row["max_rel_err"], TOLERANCE[row["dtype"]]
    check(0 <= err <= tol, f"[{name}] max_rel_err = {err} above {tol}")
    print(f"[{name}] {row['variant']}: max_rel_err {err:.3g}")


def main():
    bench, cuda = sys.argv[1], sys.argv[2] == "cuda"
    variants = listed_variants(bench)
    check(len(variants) >= 8, f"expected every variant to be listed: {variants}")
    devices = ["cpu"]
    if cuda and run_prefill(bench, ["--device", "cuda", "--variant", "flash2", "--seq", "16",
                            "--repeats", "1", "--json", "-"]).returncode == 0:
        devices.append("cuda")
    for variant in variants:
        for device in devices:
            for shape in SHAPES:
                check_variant(bench, variant, device, shape)
    # A knob the variant rejects is a usage error naming it.
    proc = run_prefill(bench, ["--variant", "moh", "--device", "cpu", "--seq", "16", "--heads", "4",
                       "--moh-top-k", "5"])
    check(proc.returncode == 2 and "top_k" in proc.stderr,
          f"--moh-top-k 5 with 4 heads: exit {proc.returncode}, {proc.stderr.strip()!r}")
    proc = run_prefill(bench, ["--block-density", "0"])
    check(proc.returncode == 2 and "--block-density" in proc.stderr,
          f"--block-density 0: exit {proc.returncode}, {proc.stderr.strip()!r}")
    return summary("bench variants")


if __name__ == "__main__":
    sys.exit(main())
