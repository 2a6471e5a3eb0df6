#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention on the prefill shapes of qwen3vl-attn-bench
cuda-prefill: batch 1, 32
heads (--kv-heads: fewer KV heads through enable_gqa), head_dim 128, N 1024/4096/16384, causal and
not; the vision shape as 16 frames of 1024 tokens, 16 heads, head_dim 72 (a batch of frames: the
same FLOPs as block-diagonal varlen). Every SDPA backend PyTorch has is forced in turn through
torch.nn.attention.sdpa_kernel (default, FLASH_ATTENTION, EFFICIENT_ATTENTION, CUDNN_ATTENTION,
MATH), all in this process; a backend that refuses a shape is recorded with PyTorch's reason, MATH
is skipped where its N^2 scores would exceed --math-gb, and the fastest is reported per case.

Timing matches qwen3vl-attn-bench cuda-prefill: the median of --reps event-timed single calls outside any
graph, after 3 warm-ups. Writes JSON lines (--json: one per case and backend, plus backend "best")
and prints a table."""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_timing as tt  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def cases(args):
    seqs = [int(x) for x in args.seqs.split(",")] if args.seqs else ([1024, 4096] if args.quick else [1024, 4096, 16384])
    for dtype in args.dtypes.split(","):
        for causal in (False, True):
            for n in seqs:
                yield dict(shape="text", dtype=dtype, batch=1, heads=32, kv_heads=args.kv_heads or 32,
                           head_dim=128, seq=n, causal=causal)
        if not args.no_vision:
            yield dict(shape="vision", dtype=dtype, batch=16, heads=16, kv_heads=16, head_dim=72, seq=1024,
                       causal=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="N 1024 and 4096 only")
    ap.add_argument("--seqs", help="comma-separated N (overrides --quick)")
    ap.add_argument("--dtypes", default="f32", help="comma-separated: f32, f16, bf16")
    ap.add_argument("--kv-heads", type=int, default=0, help="KV heads of the text shape (0: 32, MHA)")
    ap.add_argument("--no-vision", action="store_true")
    ap.add_argument("--backends", default=",".join(tt.BACKEND_NAMES))
    ap.add_argument("--math-gb", type=float, default=8.0,
                    help="skip MATH where its fp32 scores would take more GB than this")
    args = ap.parse_args()
    gen = torch.Generator(device="cuda").manual_seed(3)
    out = open(args.json, "w") if args.json else None
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"allow_tf32(matmul)={torch.backends.cuda.matmul.allow_tf32}")
    for c in cases(args):
        dt = DTYPES[c["dtype"]]
        q = torch.rand((c["batch"], c["heads"], c["seq"], c["head_dim"]), device="cuda", dtype=dt, generator=gen) * 2 - 1
        k, v = (torch.rand((c["batch"], c["kv_heads"], c["seq"], c["head_dim"]), device="cuda", dtype=dt,
                           generator=gen) * 2 - 1 for _ in range(2))
        gqa = c["kv_heads"] != c["heads"]
        flops = 4.0 * c["batch"] * c["heads"] * c["seq"] ** 2 * c["head_dim"] * (0.5 if c["causal"] else 1.0)
        name = (f"{c['shape']} H{c['heads']}/{c['kv_heads']} D{c['head_dim']} N{c['seq']}"
                f"{'x' + str(c['batch']) if c['batch'] > 1 else ''}{' causal' if c['causal'] else ''} {c['dtype']}")

        def call(i):
            return F.scaled_dot_product_attention(q, k, v, is_causal=c["causal"], enable_gqa=gqa)

        times = {}
        for backend in args.backends.split(","):
            rec = dict(kind="sdpa", backend=backend, **c)
            score_gb = 4.0 * c["batch"] * c["heads"] * c["seq"] ** 2 / 1e9
            if backend == "MATH" and score_gb > args.math_gb:
                ms, why = None, f"skipped: MATH materialises {score_gb:.1f} GB of scores (> --math-gb {args.math_gb:g})"
            else:
                ms, why = tt.time_backend(backend, call, "events", per_sample=1, reps=args.reps, warmup=3)
            times[backend] = ms
            rec.update(ms=ms, gflops=flops / (ms * 1e6) if ms else None)
            if why:
                rec["refused"] = why
                print(f"sdpa {name:40s} {backend:20s} {why}")
            else:
                print(f"sdpa {name:40s} {backend:20s} {ms:9.3f} ms {rec['gflops']:9.1f} GFLOP/s")
            if out:
                out.write(json.dumps(rec) + "\n")
        backend, ms = tt.fastest(times)
        best = dict(kind="sdpa", backend="best", fastest=backend, ms=ms,
                    gflops=flops / (ms * 1e6) if ms else None, **c)
        print(f"sdpa {name:40s} {'best: ' + str(backend):20s} "
              + (f"{ms:9.3f} ms {best['gflops']:9.1f} GFLOP/s" if ms else "none ran"))
        if out:
            out.write(json.dumps(best) + "\n")
            out.flush()
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
