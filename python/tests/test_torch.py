"""PyTorch tensors cross by DLPack like NumPy arrays: written in place, bfloat16 included; the
CUDA entry points of a CPU build raise NotBuiltError. Skipped without torch."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qwen3vl_attention as qa  # noqa: E402
import oracle  # noqa: E402


@pytest.mark.parametrize("dtype,qdt,tol", [(torch.float32, qa.DType.f32, 2e-5),
                                           (torch.bfloat16, qa.DType.bf16, 2e-2),
                                           (torch.float16, qa.DType.f16, 2e-3)])
def test_torch_tensors_in_place(dtype, qdt, tol):
    g = torch.Generator().manual_seed(4)
    b, h, l, d = 2, 4, 9, 32
    q = torch.randn(b, h, l, d, generator=g).to(dtype)
    k = torch.randn(b, 2, l, d, generator=g).to(dtype)
    v = torch.randn(b, 2, l, d, generator=g).to(dtype)
    out = torch.zeros(b, l, h, d, dtype=dtype)
    att = qa.Attention(qa.AttentionConfig(num_heads=h, num_kv_heads=2, head_dim=d, dtype=qdt))
    att.forward(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), out,
                mask=qa.MaskKind.causal)
    f = lambda t: t.transpose(1, 2).float().numpy()  # noqa: E731
    want, _, _ = oracle.attention(f(q), f(k), f(v), mask="causal")
    np.testing.assert_allclose(out.float().numpy(), want, atol=tol, rtol=tol)


def test_inputs_that_require_grad_are_read():
    # nanobind takes such tensors as they are (no graph is recorded); outputs are plain tensors.
    q = torch.ones(1, 2, 2, 16, requires_grad=True)
    v = torch.arange(64, dtype=torch.float32).reshape(1, 2, 2, 16)
    out = torch.zeros(1, 2, 2, 16)
    att = qa.Attention(qa.AttentionConfig(num_heads=2, num_kv_heads=2, head_dim=16))
    att.forward(q, q.detach(), v, out, mask=qa.MaskKind.causal)
    torch.testing.assert_close(out[0, 0], v[0, 0])


@pytest.mark.skipif(qa.with_cuda, reason="a CUDA build")
def test_cuda_entry_points_raise_in_a_cpu_build():
    for make in (qa.DecodeAttention.cuda, qa.RopeApplier.cuda, qa.QuestDecode.cuda,
                 lambda: qa.DeviceRopeTable.upload(qa.RopeTable.vision(16))):
        with pytest.raises(qa.NotBuiltError, match="CUDA"):
            make()


def test_attention_convenience_returns_a_tensor():
    q = torch.randn(1, 6, 4, 16)
    k = torch.randn(1, 6, 2, 16)
    out = qa.attention(q, k, k, mask=qa.MaskKind.causal)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape
    want, _, _ = oracle.attention(q.numpy(), k.numpy(), k.numpy(), mask="causal")
    np.testing.assert_allclose(out.numpy(), want, atol=2e-5, rtol=1e-4)
