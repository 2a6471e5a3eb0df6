"""The CUDA paths through PyTorch tensors: attention, KV cache + decode and the transformers
backend on torch's current stream. Skipped unless the module has its CUDA backend, torch is
installed and a CUDA device is visible."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qwen3vl_attention as qa  # noqa: E402
import oracle  # noqa: E402

pytestmark = pytest.mark.skipif(not (qa.with_cuda and torch.cuda.is_available()),
                                reason="needs the CUDA backend and a CUDA device")


def stream():
    return torch.cuda.current_stream().cuda_stream


def workspace(nbytes):
    return torch.empty(nbytes, dtype=torch.uint8, device="cuda") if nbytes else None


@pytest.mark.parametrize("variant", [qa.Variant.auto, qa.Variant.standard, qa.Variant.flash2])
@pytest.mark.parametrize("dtype,qdt,tol", [(torch.float32, qa.DType.f32, 2e-5),
                                           (torch.float16, qa.DType.f16, 2e-3)])
def test_attention_on_cuda(variant, dtype, qdt, tol):
    g = torch.Generator().manual_seed(1)
    b, lq, lk, hq, hkv, d = 2, 7, 13, 6, 2, 40
    q = torch.randn(b, hq, lq, d, generator=g).to(dtype).cuda()  # BHSD, viewed as BSHD
    k = torch.randn(b, hkv, lk, d, generator=g).to(dtype).cuda()
    v = torch.randn(b, hkv, lk, d, generator=g).to(dtype).cuda()
    out = torch.zeros(b, lq, hq, d, dtype=dtype, device="cuda")
    lse = torch.zeros(b, hq, lq, dtype=torch.float32, device="cuda")
    att = qa.Attention(qa.AttentionConfig(variant=variant, device=qa.Device.cuda, num_heads=hq,
                                          num_kv_heads=hkv, head_dim=d, dtype=qdt))
    assert att.device == qa.Device.cuda
    args = (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), out)
    plan = att.plan(*args, lse=lse, mask=qa.MaskKind.causal)
    att.run(plan, *args, lse=lse, mask=qa.MaskKind.causal, workspace=workspace(plan.workspace_bytes),
            stream=stream())
    torch.cuda.synchronize()
    f = lambda t: t.transpose(1, 2).float().cpu().numpy()  # noqa: E731
    want, want_lse, _ = oracle.attention(f(q), f(k), f(v), mask="causal")
    np.testing.assert_allclose(out.float().cpu().numpy(), want, atol=tol, rtol=tol)
    np.testing.assert_allclose(lse.cpu().numpy(), want_lse, atol=tol, rtol=tol)


def test_cuda_workspace_is_required_when_needed():
    att = qa.Attention(qa.AttentionConfig(variant=qa.Variant.flash2, device=qa.Device.cuda,
                                          num_heads=2, num_kv_heads=2, head_dim=16))
    q = torch.randn(1, 4096, 2, 16, device="cuda")
    out = torch.zeros_like(q)
    need = att.workspace_size(q, q, q.clone(), out)
    if need == 0:
        pytest.skip("this problem needs no workspace")
    with pytest.raises(qa.WorkspaceTooSmallError, match="workspace"):
        att.forward(q, q, q.clone(), out)


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_kv_cache_and_decode_on_cuda(layout):
    g = torch.Generator().manual_seed(2)
    batch, hq, hkv, d = 2, 8, 2, 64
    if layout == "paged":
        cfg = qa.KvCacheConfig(layout=qa.KvLayout.paged, batch=batch, kv_heads=hkv, head_dim=d,
                               dtype=qa.DType.f32, num_blocks=8, block_size=16, max_blocks=4)
    else:
        cfg = qa.KvCacheConfig(layout=qa.KvLayout.contiguous, batch=batch, kv_heads=hkv,
                               head_dim=d, dtype=qa.DType.f32, max_len=64)
    shape = qa.kv_storage_shape(cfg)
    cache = qa.KvCache(cfg, torch.zeros(shape, device="cuda"), torch.zeros(shape, device="cuda"))
    k = torch.randn(batch, 37, hkv, d, generator=g)
    v = torch.randn(batch, 37, hkv, d, generator=g)
    cache.append(k.cuda(), v.cuda(), stream=stream())
    q = torch.randn(batch, 1, hq, d, generator=g)
    qd = q.cuda()
    out = torch.zeros_like(qd)
    dec = qa.DecodeAttention.cuda()
    view = cache.view(stream=stream())
    plan = dec.plan(qd, out, view)
    dec.run(plan, qd, out, view, workspace=workspace(plan.workspace_bytes), stream=stream())
    torch.cuda.synchronize()
    want = oracle.decode(q.numpy(), k.numpy(), v.numpy(), [37, 37])
    np.testing.assert_allclose(out.cpu().numpy(), want, atol=2e-5, rtol=1e-4)


def test_transformers_tiny_qwen3vl_on_cuda():
    pytest.importorskip("transformers")
    import qwen3vl_attention.transformers as qt
    import test_transformers as tt
    from transformers import Qwen3VLForConditionalGeneration

    name = qt.register()
    torch.manual_seed(0)
    config = tt.tiny_config()
    config._attn_implementation = "eager"
    ref = Qwen3VLForConditionalGeneration(config).eval().cuda()
    config2 = tt.tiny_config()
    config2._attn_implementation = name
    ours = Qwen3VLForConditionalGeneration(config2).eval().cuda()
    ours.load_state_dict(ref.state_dict())
    qt.use_varlen_vision(ours)
    inputs = {key: value.cuda() for key, value in tt.prompt().items()}
    a = tt.generate(ref, inputs)
    qt.calls.clear()
    b = tt.generate(ours, inputs)
    assert qt.calls.get("Qwen3VLTextAttention") == 2 * 32
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(torch.stack(b.logits), torch.stack(a.logits), atol=1e-4, rtol=1e-4)
