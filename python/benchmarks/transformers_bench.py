"""Prefill and decode of a random-weight Qwen3-VL through transformers with eager, SDPA and the
library's backend: milliseconds per token and the attention share of them.

    python python/benchmarks/transformers_bench.py --device cpu --prompt 512 --decode 32
    python python/benchmarks/transformers_bench.py --device cuda --size small --json out.json

The model is built from a config (no downloads): `--size tiny` (the tests' model) or `small`
(text: 4 layers, hidden 1024, 16 query / 8 KV heads of 128, like Qwen3-VL's geometry). The
prompt is text only. Each implementation runs twice: once for the times, once with every
attention call timed (synchronised on CUDA) for the attention share.
"""

import argparse
import json
import platform
import time

import torch
from transformers import AttentionInterface, Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask, sdpa_mask
from transformers.models.qwen3_vl import modeling_qwen3_vl

import qwen3vl_attention.transformers as qt

SIZES = {
    "tiny": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32, mrope_section=[6, 5, 5]),
    "small": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=4,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                  mrope_section=[24, 20, 20]),
}

attention_seconds = [0.0]
timing = [False]


def timed(fn, device):
    def wrapper(*args, **kwargs):
        if not timing[0]:
            return fn(*args, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        attention_seconds[0] += time.perf_counter() - t
        return result
    return wrapper


def config(size, impl):
    s = dict(SIZES[size])
    section = s.pop("mrope_section")
    c = Qwen3VLConfig(
        text_config=dict(vocab_size=1024, max_position_embeddings=32768,
                         rope_parameters=dict(rope_type="default", rope_theta=5e6,
                                              mrope_section=section, mrope_interleaved=True), **s),
        vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4,
                           patch_size=4, out_hidden_size=s["hidden_size"],
                           num_position_embeddings=64, deepstack_visual_indexes=[1]),
        image_token_id=1000, video_token_id=1001, vision_start_token_id=1002,
        vision_end_token_id=1003)
    c._attn_implementation = impl
    return c


def run(model, ids, decode, device, generate=True):
    """(prefill seconds, decode seconds): a forward pass over the prompt, then generate()'s
    prefill + decode steps less that prefill."""
    def sync():
        if device == "cuda":
            torch.cuda.synchronize()
    with torch.no_grad():
        sync()
        t0 = time.perf_counter()
        model(input_ids=ids, use_cache=True)
        sync()
        t1 = time.perf_counter()
        if not generate:
            return t1 - t0, 0.0
        model.generate(input_ids=ids, max_new_tokens=decode + 1, min_new_tokens=decode + 1,
                       do_sample=False)
        sync()
        t2 = time.perf_counter()
    prefill = t1 - t0
    return prefill, max(t2 - t1 - prefill, 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    ap.add_argument("--impl", nargs="*", default=["eager", "sdpa", "qwen3vl"])
    ap.add_argument("--json")
    args = ap.parse_args()
    dev, dtype = args.device, getattr(torch, args.dtype)

    qt.register()
    base = {"eager": modeling_qwen3_vl.eager_attention_forward, "sdpa": sdpa_attention_forward,
            "qwen3vl": qt.attention_forward}
    masks = {"eager": eager_mask, "sdpa": sdpa_mask, "qwen3vl": sdpa_mask}
    for name in args.impl:
        AttentionInterface.register(f"timed_{name}", timed(base[name], dev))
        ALL_MASK_ATTENTION_FUNCTIONS.register(f"timed_{name}", masks[name])

    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (1, args.prompt), device=dev)
    state = None
    rows = []
    for name in args.impl:
        model = Qwen3VLForConditionalGeneration(config(args.size, f"timed_{name}"))
        if state is None:
            state = model.state_dict()
        model.load_state_dict(state)
        model = model.to(device=dev, dtype=dtype).eval()
        run(model, ids, 2, dev)  # warm-up
        timing[0] = False
        prefill, decode_s = run(model, ids, args.decode, dev)
        # The same with every attention call timed: attention seconds over the pass's seconds.
        timing[0] = True
        attention_seconds[0] = 0.0
        t_prefill, _ = run(model, ids, 0, dev, generate=False)
        a_prefill = attention_seconds[0]
        attention_seconds[0] = 0.0
        t_prefill2, t_decode = run(model, ids, args.decode, dev)
        a_decode = max(attention_seconds[0] - 2 * a_prefill, 0.0)  # less run()'s two prefills
        timing[0] = False
        row = dict(impl=name, prefill_ms_per_token=1e3 * prefill / args.prompt,
                   decode_ms_per_token=1e3 * decode_s / args.decode,
                   prefill_attention_share=a_prefill / max(t_prefill, 1e-12),
                   decode_attention_share=a_decode / max(t_decode, 1e-12))
        rows.append(row)
        print(f"{name:8s} prefill {row['prefill_ms_per_token']:.4f} ms/token "
              f"(attention {100 * row['prefill_attention_share']:.0f}%), decode "
              f"{row['decode_ms_per_token']:.3f} ms/token "
              f"(attention {100 * row['decode_attention_share']:.0f}%)")
    if args.json:
        meta = dict(device=dev, gpu=torch.cuda.get_device_name() if dev == "cuda" else None,
                    cpu=platform.processor(), size=args.size, prompt=args.prompt,
                    decode=args.decode, dtype=args.dtype, torch=torch.__version__)
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, results=rows), f, indent=1)


if __name__ == "__main__":
    main()
