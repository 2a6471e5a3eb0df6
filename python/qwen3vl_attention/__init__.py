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
