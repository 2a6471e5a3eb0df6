"""The transformers backend: the attention function against transformers' eager attention, and a
tiny random-weight Qwen3-VL (built from a config, no downloads) generating greedily with an image
and a video: the same 32 tokens and logits within fp32 rounding as with eager attention. Skipped
where torch or transformers are not installed."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import qwen3vl_attention.transformers as qt  # noqa: E402
from transformers.models.qwen3_vl import modeling_qwen3_vl as mq  # noqa: E402

NAME = qt.register()


class FakeModule(torch.nn.Module):
    def __init__(self, groups, causal):
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = causal


def eager(module, q, k, v, mask, scaling):
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.where(mask, 0.0, float("-inf"))
    return mq.eager_attention_forward(module, q, k, v, mask, scaling=scaling)[0]


@pytest.mark.parametrize("n,s", [(7, 7), (1, 9), (3, 10)])
def test_function_matches_eager_gqa_causal_and_padding(n, s):
    g = torch.Generator().manual_seed(n * 31 + s)
    b, hq, hkv, d = 2, 6, 2, 24
    q = torch.randn(b, hq, n, d, generator=g)
    k = torch.randn(b, hkv, s, d, generator=g)
    v = torch.randn(b, hkv, s, d, generator=g)
    mod = FakeModule(hq // hkv, True)
    # Plain causal (mask None): bottom-right aligned like a KV cache.
    out, w = qt.attention_forward(mod, q, k, v, None, scaling=0.2)
    assert w is None and out.shape == (b, n, hq, d)
    causal = torch.ones(n, s, dtype=torch.bool).tril(s - n)[None, None].expand(b, 1, n, s)
    torch.testing.assert_close(out, eager(mod, q, k, v, causal, 0.2), atol=2e-5, rtol=1e-4)
    # Left padding on the second sequence, as a boolean mask.
    pad = causal.clone()
    pad[1, :, :, :2] = False
    out2, _ = qt.attention_forward(mod, q, k, v, pad, scaling=0.2)
    want = eager(mod, q, k, v, pad, 0.2)
    seen = want.isfinite()  # rows that see no key: NaN in eager, 0 from the library
    torch.testing.assert_close(out2[seen], want[seen], atol=2e-5, rtol=1e-4)
    assert torch.all(out2[~seen] == 0)


def test_function_varlen_cu_seqlens():
    g = torch.Generator().manual_seed(2)
    h, d, cu = 2, 16, torch.tensor([0, 5, 12, 16], dtype=torch.int32)
    q, k, v = (torch.randn(1, h, 16, d, generator=g) for _ in range(3))
    mod = FakeModule(1, False)
    out, _ = qt.attention_forward(mod, q, k, v, None, scaling=d ** -0.5, cu_seq_lens_q=cu,
                                  cu_seq_lens_k=cu, is_causal=False)
    parts = [eager(mod, q[:, :, a:e], k[:, :, a:e], v[:, :, a:e], None, d ** -0.5)
             for a, e in zip(cu[:-1].tolist(), cu[1:].tolist())]
    torch.testing.assert_close(out, torch.cat(parts, dim=1), atol=2e-5, rtol=1e-4)


IMAGE, VIDEO, VSTART, VEND = 100, 101, 102, 103


def tiny_config():
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config=dict(vocab_size=128, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=32, max_position_embeddings=512,
                         rope_parameters=dict(rope_type="default", rope_theta=5e6,
                                              mrope_section=[6, 5, 5], mrope_interleaved=True)),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=48, num_heads=2,
                           patch_size=4, temporal_patch_size=2, spatial_merge_size=2,
                           out_hidden_size=64, num_position_embeddings=64,
                           deepstack_visual_indexes=[1]),
        image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=VSTART,
        vision_end_token_id=VEND)


def prompt():
    g = torch.Generator().manual_seed(5)
    text = lambda n: torch.randint(0, 96, (n,), generator=g)  # noqa: E731
    ids = torch.cat([text(5), torch.tensor([VSTART] + [IMAGE] * 4 + [VEND]), text(3),
                     torch.tensor([VSTART] + [VIDEO] * 4 + [VEND]), text(1),
                     torch.tensor([VSTART] + [VIDEO] * 4 + [VEND]), text(4)])[None]
    image_grid = torch.tensor([[1, 4, 4]])
    video_grid = torch.tensor([[2, 4, 4]])
    pixels = torch.randn(16, 3 * 2 * 4 * 4, generator=g)
    video = torch.randn(32, 3 * 2 * 4 * 4, generator=g)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                image_grid_thw=image_grid, pixel_values_videos=video, video_grid_thw=video_grid)


def generate(model, inputs):
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=32, do_sample=False, min_new_tokens=32,
                              return_dict_in_generate=True, output_logits=True)


@pytest.mark.parametrize("varlen_vision", [False, True])
def test_tiny_qwen3vl_generates_like_eager(varlen_vision):
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(0)
    config = tiny_config()
    config._attn_implementation = "eager"
    ref = Qwen3VLForConditionalGeneration(config).eval()
    config2 = tiny_config()
    config2._attn_implementation = NAME
    ours = Qwen3VLForConditionalGeneration(config2).eval()
    ours.load_state_dict(ref.state_dict())
    assert ours.config.text_config._attn_implementation == NAME
    assert ours.config.vision_config._attn_implementation == NAME
    if varlen_vision:
        qt.use_varlen_vision(ours)
    inputs = prompt()
    a = generate(ref, inputs)
    qt.calls.clear()
    b = generate(ours, inputs)
    # every layer's attention ran on the library: 2 text layers x 32 steps; 2 vision blocks x 3
    # frames (one call per frame), or x 2 encoder passes (image, video) with packed varlen calls
    assert qt.calls.get("Qwen3VLTextAttention") == 2 * 32
    assert qt.calls.get("Qwen3VLVisionAttention") == 2 * (2 if varlen_vision else 3)
    assert a.sequences.shape[1] == inputs["input_ids"].shape[1] + 32
    assert torch.equal(a.sequences, b.sequences)
    la, lb = torch.stack(a.logits), torch.stack(b.logits)
    torch.testing.assert_close(lb, la, atol=1e-4, rtol=1e-4)
    print("max |logit difference|:", (lb - la).abs().max().item())


def test_tiny_qwen3vl_left_padded_batch():
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(1)
    config = tiny_config()
    config._attn_implementation = "eager"
    ref = Qwen3VLForConditionalGeneration(config).eval()
    config2 = tiny_config()
    config2._attn_implementation = NAME
    ours = Qwen3VLForConditionalGeneration(config2).eval()
    ours.load_state_dict(ref.state_dict())
    one = prompt()
    n = one["input_ids"].shape[1]
    g = torch.Generator().manual_seed(9)
    short = torch.randint(0, 96, (n - 7,), generator=g)
    ids = torch.stack([one["input_ids"][0], torch.cat([torch.zeros(7, dtype=torch.long), short])])
    mask = torch.ones_like(ids)
    mask[1, :7] = 0
    inputs = dict(one, input_ids=ids, attention_mask=mask)
    with torch.no_grad():
        a = ref.generate(**inputs, max_new_tokens=16, min_new_tokens=16, do_sample=False,
                         return_dict_in_generate=True, output_logits=True)
        b = ours.generate(**inputs, max_new_tokens=16, min_new_tokens=16, do_sample=False,
                          return_dict_in_generate=True, output_logits=True)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(b.logits), torch.stack(a.logits), atol=1e-4, rtol=1e-4)
