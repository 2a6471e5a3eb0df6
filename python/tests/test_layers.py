"""The Qwen3-VL text and vision attention layers against float64 NumPy forward passes."""

import numpy as np
import pytest

import qwen3vl_attention as qa
import oracle

RNG = np.random.default_rng(11)


def rand(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, size=shape).astype(np.float32)


HIDDEN, HQ, HKV, D, SECTION = 48, 4, 2, 32, (6, 5, 5)


def text_weights():
    return dict(q_proj=rand(HQ * D, HIDDEN, lo=-0.1, hi=0.1),
                k_proj=rand(HKV * D, HIDDEN, lo=-0.1, hi=0.1),
                v_proj=rand(HKV * D, HIDDEN, lo=-0.1, hi=0.1),
                o_proj=rand(HIDDEN, HQ * D, lo=-0.1, hi=0.1),
                q_norm=rand(D, lo=0.5, hi=1.5), k_norm=rand(D, lo=0.5, hi=1.5))


def text_layer(w, **opts):
    cfg = qa.TextAttentionConfig(hidden_size=HIDDEN, num_heads=HQ, num_kv_heads=HKV, head_dim=D,
                                 mrope_section=SECTION, max_position=4096, **opts)
    return qa.TextAttention(cfg, **w)


def oracle_text(w, hidden, positions, past_k=None, past_v=None):
    return oracle.text_layer(hidden, w["q_proj"], w["k_proj"], w["v_proj"], w["o_proj"],
                             w["q_norm"], w["k_norm"], positions, HQ, HKV, D, 5e6, SECTION,
                             past_k=past_k, past_v=past_v)


def test_text_prefill_then_decode_with_cache():
    w = text_weights()
    layer = text_layer(w)
    assert "cache" in layer.describe() or layer.describe()
    ccfg = qa.KvCacheConfig(layout=qa.KvLayout.contiguous, batch=1, kv_heads=HKV, head_dim=D,
                            dtype=qa.DType.f32, max_len=32)
    shape = qa.kv_storage_shape(ccfg)
    cache = qa.KvCache(ccfg, np.zeros(shape, np.float32), np.zeros(shape, np.float32))
    types = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0], np.int32)
    pos, delta = qa.get_rope_index(types, image_grid_thw=[(1, 4, 6)])
    prompt = rand(1, 11, HIDDEN)
    out = np.zeros_like(prompt)
    layer.forward(prompt, out, cache=cache, position_ids=pos)
    want, k_all, v_all = oracle_text(w, prompt, pos)
    np.testing.assert_allclose(out, want, atol=3e-5, rtol=1e-4)
    assert cache.lengths == [11] and cache.position_delta(0) == delta[0]
    # Decode without position ids: 11 + delta = 8 on every axis.
    nxt = rand(1, 1, HIDDEN)
    out1, weights = layer(nxt, cache=cache)
    assert weights is None and out1.shape == (1, 1, HIDDEN)
    want1, _, _ = oracle_text(w, nxt, np.full((3, 1, 1), 11 + delta[0]), k_all, v_all)
    np.testing.assert_allclose(out1, want1, atol=3e-5, rtol=1e-4)


def test_text_batch_without_cache_2d_positions_and_weights():
    w = text_weights()
    layer = text_layer(w, options=qa.LayerOptions(variant=qa.Variant.standard, need_weights=True))
    hidden = rand(2, 7, HIDDEN)
    pos2 = np.tile(np.arange(3, 10, dtype=np.int32), (2, 1))  # [B, L]: every axis
    out = np.zeros_like(hidden)
    weights = np.zeros((2, HQ, 7, 7), np.float32)
    layer.forward(hidden, out, position_ids=pos2, attn_weights=weights)
    want, _, _ = oracle_text(w, hidden, np.broadcast_to(pos2, (3, 2, 7)))
    np.testing.assert_allclose(out, want, atol=3e-5, rtol=1e-4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(weights[0, 0], 1) == 0)


def test_text_errors_leave_cache_unchanged():
    w = text_weights()
    layer = text_layer(w)
    ccfg = qa.KvCacheConfig(layout=qa.KvLayout.contiguous, batch=1, kv_heads=HKV, head_dim=D,
                            dtype=qa.DType.f32, max_len=8)
    shape = qa.kv_storage_shape(ccfg)
    cache = qa.KvCache(ccfg, np.zeros(shape, np.float32), np.zeros(shape, np.float32))
    hidden = rand(1, 9, HIDDEN)
    with pytest.raises(qa.Error):
        layer.forward(hidden, np.zeros_like(hidden), cache=cache)
    assert cache.lengths == [0]
    with pytest.raises(qa.ShapeMismatchError, match="hidden"):
        layer.forward(rand(1, 3, HIDDEN + 1), np.zeros((1, 3, HIDDEN), np.float32))
    bad = dict(w, q_proj=rand(HQ * D, HIDDEN + 2))
    with pytest.raises(qa.ShapeMismatchError, match="q_proj"):
        text_layer(bad)


def test_vision_layer():
    c, heads = 64, 4
    qkv_w, qkv_b = rand(3 * c, c, lo=-0.1, hi=0.1), rand(3 * c, lo=-0.1, hi=0.1)
    proj_w, proj_b = rand(c, c, lo=-0.1, hi=0.1), rand(c, lo=-0.1, hi=0.1)
    layer = qa.VisionAttention(qa.VisionAttentionConfig(hidden_size=c, num_heads=heads), qkv_w,
                               qkv_b, proj_w, proj_b)
    grids = [(1, 4, 6), (2, 2, 2)]
    pos = qa.vision_positions(grids, 2)
    n = qa.vision_patches(grids)
    cu = np.array([0, 24, 28, 32], np.int32)  # one segment per frame
    hidden = rand(n, c)
    out = np.zeros_like(hidden)
    layer.forward(hidden, pos, cu, out)
    want = oracle.vision_layer(hidden, qkv_w, qkv_b, proj_w, proj_b, pos, cu, heads)
    np.testing.assert_allclose(out, want, atol=3e-5, rtol=1e-4)
    np.testing.assert_allclose(layer(hidden, pos, cu), out, atol=1e-6)
    with pytest.raises(qa.Error):
        layer.forward(hidden, cu, pos, out)  # swapped i32 views: a shape error
