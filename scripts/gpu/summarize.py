#!/usr/bin/env python3
"""Joins the report of `qwen3vl-attn-bench cuda-prefill --json` (or qwen3vl-cuda-bench's JSON lines)
and sdpa_bench.py's JSON lines into the markdown table of docs/performance.md: GFLOP/s per variant,
the ratio to cuBLAS SGEMM (fp32, TF32 off) and to PyTorch SDPA fp32 (its fastest backend) on the
same shape, and sm61_tiled over flash2."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_reports import load_jsonl as load, prefill_rows  # noqa: E402


def main(bench_path, sdpa_path):
    sgemm, att = prefill_rows(bench_path)
    # The fastest SDPA backend per fp32 case (files from before backends were forced have one row).
    sdpa = {(r["shape"], r["seq"], r["causal"]): r for r in load(sdpa_path)
            if r.get("backend", "best") == "best" and r.get("dtype", "f32") == "f32" and r.get("ms")} \
        if sdpa_path else {}
    print(f"Device: {sgemm['device']}. cuBLAS SGEMM (fp32, TF32 off, n={sgemm['n']}): "
          f"{sgemm['gflops']:.0f} GFLOP/s.\n")
    print("| shape | dtype | causal | variant | ms | GFLOP/s | / SGEMM | / SDPA fp32 | sm61 / flash2 |")
    print("|---|---|---|---|---|---|---|---|---|")
    by_key = {}
    for r in att:
        by_key[(r["case"], r["variant"])] = r
    for r in att:
        shape = (f"{r['shape']} H{r['heads']} D{r['head_dim']} N{r['seq']}"
                 + (f" x{r['frames']} frames" if r["frames"] else ""))
        s = sdpa.get((r["shape"], r["seq"], r["causal"]))
        vs_sdpa = f"{r['gflops'] / s['gflops']:.2f}" if s else "-"
        rel = "-"
        if r["variant"] == "sm61_tiled" and (r["case"], "flash2") in by_key:
            rel = f"{r['gflops'] / by_key[(r['case'], 'flash2')]['gflops']:.2f}"
        print(f"| {shape} | {r['dtype']} | {'yes' if r['causal'] else 'no'} | {r['variant']} | "
              f"{r['ms']:.3f} | {r['gflops']:.0f} | {r['ratio_sgemm']:.2f} | {vs_sdpa} | {rel} |")
    if sdpa:
        print("\nPyTorch SDPA fp32 on the same shapes, fastest backend (its fp32 path runs 3xTF32 tensor cores):\n")
        print("| shape | causal | backend | ms | GFLOP/s | / SGEMM |")
        print("|---|---|---|---|---|---|")
        for s in sdpa.values():
            print(f"| {s['shape']} H{s['heads']} D{s['head_dim']} N{s['seq']}"
                  f"{' x' + str(s['batch']) if s['shape'] == 'vision' else ''} | "
                  f"{'yes' if s['causal'] else 'no'} | {s.get('fastest', 'default')} | {s['ms']:.3f} | {s['gflops']:.0f} | "
                  f"{s['gflops'] / sgemm['gflops']:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
