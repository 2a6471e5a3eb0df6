#!/usr/bin/env python3
"""PyTorch decode attention on the shape of qwen3vl-decode-bench: one query row, Hq 32 / Hkv 8,
head_dim 128, fp16 K/V of 4096 / 16384 / 65536 keys, through F.scaled_dot_product_attention
(enable_gqa, whatever backend PyTorch picks), and the device-to-device copy bandwidth of the same
run. Times are CUDA-graph replays between events (GPU time, no launch overhead), like the C++
benchmark, and cycle through copies of K/V (at least 512 MiB of them, 10x the L2) so that every
call reads from HBM, as the C++ benchmark does. Prints one line per length and writes JSON lines
with --json."""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def graph_ms(fn, per_graph=20, reps=20):
    """fn(i): the i-th call of a graph."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for i in range(3):
            fn(i)  # warm-up outside the graph (kernel selection, workspace)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for i in range(per_graph):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / per_graph)
    return statistics.median(times)


def copy_gbps():
    src = torch.ones(1 << 28, device="cuda", dtype=torch.float32)  # 1 GiB
    dst = torch.empty_like(src)
    ms = graph_ms(lambda i: dst.copy_(src), per_graph=4, reps=10)
    return 2 * src.numel() * 4 / (ms * 1e6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lens", default="4096,16384,65536")
    ap.add_argument("--json")
    args = ap.parse_args()
    heads, kv_heads, dim = 32, 8, 128
    out = open(args.json, "w") if args.json else None
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}")
    for n in (int(x) for x in args.lens.split(",")):
        gen = torch.Generator(device="cuda").manual_seed(n)
        q = torch.rand((1, heads, 1, dim), device="cuda", dtype=torch.float16, generator=gen) - 0.5
        k = torch.rand((1, kv_heads, n, dim), device="cuda", dtype=torch.float16, generator=gen) - 0.5
        v = torch.rand((1, kv_heads, n, dim), device="cuda", dtype=torch.float16, generator=gen) - 0.5
        kv_bytes = 2 * n * kv_heads * dim * 2
        copies = max(2, -(-(512 << 20) // kv_bytes))
        ks = [k] + [k.clone() for _ in range(copies - 1)]
        vs = [v] + [v.clone() for _ in range(copies - 1)]
        bw = copy_gbps()
        ms = graph_ms(lambda i: F.scaled_dot_product_attention(q, ks[i % copies], vs[i % copies],
                                                               enable_gqa=True))
        rec = dict(kind="sdpa_decode", kv_len=n, copies=copies, ms=ms, kv_gbps=kv_bytes / (ms * 1e6),
                   copy_gbps=bw, ratio=kv_bytes / (ms * 1e6) / bw, torch=torch.__version__)
        print(f"sdpa   {n:8d} {ms:10.4f} ms {rec['kv_gbps']:10.1f} KV GB/s "
              f"{bw:10.1f} copy GB/s {rec['ratio']:8.3f}")
        if out:
            out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
