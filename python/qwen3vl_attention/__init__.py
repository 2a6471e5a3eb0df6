"""qwen3vl_attention: attention kernels for Qwen3-VL, from Python.

Arrays cross by DLPack (NumPy, PyTorch, CuPy) without copies; outputs are written in place. Errors
raise :class:`qwen3vl_attention.errors.Error` subclasses carrying the library's message.
"""

from . import _core
from ._core import *  # noqa: F401,F403
from ._core import (  # noqa: F401  (names stubgen and editors see)
    Attention,
    AttentionConfig,
    AttentionPlan,
    BlockLayout,
    CpuIsa,
    CpuOptions,
    DecodeAttention,
    DecodePlan,
    Device,
    DType,
    HardwareInfo,
    KvCache,
    KvCacheConfig,
    KvCacheView,
    KvLayout,
    LayerOptions,
    MaskKind,
    RopeApplier,
    RopeConfig,
    RopeTable,
    Selector,
    StatusCode,
    TextAttention,
    TextAttentionConfig,
    Variant,
    VisionAttention,
    VisionAttentionConfig,
    get_rope_index,
    hardware_report,
    kv_storage_shape,
    rope_cos_sin,
    vision_positions,
)
from . import errors  # registers the exception classes with _core
from .errors import (  # noqa: F401
    BadStrideError,
    Error,
    InvalidArgumentError,
    NotBuiltError,
    ShapeMismatchError,
    UnsupportedError,
)

__version__ = "0.1.0"
with_cuda: bool = _core.built_with_cuda()


def token_types_from_ids(input_ids, image_token_id: int, video_token_id: int):
    """int32 token types (0 text, 1 image, 2 video) of a NumPy array of token ids."""
    import numpy as np

    ids = np.asarray(input_ids)
    types = np.zeros(ids.shape, dtype=np.int32)
    types[ids == image_token_id] = 1
    types[ids == video_token_id] = 2
    return types


_attention_objects: dict = {}


def _empty_like(a):
    """A new uninitialised array of a's shape, dtype and device, from a's own library."""
    if hasattr(a, "new_empty"):  # torch
        return a.new_empty(a.shape)
    if hasattr(a, "__array_namespace__"):  # NumPy 2, CuPy and other array-API libraries
        xp = a.__array_namespace__()
        where = {"device": a.device} if hasattr(a, "device") else {}
        return xp.empty(a.shape, dtype=a.dtype, **where)
    import numpy as np

    return np.empty(a.shape, dtype=a.dtype)


def attention(q, k, v, *, mask=None, variant=Variant.auto, out=None, **kwargs):
    """Returns attention(q, k, v) in a new array of q's kind (or writes ``out``): q ``[B, L, Hq, D]``
    (or packed ``[T, Hq, D]`` with cu_seqlens_q / cu_seqlens_k), k and v with Hkv heads. The
    keywords are Attention.forward's (mask, scale, lse, additive_mask, ...). One Attention object
    per (variant, device, heads, head_dim) is created on first use and reused."""
    rank = len(q.shape)
    hq, d, hkv = q.shape[rank - 2], q.shape[rank - 1], k.shape[rank - 2]
    is_cuda = bool(getattr(q, "is_cuda", False)) or "cuda" in str(getattr(q, "device", "")).lower()
    device = Device.cuda if is_cuda else Device.cpu
    key = (variant, device, hq, hkv, d)
    att = _attention_objects.get(key)
    if att is None:
        att = _attention_objects[key] = Attention(AttentionConfig(
            variant=variant, device=device, num_heads=hq, num_kv_heads=hkv, head_dim=d))
    if out is None:
        out = _empty_like(q)
    att.forward(q, k, v, out, mask=mask, **kwargs)
    return out
