#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention in fp32 on the shapes of qwen3vl-cuda-bench (issue 5):
batch 1, 32 heads, head_dim 128, N 1024/4096/16384, causal and not; the vision shape as 16 frames
of 1024 tokens, 16 heads, head_dim 72 (a batch of frames: the same FLOPs as block-diagonal varlen).
Median of CUDA-event timings after warm-up. Writes JSON lines (--json) and prints a table."""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def time_ms(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    cases = []
    for causal in (False, True):
        for n in ((1024, 4096) if args.quick else (1024, 4096, 16384)):
            cases.append(dict(shape="text", batch=1, heads=32, head_dim=128, seq=n, causal=causal))
    cases.append(dict(shape="vision", batch=16, heads=16, head_dim=72, seq=1024, causal=False))
    gen = torch.Generator(device="cuda").manual_seed(3)
    out = open(args.json, "w") if args.json else None
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"allow_tf32(matmul)={torch.backends.cuda.matmul.allow_tf32}")
    for c in cases:
        shape = (c["batch"], c["heads"], c["seq"], c["head_dim"])
        q, k, v = (torch.rand(shape, device="cuda", dtype=torch.float32, generator=gen) * 2 - 1
                   for _ in range(3))
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=c["causal"]),
                     args.reps)
        flops = 4.0 * c["batch"] * c["heads"] * c["seq"] ** 2 * c["head_dim"] * (0.5 if c["causal"] else 1.0)
        rec = dict(kind="sdpa", dtype="f32", ms=ms, gflops=flops / (ms * 1e6), **c)
        print(f"sdpa fp32 {c['shape']} H{c['heads']} D{c['head_dim']} N{c['seq']}"
              f"{' causal' if c['causal'] else ''}: {ms:.3f} ms, {rec['gflops']:.1f} GFLOP/s")
        if out:
            out.write(json.dumps(rec) + "\n")
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
