"""Arrays crossing by DLPack: strided (non-contiguous) NumPy views are read and written in place
without copies; views the kernels cannot use are refused with a typed exception naming the
argument; bad input raises the exception class of its StatusCode."""

import numpy as np
import pytest

import qwen3vl_attention as qa
import oracle

RNG = np.random.default_rng(5)


def rand(*shape, dtype=np.float32):
    return RNG.uniform(-1, 1, size=shape).astype(dtype)


def flash(hq=4, hkv=2, d=16, **kw):
    return qa.Attention(qa.AttentionConfig(variant=qa.Variant.flash2, num_heads=hq,
                                           num_kv_heads=hkv, head_dim=d, **kw))


def test_strided_views_in_and_out():
    b, lq, lk, hq, hkv, d = 2, 5, 7, 4, 2, 16
    # q as BHSD memory seen as BSHD (a transposed view), k every other row of a bigger buffer,
    # v a slice of heads, out a strided window of a larger array.
    q = rand(b, hq, lq, d).transpose(0, 2, 1, 3)
    k = rand(b, 2 * lk + 1, hkv, d)[:, 1::2]
    v = rand(b, lk, hkv + 3, d)[:, :, 3:]
    big = np.full((b, lq, hq + 1, d + 5), 7.0, np.float32)
    out = big[:, :, 1:, 2:2 + d]
    assert not q.flags.c_contiguous and not k.flags.c_contiguous and not out.flags.c_contiguous
    flash(hq, hkv, d).forward(q, k, v, out, mask=qa.MaskKind.causal)
    want, _, _ = oracle.attention(q, k, v, mask="causal")
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)
    assert np.all(big[:, :, 0] == 7.0) and np.all(big[:, :, :, :2] == 7.0)  # in place, no spill


def test_odd_shapes_round_trip_through_the_cache():
    # Non-contiguous K/V appended, then read back by decode.
    hkv, d = 3, 24
    cfg = qa.KvCacheConfig(layout=qa.KvLayout.paged, batch=1, kv_heads=hkv, head_dim=d,
                           dtype=qa.DType.f32, num_blocks=4, block_size=16, max_blocks=4)
    shape = qa.kv_storage_shape(cfg)
    cache = qa.KvCache(cfg, np.zeros(shape, np.float32), np.zeros(shape, np.float32))
    k = rand(1, hkv, 19, d).transpose(0, 2, 1, 3)
    v = rand(1, 38, hkv, d)[:, ::2]
    cache.append(k, v)
    ks = cache.k_storage
    np.testing.assert_array_equal(ks[0, :16], k[0, :16])
    np.testing.assert_array_equal(ks[1, :3], k[0, 16:]) if cache.block_table[1] == 1 else None
    q = rand(1, 2, 6, d)[:, :, ::2]
    out = np.zeros((1, 2, 3, d), np.float32)
    qa.DecodeAttention.cpu().forward(q, out, cache.view())
    kk = np.zeros((1, 19, hkv, d))
    kk[0] = k[0]
    vv = np.zeros((1, 19, hkv, d))
    vv[0] = v[0]
    np.testing.assert_allclose(out, oracle.decode(q, kk, vv, [19]), atol=2e-5, rtol=1e-4)


def test_last_dimension_must_be_contiguous():
    b, l, h, d = 1, 4, 2, 16
    q = rand(b, l, h, 2 * d)[..., ::2]
    k, v = rand(b, l, h, d), rand(b, l, h, d)
    with pytest.raises(qa.BadStrideError, match="q"):
        flash(h, h, d).forward(q, k, v, np.zeros((b, l, h, d), np.float32))
    with pytest.raises(ValueError, match="q"):  # also a ValueError
        flash(h, h, d).forward(q, k, v, np.zeros((b, l, h, d), np.float32))


def test_negative_strides_handled_or_refused():
    b, l, h, d = 1, 6, 2, 16
    q = rand(b, l, h, d)[:, ::-1]
    k, v = rand(b, l, h, d), rand(b, l, h, d)
    out = np.zeros((b, l, h, d), np.float32)
    try:
        flash(h, h, d).forward(q, k, v, out)
    except qa.Error as e:  # refused: typed, naming the argument
        assert "q" in str(e)
    else:
        np.testing.assert_allclose(out, oracle.attention(q, k, v)[0], atol=2e-5, rtol=1e-4)


def test_typed_errors_name_the_argument():
    b, l, h, d = 1, 4, 2, 16
    q, k, v = rand(b, l, h, d), rand(b, l, h, d), rand(b, l, h, d)
    out = np.zeros_like(q)
    att = flash(h, h, d)
    with pytest.raises(qa.InvalidArgumentError, match="q.dtype"):
        att.forward(q.astype(np.float64), k, v, out)
    with pytest.raises(qa.InvalidArgumentError, match="k"):
        att.forward(q, [[1.0]], v, out)
    ro = np.zeros_like(q)
    ro.flags.writeable = False
    with pytest.raises(qa.InvalidArgumentError, match="out.*read-only"):
        att.forward(q, k, v, ro)
    with pytest.raises(qa.ShapeMismatchError, match="ndim"):
        att.forward(q[None, None], k, v, out)
    with pytest.raises(qa.ShapeMismatchError, match="k.shape"):
        att.forward(q, rand(b, l, h, d + 1), v, out)
    with pytest.raises(qa.InvalidArgumentError, match="out"):  # out aliases q
        att.forward(q, k, v, q)
    with pytest.raises(qa.InvalidArgumentError, match="Hkv|num_kv_heads|heads"):
        att.forward(q, rand(b, l, 3, d), rand(b, l, 3, d), out)
    cu = np.array([0, 3, 2], np.int32)  # decreasing
    t = rand(3, h, d)
    with pytest.raises(qa.InvalidArgumentError, match="cu_seqlens"):
        att.forward(t, t.copy(), t.copy(), np.zeros_like(t), cu_seqlens_q=cu, cu_seqlens_k=cu)
    with pytest.raises(qa.InvalidArgumentError, match="cu_seqlens"):
        att.forward(t, t.copy(), t.copy(), np.zeros_like(t), cu_seqlens_q=cu.astype(np.float32),
                    cu_seqlens_k=cu)
    # read-only inputs are fine
    q.flags.writeable = False
    att.forward(q, k, v, out)


def test_status_codes_map_to_classes():
    assert issubclass(qa.InvalidArgumentError, ValueError)
    assert issubclass(qa.ShapeMismatchError, ValueError)
    assert issubclass(qa.BadStrideError, ValueError)
    assert issubclass(qa.UnsupportedError, NotImplementedError)
    for code in qa.StatusCode:
        if code != qa.StatusCode.ok:
            assert issubclass(qa.errors.error_class(code), qa.Error)
    with pytest.raises(qa.Error) as e:
        flash(4, 2, 16).forward(rand(1, 2, 4, 8), rand(1, 2, 2, 16), rand(1, 2, 2, 8),
                                np.zeros((1, 2, 4, 8), np.float32))
    assert e.value.code == qa.StatusCode.shape_mismatch and "k.shape" in str(e.value)
