#!/usr/bin/env python3
"""PyTorch decode attention on the shape of qwen3vl-attn-bench decode: one query row, Hq 32 / Hkv 8,
head_dim 128, fp16 K/V of 4096 / 16384 / 65536 keys, through F.scaled_dot_product_attention
(enable_gqa) under every SDPA backend PyTorch has (default, FLASH_ATTENTION, EFFICIENT_ATTENTION,
CUDNN_ATTENTION, MATH; one that refuses the shape is recorded with the reason), in one process.

Timing matches qwen3vl-attn-bench decode, and each ratio divides two figures timed the same way:
  events: 20 calls launched back to back outside any graph between two events, median over 20
          samples; divided by a 1 GiB device copy timed the same way (ratio).
  graph:  the same 20 calls captured into a CUDA graph, median over 20 replays; divided by the copy
          captured the same way (graph_ratio; ~1.5x high, since the copy as a graph node runs
          slower than launched directly: quote the events ratio). Where eager PyTorch's host time
          per call exceeds a short cache's GPU time, the events time is the host's, the graph
          time the GPU's.
The calls cycle through copies of K/V (at least 512 MiB of them, 10x the L2) so that every call
reads from HBM, as the C++ benchmark does. Prints one line per length and backend, the fastest per
method, and writes JSON lines with --json."""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "gpu"))
import torch_timing as tt  # noqa: E402


KEYS = {m: {k: (k if m == "events" else f"graph_{k}") for k in ("ms", "copy_gbps", "ratio", "refused", "fastest")}
        for m in ("events", "graph")}


def figures(method, ms, kv_bytes, copy_gbps):
    """The JSON fields of one timing: ms, the copy it is divided by, and the ratio (None if refused)."""
    k = KEYS[method]
    return {k["ms"]: ms, k["copy_gbps"]: copy_gbps,
            k["ratio"]: kv_bytes / (ms * 1e6) / copy_gbps if ms else None}


def us(ms):
    return f"{ms * 1e3:9.1f}" if ms else "        -"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lens", default="4096,16384,65536")
    ap.add_argument("--backends", default=",".join(tt.BACKEND_NAMES))
    ap.add_argument("--json")
    args = ap.parse_args()
    heads, kv_heads, dim = 32, 8, 128
    out = open(args.json, "w") if args.json else None
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}")
    copy = {m: tt.copy_gbps(m) for m in ("events", "graph")}
    print(f"# copy (1 GiB, read + written): events {copy['events']:.1f} GB/s, graph {copy['graph']:.1f} GB/s")
    for n in (int(x) for x in args.lens.split(",")):
        gen = torch.Generator(device="cuda").manual_seed(n)
        q = torch.rand((1, heads, 1, dim), device="cuda", dtype=torch.float16, generator=gen) - 0.5
        k = torch.rand((1, kv_heads, n, dim), device="cuda", dtype=torch.float16, generator=gen) - 0.5
        v = torch.rand((1, kv_heads, n, dim), device="cuda", dtype=torch.float16, generator=gen) - 0.5
        kv_bytes = 2 * n * kv_heads * dim * 2
        copies = max(2, -(-(512 << 20) // kv_bytes))
        ks = [k] + [k.clone() for _ in range(copies - 1)]
        vs = [v] + [v.clone() for _ in range(copies - 1)]

        def call(i):
            return F.scaled_dot_product_attention(q, ks[i % copies], vs[i % copies], enable_gqa=True)

        times = {"events": {}, "graph": {}}
        for backend in args.backends.split(","):
            rec = dict(kind="sdpa_decode", backend=backend, kv_len=n, copies=copies, torch=torch.__version__)
            for method, kw in (("events", dict(per_sample=20, reps=20)), ("graph", dict(per_graph=20, reps=20))):
                ms, why = tt.time_backend(backend, call, method, **kw)
                times[method][backend] = ms
                rec.update(figures(method, ms, kv_bytes, copy[method]))
                if why:
                    rec[KEYS[method]["refused"]] = why
            if rec.get("refused"):
                print(f"sdpa {backend:20s} {n:8d} refused: {rec['refused']}")
            else:
                g = (f"{us(rec['graph_ms'])} us {rec['graph_ratio']:6.3f}" if rec["graph_ms"]
                     else f"refused: {rec.get('graph_refused')}")
                print(f"sdpa {backend:20s} {n:8d} events {us(rec['ms'])} us {rec['ratio']:6.3f}  graph {g}")
            if out:
                out.write(json.dumps(rec) + "\n")
        best = dict(kind="sdpa_decode", backend="best", kv_len=n, copies=copies, torch=torch.__version__)
        for method in ("events", "graph"):
            name, ms = tt.fastest(times[method])
            best.update(figures(method, ms, kv_bytes, copy[method]))
            best[KEYS[method]["fastest"]] = name
        print(f"sdpa best {n:8d}: events {best['fastest']} {us(best['ms'])} us, "
              f"graph {best['graph_fastest']} {us(best['graph_ms'])} us")
        if out:
            out.write(json.dumps(best) + "\n")
        del q, k, v, ks, vs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
