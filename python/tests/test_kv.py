"""KV caches over NumPy storage (contiguous and paged): append, fork, reset, view -> decode,
against the float64 oracle."""

import numpy as np
import pytest

import qwen3vl_attention as qa
import oracle

RNG = np.random.default_rng(7)


def rand(*shape):
    return RNG.uniform(-1, 1, size=shape).astype(np.float32)


def make_cache(layout, batch, hkv, d, dtype=qa.DType.f32, max_len=48):
    if layout == "paged":
        cfg = qa.KvCacheConfig(layout=qa.KvLayout.paged, batch=batch, kv_heads=hkv, head_dim=d,
                               dtype=dtype, num_blocks=12, block_size=16, max_blocks=3)
    else:
        cfg = qa.KvCacheConfig(layout=qa.KvLayout.contiguous, batch=batch, kv_heads=hkv,
                               head_dim=d, dtype=dtype, max_len=max_len)
    npdt = np.float32 if dtype == qa.DType.f32 else np.float16
    shape = qa.kv_storage_shape(cfg)
    return qa.KvCache(cfg, np.zeros(shape, npdt), np.zeros(shape, npdt))


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
@pytest.mark.parametrize("rows", [1, 3])
def test_append_and_decode(layout, rows):
    batch, hq, hkv, d = 3, 6, 2, 24
    cache = make_cache(layout, batch, hkv, d)
    # A prompt of 5 tokens a sequence, then ragged appends (cu_seqlens): 2, 0, 7.
    k0, v0 = rand(batch, 5, hkv, d), rand(batch, 5, hkv, d)
    cache.append(k0, v0)
    cu = np.array([0, 2, 2, 9], np.int32)
    k1, v1 = rand(9, hkv, d), rand(9, hkv, d)
    cache.append(k1, v1, cu)
    assert cache.lengths == [7, 5, 12]
    # The new decode rows themselves go into the cache first (rows a sequence).
    kn, vn = rand(batch, rows, hkv, d), rand(batch, rows, hkv, d)
    cache.append(kn, vn)
    lens = [7 + rows, 5 + rows, 12 + rows]
    assert cache.lengths == lens
    ks = np.zeros((batch, 48, hkv, d))
    vs = np.zeros((batch, 48, hkv, d))
    for b in range(batch):
        parts_k = [k0[b], k1[cu[b]:cu[b + 1]], kn[b]]
        parts_v = [v0[b], v1[cu[b]:cu[b + 1]], vn[b]]
        ks[b, :lens[b]] = np.concatenate(parts_k)
        vs[b, :lens[b]] = np.concatenate(parts_v)
    q = rand(batch, rows, hq, d)
    out = np.zeros_like(q)
    lse = np.zeros((batch, hq, rows), np.float32)
    dec = qa.DecodeAttention.cpu()
    view = cache.view()
    assert view.batch == batch and view.kv_heads == hkv and view.head_dim == d
    dec.forward(q, out, view, lse=lse)
    np.testing.assert_allclose(out, oracle.decode(q, ks, vs, lens), atol=2e-5, rtol=1e-4)
    for b in range(batch):
        _, want_lse, _ = oracle.attention(q[b:b + 1], ks[b:b + 1, :lens[b]], vs[b:b + 1, :lens[b]],
                                          mask="causal")
        np.testing.assert_allclose(lse[b], want_lse[0], atol=2e-5, rtol=1e-4)
    # plan once, run many (one plan serves the next step too while shapes agree)
    plan = dec.plan(q, out, view, num_splits=2)
    assert plan.splits >= 1 and plan.reason
    out2 = np.zeros_like(q)
    dec.run(plan, q, out2, view, num_splits=2)
    np.testing.assert_allclose(out2, out, atol=2e-6)
    assert dec.supports(q, out, view)
    assert dec.workspace_size(q, out, view) >= 0


def test_half_storage_rounds():
    batch, hq, hkv, d = 1, 2, 1, 16
    cache = make_cache("paged", batch, hkv, d, dtype=qa.DType.f16)
    k, v = rand(batch, 20, hkv, d), rand(batch, 20, hkv, d)
    cache.append(k, v)
    assert "f16" in cache.describe()
    q = rand(batch, 1, hq, d)
    out = np.zeros_like(q)
    qa.DecodeAttention.cpu().forward(q, out, cache.view())
    want = oracle.decode(q, k.astype(np.float16), v.astype(np.float16), [20])
    np.testing.assert_allclose(out, want, atol=1e-4)


def test_fork_reset_and_copy_on_write():
    hkv, d = 1, 8
    cache = make_cache("paged", 2, hkv, d)
    k, v = rand(1, 20, hkv, d), rand(1, 20, hkv, d)
    cu = np.array([0, 20, 20], np.int32)
    cache.append(k[0], v[0], cu)
    assert cache.lengths == [20, 0]
    cache.fork(0, 1)
    assert cache.lengths == [20, 20]
    bt = np.array(cache.block_table).reshape(2, -1)
    assert bt[0, 0] == bt[1, 0] and cache.ref_count(int(bt[0, 0])) == 2
    # Appending to the fork copies the shared partial block; sequence 0 is unchanged.
    k2, v2 = rand(1, hkv, d), rand(1, hkv, d)
    cache.append(k2, v2, np.array([0, 0, 1], np.int32))
    assert cache.lengths == [20, 21]
    q = rand(2, 1, 2, d)
    out = np.zeros_like(q)
    qa.DecodeAttention.cpu().forward(q, out, cache.view())
    ks = np.zeros((2, 21, hkv, d))
    vs = np.zeros((2, 21, hkv, d))
    ks[0, :20], vs[0, :20] = k[0], v[0]
    ks[1, :20], vs[1, :20] = k[0], v[0]
    ks[1, 20], vs[1, 20] = k2[0], v2[0]
    np.testing.assert_allclose(out, oracle.decode(q, ks, vs, [20, 21]), atol=2e-5, rtol=1e-4)
    cache.reset(1)
    assert cache.lengths == [20, 0]
    cache.set_position_delta(0, -3)
    assert cache.position_delta(0) == -3


def test_cache_errors():
    cache = make_cache("contiguous", 1, 2, 16, max_len=8)
    with pytest.raises(qa.Error, match="max_len|capacity|overflow|8"):
        cache.append(rand(1, 9, 2, 16), rand(1, 9, 2, 16))
    assert cache.lengths == [0]
    with pytest.raises(qa.ShapeMismatchError):
        cache.append(rand(1, 2, 3, 16), rand(1, 2, 3, 16))
    with pytest.raises(ValueError, match="seq|dst|src"):
        cache.fork(0, 5)
    cfg = qa.KvCacheConfig(layout=qa.KvLayout.contiguous, batch=1, kv_heads=2, head_dim=16,
                           dtype=qa.DType.f32, max_len=8)
    with pytest.raises(qa.ShapeMismatchError, match="k"):
        qa.KvCache(cfg, np.zeros((1, 7, 2, 16), np.float32), np.zeros((1, 8, 2, 16), np.float32))
    cache.append(rand(1, 2, 2, 16), rand(1, 2, 2, 16))
    q = rand(1, 9, 4, 16)  # more than 8 decode rows
    with pytest.raises(qa.InvalidArgumentError, match="rows"):
        qa.DecodeAttention.cpu().forward(q, np.zeros_like(q), cache.view())


def test_quest_budget_covering_the_sequence_is_dense_decode():
    batch, hq, hkv, d = 2, 4, 2, 16
    cfg = qa.KvCacheConfig(layout=qa.KvLayout.paged, batch=batch, kv_heads=hkv, head_dim=d,
                           dtype=qa.DType.f32, num_blocks=16, block_size=16, max_blocks=6,
                           key_bounds=True)
    shape = qa.kv_storage_shape(cfg)
    bounds = np.zeros(qa.kv_key_bounds_shape(cfg), np.float32)
    cache = qa.KvCache(cfg, np.zeros(shape, np.float32), np.zeros(shape, np.float32), bounds)
    k, v = rand(batch, 70, hkv, d), rand(batch, 70, hkv, d)
    cache.append(k, v)
    # the bounds of sequence 0's first block: elementwise min / max of its 16 keys
    blk = cache.block_table[0]
    np.testing.assert_array_equal(bounds[blk, 0], k[0, :16].min(axis=0))
    np.testing.assert_array_equal(bounds[blk, 1], k[0, :16].max(axis=0))
    q = rand(batch, 1, hq, d)
    dense = np.zeros_like(q)
    qa.DecodeAttention.cpu().forward(q, dense, cache.view())
    out = np.zeros_like(q)
    quest = qa.QuestDecode.cpu(token_budget=96)
    assert quest.device == qa.Device.cpu and quest.describe()
    quest.forward(q, out, cache.view(), bounds)
    np.testing.assert_array_equal(out, dense)
    small = np.zeros_like(q)
    qa.QuestDecode.cpu(token_budget=32).forward(q, small, cache.view(), bounds)
    assert np.isfinite(small).all()
    with pytest.raises(qa.Error, match="key_bounds"):
        quest.forward(q, out, cache.view(), bounds[:, :1])


def test_merge_states_of_two_key_halves_is_the_whole():
    t, h, d, lk = 5, 3, 16, 12
    q, k, v = rand(1, t, h, d), rand(1, lk, h, d), rand(1, lk, h, d)
    att = qa.Attention(qa.AttentionConfig(variant=qa.Variant.flash2, num_heads=h, num_kv_heads=h,
                                          head_dim=d))
    parts = []
    for a, e in ((0, 7), (7, lk)):
        o = np.zeros_like(q)
        lse = np.zeros((1, h, t), np.float32)
        att.forward(q, k[:, a:e], v[:, a:e], o, lse=lse)
        parts.append((o[0], np.ascontiguousarray(lse[0].T)))
    out = np.zeros((t, h, d), np.float32)
    lse_out = np.zeros((t, h), np.float32)
    qa.merge_states(parts[0][0], parts[0][1], parts[1][0], parts[1][1], out, lse_out)
    want, want_lse, _ = oracle.attention(q, k, v)
    np.testing.assert_allclose(out, want[0], atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(lse_out, want_lse[0].T, atol=2e-5, rtol=1e-4)
