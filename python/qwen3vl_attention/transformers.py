"""A transformers attention backend on the library's kernels.

    import qwen3vl_attention.transformers as qt
    qt.register()  # the name "qwen3vl"
    model = Qwen3VLForConditionalGeneration.from_pretrained(path, attn_implementation="qwen3vl")

The function follows transformers' AttentionInterface contract: ``(module, query, key, value,
attention_mask, scaling=None, dropout=0.0, **kwargs) -> (attn_output [B, N, H, D], None)`` with
query ``[B, Hq, N, D]`` and key / value ``[B, Hkv, S, D]`` (GQA is native: no repeat_kv). Masks:
transformers builds them with its SDPA mask function (registered under the same name): ``None``
for plain causal attention (the kernel's bottom-right causal mask, right for a KV cache too),
else a boolean or additive mask ``[B, 1, N, S]`` (padding, windows) passed as an additive mask.
Packed varlen calls (``cu_seq_lens_q`` / ``cu_seq_lens_k`` in kwargs, as the vision encoder
passes under flash-style names: see use_varlen_vision) run as one varlen call; otherwise the
vision encoder calls once per image or video frame. Tensors cross by DLPack without copies;
on CUDA the kernels run on torch's current stream.
"""

from __future__ import annotations

import threading

from . import _core
from ._core import Attention, AttentionConfig, Device, DType, MaskKind, Variant

DEFAULT_NAME = "qwen3vl"

_objects: dict = {}
_lock = threading.Lock()
_variant = Variant.auto
# Calls served, by the calling module's class name (e.g. Qwen3VLTextAttention): a cheap way to
# see that a model really runs on the library.
calls: dict = {}


def _dtype(t):
    import torch

    table = {torch.float32: DType.f32, torch.float16: DType.f16, torch.bfloat16: DType.bf16}
    if t.dtype not in table:
        raise TypeError(f"qwen3vl attention: dtype {t.dtype} is not supported (float32, float16, "
                        "bfloat16)")
    return table[t.dtype]


def _attention(device, hq, hkv, d, dtype) -> Attention:
    """One attention object per (device, heads, head_dim, dtype): created once, reused."""
    key = (device.type, device.index, hq, hkv, d, dtype, _variant)
    att = _objects.get(key)
    if att is None:
        with _lock:
            att = _objects.get(key)
            if att is None:
                cuda = device.type == "cuda"
                att = Attention(AttentionConfig(
                    variant=_variant, device=Device.cuda if cuda else Device.cpu, num_heads=hq,
                    num_kv_heads=hkv, head_dim=d, dtype=dtype,
                    cuda_device=(device.index or 0) if cuda else -1))
                _objects[key] = att
    return att


def _run(att, q, k, v, out, **kw):
    import torch

    if q.device.type == "cuda":
        stream = torch.cuda.current_stream(q.device).cuda_stream
        need = att.workspace_size(q, k, v, out, **kw)
        ws = torch.empty(need, dtype=torch.uint8, device=q.device) if need else None
        att.forward(q, k, v, out, workspace=ws, stream=stream, **kw)
    else:
        att.forward(q, k, v, out, **kw)


def attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                      **kwargs):
    """transformers' AttentionInterface function on the library (see the module docstring)."""
    import torch

    if dropout and getattr(module, "training", False):
        raise NotImplementedError("qwen3vl attention: dropout is not supported (inference only)")
    # DLPack refuses tensors that require grad; the kernels do not record a graph anyway.
    query, key, value = query.detach(), key.detach(), value.detach()
    name = type(module).__name__
    calls[name] = calls.get(name, 0) + 1
    b, hq, n, d = query.shape
    hkv, s = key.shape[1], key.shape[2]
    dtype = _dtype(query)
    att = _attention(query.device, hq, hkv, d, dtype)
    kw = {}
    if scaling is not None:
        kw["scale"] = float(scaling)
    softcap = kwargs.get("softcap")
    if softcap:
        kw["softcap"] = float(softcap)

    cu_q, cu_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    if cu_q is not None and cu_k is not None and b == 1:
        # Packed sequences: [1, H, T, D] -> [T, H, D] views; attention within each segment.
        q3, k3, v3 = query[0].transpose(0, 1), key[0].transpose(0, 1), value[0].transpose(0, 1)
        out = torch.empty((n, hq, d), dtype=query.dtype, device=query.device)
        is_causal = kwargs.get("is_causal", getattr(module, "is_causal", False))
        kw["mask"] = MaskKind.causal if is_causal else MaskKind.none
        # On the host the library derives the longest segments; device-resident cu_seqlens (CUDA)
        # need them given, from transformers' max_length_q/k when it passed them.
        where = query.device if query.device.type == "cuda" else "cpu"
        cu_q = cu_q.to(device=where, dtype=torch.int32).contiguous()
        cu_k = cu_k.to(device=where, dtype=torch.int32).contiguous()
        kw["cu_seqlens_q"], kw["cu_seqlens_k"] = cu_q, cu_k
        if where != "cpu":
            for side, cu in (("q", cu_q), ("k", cu_k)):
                given = kwargs.get(f"max_length_{side}")
                kw[f"max_seqlen_{side}"] = int(given) if given else int((cu[1:] - cu[:-1]).max())
        _run(att, q3, k3, v3, out, **kw)
        return out.unsqueeze(0), None

    q4, k4, v4 = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)  # BSHD views
    out = torch.empty((b, n, hq, d), dtype=query.dtype, device=query.device)
    if attention_mask is None:
        is_causal = kwargs.get("is_causal")
        if is_causal is None:
            is_causal = getattr(module, "is_causal", True)
        kw["mask"] = MaskKind.causal if (is_causal and n > 1) else MaskKind.none
    else:
        mask = attention_mask
        if mask.dim() == 4 and mask.shape[-1] != s:  # transformers may pass a longer static mask
            mask = mask[..., :s]
        if mask.dtype == torch.bool:
            add = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
            add.masked_fill_(~mask, float("-inf"))
        else:
            add = mask.to(torch.float32)
        kw["mask"] = MaskKind.none
        kw["additive_mask"] = add
    _run(att, q4, k4, v4, out, **kw)
    return out, None


def register(name: str = DEFAULT_NAME, variant: Variant = Variant.auto) -> str:
    """Registers the backend with transformers' AttentionInterface (and its SDPA mask function
    under the same name) and returns the name to pass as attn_implementation."""
    global _variant
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    _variant = variant
    _objects.clear()
    AttentionInterface.register(name, attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)
    return name


def use_varlen_vision(model, name: str = DEFAULT_NAME):
    """Runs the vision encoder's attention as one packed call per block (cu_seqlens) instead of
    one call per image or frame, and returns the model.

    transformers passes cu_seqlens only to attention implementations whose name contains "flash",
    and checks such names against its flash-attn kernels at model creation; so the model is
    created with ``attn_implementation=name`` and its vision config is switched afterwards to a
    flash-style name served by the same function."""
    from transformers import AttentionInterface

    varlen = f"{name}_flash_varlen"
    AttentionInterface.register(varlen, attention_forward)
    model.config.vision_config._attn_implementation_internal = varlen
    return model


__all__ = ["attention_forward", "register", "use_varlen_vision", "DEFAULT_NAME", "calls"]
