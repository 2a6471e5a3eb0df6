"""The selector's attention objects against the float64 oracle: every built CPU variant, masks,
GQA, varlen, LSE, weights, additive masks, key padding, block layouts, plan reuse."""

import numpy as np
import pytest

import qwen3vl_attention as qa
import oracle

RNG = np.random.default_rng(19)


def rand(*shape, dtype=np.float32):
    return RNG.uniform(-1, 1, size=shape).astype(dtype)


def make(variant=qa.Variant.auto, hq=6, hkv=2, d=24, mask=None, **kw):
    cfg = qa.AttentionConfig(variant=variant, num_heads=hq, num_kv_heads=hkv, head_dim=d, mask=mask,
                             **kw)
    return qa.Attention(cfg)


MASKS = [("none", qa.MaskKind.none), ("causal", qa.MaskKind.causal),
         ("causal_top_left", qa.MaskKind.causal_top_left)]


@pytest.mark.parametrize("variant", [qa.Variant.standard, qa.Variant.flash2])
@pytest.mark.parametrize("name,mask", MASKS)
@pytest.mark.parametrize("b,lq,lk,hq,hkv,d", [(2, 5, 9, 6, 2, 24), (1, 13, 13, 3, 3, 40),
                                             (3, 1, 17, 4, 1, 8)])
def test_dense(variant, name, mask, b, lq, lk, hq, hkv, d):
    q, k, v = rand(b, lq, hq, d), rand(b, lk, hkv, d), rand(b, lk, hkv, d)
    out = np.zeros_like(q)
    lse = np.zeros((b, hq, lq), np.float32)
    att = make(variant, hq, hkv, d)
    assert att.variant == variant and att.device == qa.Device.cpu
    att.forward(q, k, v, out, lse=lse, mask=mask, scale=0.3)
    want, want_lse, _ = oracle.attention(q, k, v, mask=name, scale=0.3)
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(lse, want_lse, atol=2e-5, rtol=1e-4)


def test_sliding_window_softcap_weights():
    b, lq, lk, hq, hkv, d = 2, 7, 11, 4, 2, 16
    q, k, v = rand(b, lq, hq, d), rand(b, lk, hkv, d), rand(b, lk, hkv, d)
    out = np.zeros_like(q)
    weights = np.zeros((b, hq, lq, lk), np.float32)
    att = make(qa.Variant.standard, hq, hkv, d, need_weights=True)
    att.forward(q, k, v, out, weights=weights, mask=qa.MaskKind.sliding_window, window_left=3,
                window_right=1, softcap=2.5)
    want, _, want_w = oracle.attention(q, k, v, mask="sliding_window", window_left=3,
                                       window_right=1, softcap=2.5)
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(weights, want_w, atol=2e-6)


@pytest.mark.parametrize("variant", [qa.Variant.standard, qa.Variant.flash2])
def test_additive_mask_and_key_lengths(variant):
    b, lq, lk, hq, hkv, d = 2, 6, 10, 4, 4, 32
    q, k, v = rand(b, lq, hq, d), rand(b, lk, hkv, d), rand(b, lk, hkv, d)
    add = rand(b, 1, lq, lk)
    add[0, 0, 2, :4] = -np.inf
    kl = np.array([10, 7], np.int32)
    out = np.zeros_like(q)
    make(variant, hq, hkv, d).forward(q, k, v, out, additive_mask=add, key_lengths=kl)
    want, _, _ = oracle.attention(q, k, v, additive=add, key_lengths=kl)
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", [qa.Variant.standard, qa.Variant.flash2])
def test_varlen(variant):
    hq, hkv, d = 6, 3, 20
    cu = np.array([0, 3, 3, 11, 16], np.int32)
    t = int(cu[-1])
    q, k, v = rand(t, hq, d), rand(t, hkv, d), rand(t, hkv, d)
    out = np.zeros_like(q)
    lse = np.zeros((hq, t), np.float32)
    make(variant, hq, hkv, d).forward(q, k, v, out, lse=lse, cu_seqlens_q=cu, cu_seqlens_k=cu,
                                      mask=qa.MaskKind.causal)
    want, want_lse = oracle.varlen_attention(q, k, v, cu, cu, mask="causal")
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(lse, want_lse, atol=2e-5, rtol=1e-4)


def test_half_storage():
    b, l, h, d = 1, 9, 2, 16
    q, k, v = (rand(b, l, h, d, dtype=np.float16) for _ in range(3))
    out = np.zeros_like(q)
    make(qa.Variant.flash2, h, h, d, dtype=qa.DType.f16).forward(q, k, v, out)
    want, _, _ = oracle.attention(q, k, v)
    np.testing.assert_allclose(out.astype(np.float64), want, atol=2e-3)


def test_block_sparse_layout():
    b, l, hq, hkv, d = 1, 40, 2, 1, 16
    q, k, v = rand(b, l, hq, d), rand(b, l, hkv, d), rand(b, l, hkv, d)
    # Blocks of 16: row block 0 sees column block 0, row block 1 blocks 0 and 1, row block 2 only 2.
    indptr = np.array([0, 1, 3, 4], np.int32)
    indices = np.array([0, 0, 1, 2], np.int32)
    out = np.zeros_like(q)
    att = make(qa.Variant.block_sparse, hq, hkv, d)
    att.forward(q, k, v, out, block_layout=qa.BlockLayout(16, 16, indptr, indices))
    allowed = np.zeros((l, l), bool)
    for r in range(3):
        for c in indices[indptr[r]:indptr[r + 1]]:
            allowed[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = True
    add = np.where(allowed, 0.0, -np.inf).astype(np.float32)
    want, _, _ = oracle.attention(q, k, v, additive=add)
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)


def test_static_sparse_dense_pattern_and_moh_equal_dense():
    b, l, hq, hkv, d = 1, 33, 4, 2, 16
    q, k, v = rand(b, l, hq, d), rand(b, l, hkv, d), rand(b, l, hkv, d)
    want, _, _ = oracle.attention(q, k, v, mask="causal")
    cfg = qa.AttentionConfig(variant=qa.Variant.static_sparse, num_heads=hq, num_kv_heads=hkv,
                             head_dim=d)
    ss = qa.StaticSparseConfig()
    ss.pattern = qa.SparsePattern.dense
    ss.block = 16
    ss.unidirectional = True
    cfg.static_sparse = ss
    out = np.zeros_like(q)
    qa.Attention(cfg).forward(q, k, v, out, mask=qa.MaskKind.causal)
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-4)
    moh = qa.MoHConfig()
    moh.num_shared_heads = hq  # every head shared: dense attention
    cfg = qa.AttentionConfig(variant=qa.Variant.mixture_of_heads, num_heads=hq, num_kv_heads=hkv,
                             head_dim=d)
    cfg.mixture_of_heads = moh
    out2 = np.zeros_like(q)
    qa.Attention(cfg).forward(q, k, v, out2, mask=qa.MaskKind.causal)
    np.testing.assert_allclose(out2, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
def test_linear_elu(causal):
    b, l, hq, hkv, d = 2, 21, 4, 2, 8
    q, k, v = rand(b, l, hq, d), rand(b, l, hkv, d), rand(b, l, hkv, d)
    out = np.zeros_like(q)
    make(qa.Variant.linear, hq, hkv, d).forward(
        q, k, v, out, mask=qa.MaskKind.causal if causal else qa.MaskKind.none)
    np.testing.assert_allclose(out, oracle.linear_attention(q, k, v, causal), atol=2e-5, rtol=1e-4)


def test_plan_once_run_many():
    b, lq, lk, hq, hkv, d = 2, 5, 8, 4, 2, 16
    att = make(qa.Variant.flash2, hq, hkv, d, mask=qa.MaskKind.causal)
    q, k, v = rand(b, lq, hq, d), rand(b, lk, hkv, d), rand(b, lk, hkv, d)
    out = np.zeros_like(q)
    plan = att.plan(q, k, v, out)  # mask=None: the config's causal mask
    assert plan.variant == qa.Variant.flash2 and plan.workspace_bytes >= 0 and plan.reason
    for _ in range(3):
        q, k, v = rand(b, lq, hq, d), rand(b, lk, hkv, d), rand(b, lk, hkv, d)
        out = np.zeros_like(q)
        att.run(plan, q, k, v, out, workspace=np.zeros(plan.workspace_bytes + 1, np.uint8))
        np.testing.assert_allclose(out, oracle.attention(q, k, v, mask="causal")[0], atol=2e-5,
                                   rtol=1e-4)
    assert att.supports(q, k, v, out)
    assert att.workspace_size(q, k, v, out) == plan.workspace_bytes
    # Another shape is refused, naming the field.
    q2 = rand(b, lq + 1, hq, d)
    with pytest.raises(qa.InvalidArgumentError, match="q"):
        att.run(plan, q2, k, v, np.zeros_like(q2))
    # The config's mask disagrees with the call's.
    with pytest.raises(qa.InvalidArgumentError, match="mask"):
        att.forward(q, k, v, out, mask=qa.MaskKind.none)


def test_selector_reports():
    built = qa.Selector.built()
    assert (qa.Variant.flash2, qa.Device.cpu) in built
    att = qa.Selector.create(qa.AttentionConfig(num_heads=2, num_kv_heads=2, head_dim=16))
    assert "flash2" in att.describe() or "standard" in att.describe()
    if not qa.with_cuda:
        with pytest.raises(qa.Error) as e:
            qa.Attention(qa.AttentionConfig(device=qa.Device.cuda, num_heads=2, num_kv_heads=2,
                                            head_dim=16))
        assert e.value.code != qa.StatusCode.ok


def test_hardware_report():
    hw = qa.HardwareInfo.current()
    assert hw.cpu.logical_cores >= 1
    assert "cpu" in qa.hardware_report()
    assert str(hw) == hw.to_string()


def test_q_positions_gather_rows():
    # Each query row's key position (non-decreasing): causal sees keys j <= position.
    b, lq, lk, hq, hkv, d = 2, 4, 11, 4, 2, 16
    q, k, v = rand(b, lq, hq, d), rand(b, lk, hkv, d), rand(b, lk, hkv, d)
    pos = np.array([[0, 3, 3, 9], [2, 5, 6, 10]], np.int32)
    out = np.zeros_like(q)
    make(qa.Variant.flash2, hq, hkv, d).forward(q, k, v, out, q_positions=pos,
                                                mask=qa.MaskKind.causal)
    for bi in range(b):
        add = np.where(np.arange(lk)[None, :] <= pos[bi][:, None], 0.0, -np.inf)
        want, _, _ = oracle.attention(q[bi:bi + 1], k[bi:bi + 1], v[bi:bi + 1], additive=add)
        np.testing.assert_allclose(out[bi:bi + 1], want, atol=2e-5, rtol=1e-4)


def test_dynamic_sparse_keeping_every_block_is_dense():
    b, l, hq, hkv, d = 1, 48, 2, 1, 16
    q, k, v = rand(b, l, hq, d), rand(b, l, hkv, d), rand(b, l, hkv, d)
    cfg = qa.AttentionConfig(variant=qa.Variant.dynamic_sparse, num_heads=hq, num_kv_heads=hkv,
                             head_dim=d)
    ds = qa.DynamicSparseConfig()
    ds.method = qa.DynamicSparseMethod.block_top_k
    ds.block_q = ds.block_k = 16
    ds.top_k_blocks = 8  # more than the 3 key blocks
    cfg.dynamic_sparse = ds
    out = np.zeros_like(q)
    att = qa.Attention(cfg)
    assert att.variant == qa.Variant.dynamic_sparse
    att.forward(q, k, v, out, mask=qa.MaskKind.causal)
    np.testing.assert_allclose(out, oracle.attention(q, k, v, mask="causal")[0], atol=2e-5,
                               rtol=1e-4)


@pytest.mark.parametrize("isa", [qa.CpuIsa.scalar, qa.CpuIsa.auto])
def test_cpu_options(isa):
    b, l, h, d = 1, 19, 3, 40
    q, k, v = rand(b, l, h, d), rand(b, l, h, d), rand(b, l, h, d)
    out = np.zeros_like(q)
    cfg = qa.AttentionConfig(variant=qa.Variant.flash2, num_heads=h, num_kv_heads=h, head_dim=d,
                             cpu=qa.CpuOptions(num_threads=1, isa=isa))
    assert cfg.cpu.num_threads == 1 and cfg.cpu.isa == isa
    qa.Attention(cfg).forward(q, k, v, out)
    np.testing.assert_allclose(out, oracle.attention(q, k, v)[0], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("seed", range(12))
def test_random_shapes_sweep(seed):
    # Seeded random odd shapes: batch, lengths, GQA groups, head_dim, mask, dtype, varlen or not.
    r = np.random.default_rng(1000 + seed)
    hkv = int(r.integers(1, 4))
    hq = hkv * int(r.integers(1, 4))
    d = int(r.choice([8, 24, 40, 72, 96, 136]))
    name, mask = MASKS[int(r.integers(0, 3))]
    variant = [qa.Variant.standard, qa.Variant.flash2][seed % 2]
    att = make(variant, hq, hkv, d)
    if r.random() < 0.5:
        b, lq, lk = int(r.integers(1, 4)), int(r.integers(1, 18)), int(r.integers(1, 24))
        if name != "none":
            lk = max(lk, lq)
        q, k, v = rand(b, lq, hq, d), rand(b, lk, hkv, d), rand(b, lk, hkv, d)
        out = np.zeros_like(q)
        att.forward(q, k, v, out, mask=mask)
        want = oracle.attention(q, k, v, mask=name)[0]
    else:
        lens = r.integers(0, 15, size=int(r.integers(1, 5)))
        cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
        t = max(int(cu[-1]), 1)
        q, k, v = rand(t, hq, d), rand(t, hkv, d), rand(t, hkv, d)
        out = np.zeros_like(q)
        att.forward(q, k, v, out, cu_seqlens_q=cu, cu_seqlens_k=cu, mask=mask)
        want = oracle.varlen_attention(q, k, v, cu, cu, mask=name)[0]
    np.testing.assert_allclose(out, want, atol=3e-5, rtol=1e-4)


def test_attention_convenience():
    q, k, v = rand(2, 5, 6, 24), rand(2, 8, 2, 24), rand(2, 8, 2, 24)
    out = qa.attention(q, k, v, mask=qa.MaskKind.causal, scale=0.3)
    assert out.shape == q.shape and out.dtype == q.dtype
    np.testing.assert_allclose(out, oracle.attention(q, k, v, mask="causal", scale=0.3)[0],
                               atol=2e-5, rtol=1e-4)
    cu = np.array([0, 3, 7], np.int32)
    t = rand(7, 2, 16)
    packed = qa.attention(t, t, t, cu_seqlens_q=cu, cu_seqlens_k=cu)
    np.testing.assert_allclose(packed, oracle.varlen_attention(t, t, t, cu, cu)[0], atol=2e-5,
                               rtol=1e-4)
