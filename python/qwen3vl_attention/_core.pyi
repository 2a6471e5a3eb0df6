"""
qwen3vl-attention: attention kernels for Qwen3-VL (the C++ library's binding)
"""

from collections.abc import Sequence
import enum
from typing import Annotated, overload

import numpy
from numpy.typing import NDArray


def built_with_cuda() -> bool:
    """Whether the library was built with its CUDA backend."""

class StatusCode(enum.Enum):
    ok = 0

    invalid_argument = 1

    shape_mismatch = 2

    bad_stride = 3

    null_pointer = 4

    unsupported = 5

    not_implemented = 6

    workspace_too_small = 7

    device_error = 8

    out_of_memory = 9

    internal = 10

    io_error = 11

    data_corrupt = 12

class DType(enum.Enum):
    f32 = 0

    f16 = 1

    bf16 = 2

    i32 = 3

class Device(enum.Enum):
    cpu = 0

    cuda = 1

class Variant(enum.Enum):
    auto = 0

    standard = 1

    flash2 = 2

    sm61_tiled = 3

    static_sparse = 4

    dynamic_sparse = 5

    block_sparse = 6

    linear = 7

    mixture_of_heads = 8

class MaskKind(enum.Enum):
    none = 0

    causal = 1

    causal_top_left = 2

    sliding_window = 3

class CpuIsa(enum.Enum):
    auto = 0

    scalar = 1

    avx2 = 2

    avx512 = 3

class KvLayout(enum.Enum):
    contiguous = 0

    paged = 1

class SparsePattern(enum.Enum):
    dense = 0

    sliding_window = 1

    dilated = 2

    longformer = 3

    bigbird = 4

    fixed = 5

    variable = 6

class DynamicSparseMethod(enum.Enum):
    block_top_k = 0

    vertical_slash = 1

    exact_top_k = 2

class LinearFeatureMap(enum.Enum):
    elu_plus_one = 0

    performer = 1

class PerformerNorm(enum.Enum):
    chi = 0

    sqrt_head_dim = 1

class CpuOptions:
    """Threads and ISA of CPU kernels."""

    @overload
    def __init__(self) -> None: ...

    @overload
    def __init__(self, num_threads: int = 0, isa: CpuIsa = CpuIsa.auto) -> None: ...

    @property
    def num_threads(self) -> int:
        """0: the physical cores; else 1..1024"""

    @num_threads.setter
    def num_threads(self, arg: int, /) -> None: ...

    @property
    def isa(self) -> CpuIsa: ...

    @isa.setter
    def isa(self, arg: CpuIsa, /) -> None: ...

class SlidingWindowPattern:
    def __init__(self) -> None: ...

    @property
    def num_sliding_window_blocks(self) -> int: ...

    @num_sliding_window_blocks.setter
    def num_sliding_window_blocks(self, arg: int, /) -> None: ...

class DilatedPattern:
    def __init__(self) -> None: ...

    @property
    def local_blocks(self) -> int: ...

    @local_blocks.setter
    def local_blocks(self, arg: int, /) -> None: ...

    @property
    def dilation(self) -> int: ...

    @dilation.setter
    def dilation(self, arg: int, /) -> None: ...

    @property
    def span_blocks(self) -> int: ...

    @span_blocks.setter
    def span_blocks(self, arg: int, /) -> None: ...

class GlobalBlocks:
    def __init__(self) -> None: ...

    @property
    def global_block_indices(self) -> list[int]: ...

    @global_block_indices.setter
    def global_block_indices(self, arg: Sequence[int], /) -> None: ...

    @property
    def global_block_end_indices(self) -> list[int]: ...

    @global_block_end_indices.setter
    def global_block_end_indices(self, arg: Sequence[int], /) -> None: ...

class LongformerPattern:
    def __init__(self) -> None: ...

    @property
    def num_sliding_window_blocks(self) -> int: ...

    @num_sliding_window_blocks.setter
    def num_sliding_window_blocks(self, arg: int, /) -> None: ...

    @property
    def global_blocks(self) -> GlobalBlocks: ...

    @global_blocks.setter
    def global_blocks(self, arg: GlobalBlocks, /) -> None: ...

class BigBirdPattern:
    def __init__(self) -> None: ...

    @property
    def num_random_blocks(self) -> int: ...

    @num_random_blocks.setter
    def num_random_blocks(self, arg: int, /) -> None: ...

    @property
    def num_sliding_window_blocks(self) -> int: ...

    @num_sliding_window_blocks.setter
    def num_sliding_window_blocks(self, arg: int, /) -> None: ...

    @property
    def num_global_blocks(self) -> int: ...

    @num_global_blocks.setter
    def num_global_blocks(self, arg: int, /) -> None: ...

class FixedPattern:
    def __init__(self) -> None: ...

    @property
    def num_local_blocks(self) -> int: ...

    @num_local_blocks.setter
    def num_local_blocks(self, arg: int, /) -> None: ...

    @property
    def num_global_blocks(self) -> int: ...

    @num_global_blocks.setter
    def num_global_blocks(self, arg: int, /) -> None: ...

    @property
    def horizontal_global_attention(self) -> bool: ...

    @horizontal_global_attention.setter
    def horizontal_global_attention(self, arg: bool, /) -> None: ...

    @property
    def num_different_global_patterns(self) -> int: ...

    @num_different_global_patterns.setter
    def num_different_global_patterns(self, arg: int, /) -> None: ...

class VariablePattern:
    def __init__(self) -> None: ...

    @property
    def num_random_blocks(self) -> int: ...

    @num_random_blocks.setter
    def num_random_blocks(self, arg: int, /) -> None: ...

    @property
    def local_window_blocks(self) -> list[int]: ...

    @local_window_blocks.setter
    def local_window_blocks(self, arg: Sequence[int], /) -> None: ...

    @property
    def global_blocks(self) -> GlobalBlocks: ...

    @global_blocks.setter
    def global_blocks(self, arg: GlobalBlocks, /) -> None: ...

    @property
    def horizontal_global_attention(self) -> bool: ...

    @horizontal_global_attention.setter
    def horizontal_global_attention(self, arg: bool, /) -> None: ...

class StaticSparseConfig:
    def __init__(self) -> None: ...

    @property
    def pattern(self) -> SparsePattern: ...

    @pattern.setter
    def pattern(self, arg: SparsePattern, /) -> None: ...

    @property
    def block(self) -> int: ...

    @block.setter
    def block(self, arg: int, /) -> None: ...

    @property
    def unidirectional(self) -> bool: ...

    @unidirectional.setter
    def unidirectional(self, arg: bool, /) -> None: ...

    @property
    def different_layout_per_head(self) -> bool: ...

    @different_layout_per_head.setter
    def different_layout_per_head(self, arg: bool, /) -> None: ...

    @property
    def seed(self) -> int: ...

    @seed.setter
    def seed(self, arg: int, /) -> None: ...

    @property
    def sliding_window(self) -> SlidingWindowPattern: ...

    @sliding_window.setter
    def sliding_window(self, arg: SlidingWindowPattern, /) -> None: ...

    @property
    def dilated(self) -> DilatedPattern: ...

    @dilated.setter
    def dilated(self, arg: DilatedPattern, /) -> None: ...

    @property
    def longformer(self) -> LongformerPattern: ...

    @longformer.setter
    def longformer(self, arg: LongformerPattern, /) -> None: ...

    @property
    def bigbird(self) -> BigBirdPattern: ...

    @bigbird.setter
    def bigbird(self, arg: BigBirdPattern, /) -> None: ...

    @property
    def fixed(self) -> FixedPattern: ...

    @fixed.setter
    def fixed(self, arg: FixedPattern, /) -> None: ...

    @property
    def variable(self) -> VariablePattern: ...

    @variable.setter
    def variable(self, arg: VariablePattern, /) -> None: ...

class DynamicSparseConfig:
    def __init__(self) -> None: ...

    @property
    def method(self) -> DynamicSparseMethod: ...

    @method.setter
    def method(self, arg: DynamicSparseMethod, /) -> None: ...

    @property
    def block_q(self) -> int: ...

    @block_q.setter
    def block_q(self, arg: int, /) -> None: ...

    @property
    def block_k(self) -> int: ...

    @block_k.setter
    def block_k(self, arg: int, /) -> None: ...

    @property
    def top_k_blocks(self) -> int: ...

    @top_k_blocks.setter
    def top_k_blocks(self, arg: int, /) -> None: ...

    @property
    def sink_blocks(self) -> int: ...

    @sink_blocks.setter
    def sink_blocks(self, arg: int, /) -> None: ...

    @property
    def local_blocks(self) -> int: ...

    @local_blocks.setter
    def local_blocks(self, arg: int, /) -> None: ...

    @property
    def last_queries(self) -> int: ...

    @last_queries.setter
    def last_queries(self, arg: int, /) -> None: ...

    @property
    def vertical(self) -> int: ...

    @vertical.setter
    def vertical(self, arg: int, /) -> None: ...

    @property
    def slash(self) -> int: ...

    @slash.setter
    def slash(self, arg: int, /) -> None: ...

    @property
    def forced_vertical(self) -> int: ...

    @forced_vertical.setter
    def forced_vertical(self, arg: int, /) -> None: ...

    @property
    def forced_slash(self) -> int: ...

    @forced_slash.setter
    def forced_slash(self, arg: int, /) -> None: ...

    @property
    def top_k(self) -> int: ...

    @top_k.setter
    def top_k(self, arg: int, /) -> None: ...

    @property
    def keep_fraction(self) -> float: ...

    @keep_fraction.setter
    def keep_fraction(self, arg: float, /) -> None: ...

class LinearConfig:
    def __init__(self) -> None: ...

    @property
    def feature_map(self) -> LinearFeatureMap: ...

    @feature_map.setter
    def feature_map(self, arg: LinearFeatureMap, /) -> None: ...

    @property
    def head_dim(self) -> int: ...

    @head_dim.setter
    def head_dim(self, arg: int, /) -> None: ...

    @property
    def performer_features(self) -> int: ...

    @performer_features.setter
    def performer_features(self, arg: int, /) -> None: ...

    @property
    def performer_seed(self) -> int: ...

    @performer_seed.setter
    def performer_seed(self, arg: int, /) -> None: ...

    @property
    def performer_norm(self) -> PerformerNorm: ...

    @performer_norm.setter
    def performer_norm(self, arg: PerformerNorm, /) -> None: ...

    @property
    def chunk(self) -> int: ...

    @chunk.setter
    def chunk(self, arg: int, /) -> None: ...

    @property
    def eps(self) -> float: ...

    @eps.setter
    def eps(self, arg: float, /) -> None: ...

class MoHConfig:
    def __init__(self) -> None: ...

    @property
    def num_heads(self) -> int: ...

    @num_heads.setter
    def num_heads(self, arg: int, /) -> None: ...

    @property
    def num_shared_heads(self) -> int: ...

    @num_shared_heads.setter
    def num_shared_heads(self, arg: int, /) -> None: ...

    @property
    def top_k(self) -> int: ...

    @top_k.setter
    def top_k(self, arg: int, /) -> None: ...

class AttentionConfig:
    """What the selector plans for (C++ AttentionConfig)."""

    def __init__(self, variant: Variant = Variant.auto, device: Device = Device.cpu, num_heads: int = 0, num_kv_heads: int = 0, head_dim: int = 0, dtype: DType = DType.f32, mask: MaskKind | None = None, need_weights: bool = False, cpu: CpuOptions | None = None, cuda_device: int = -1) -> None: ...

    @property
    def variant(self) -> Variant: ...

    @variant.setter
    def variant(self, arg: Variant, /) -> None: ...

    @property
    def device(self) -> Device: ...

    @device.setter
    def device(self, arg: Device, /) -> None: ...

    @property
    def num_heads(self) -> int: ...

    @num_heads.setter
    def num_heads(self, arg: int, /) -> None: ...

    @property
    def num_kv_heads(self) -> int: ...

    @num_kv_heads.setter
    def num_kv_heads(self, arg: int, /) -> None: ...

    @property
    def head_dim(self) -> int: ...

    @head_dim.setter
    def head_dim(self, arg: int, /) -> None: ...

    @property
    def dtype(self) -> DType: ...

    @dtype.setter
    def dtype(self, arg: DType, /) -> None: ...

    @property
    def mask(self) -> MaskKind | None: ...

    @mask.setter
    def mask(self, arg: MaskKind | None, /) -> None: ...

    @property
    def need_weights(self) -> bool: ...

    @need_weights.setter
    def need_weights(self, arg: bool, /) -> None: ...

    @property
    def cpu(self) -> CpuOptions: ...

    @cpu.setter
    def cpu(self, arg: CpuOptions, /) -> None: ...

    @property
    def cuda_device(self) -> int: ...

    @cuda_device.setter
    def cuda_device(self, arg: int, /) -> None: ...

    @property
    def static_sparse(self) -> StaticSparseConfig: ...

    @static_sparse.setter
    def static_sparse(self, arg: StaticSparseConfig, /) -> None: ...

    @property
    def dynamic_sparse(self) -> DynamicSparseConfig: ...

    @dynamic_sparse.setter
    def dynamic_sparse(self, arg: DynamicSparseConfig, /) -> None: ...

    @property
    def linear(self) -> LinearConfig: ...

    @linear.setter
    def linear(self, arg: LinearConfig, /) -> None: ...

    @property
    def mixture_of_heads(self) -> MoHConfig: ...

    @mixture_of_heads.setter
    def mixture_of_heads(self, arg: MoHConfig, /) -> None: ...

class CpuInfo:
    @property
    def vendor(self) -> str: ...

    @property
    def brand(self) -> str: ...

    @property
    def avx2(self) -> bool: ...

    @property
    def fma(self) -> bool: ...

    @property
    def f16c(self) -> bool: ...

    @property
    def avx512f(self) -> bool: ...

    @property
    def avx512_bf16(self) -> bool: ...

    @property
    def avx512_vnni(self) -> bool: ...

    @property
    def physical_cores(self) -> int: ...

    @property
    def logical_cores(self) -> int: ...

    @property
    def l1d_bytes(self) -> int: ...

    @property
    def l2_bytes(self) -> int: ...

    @property
    def l3_bytes(self) -> int: ...

    def has_avx2_fma(self) -> bool: ...

    def has_avx512(self) -> bool: ...

    def __str__(self) -> str: ...

class GpuInfo:
    @property
    def index(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def sm_major(self) -> int: ...

    @property
    def sm_minor(self) -> int: ...

    @property
    def multiprocessors(self) -> int: ...

    @property
    def global_memory_bytes(self) -> int: ...

    @property
    def shared_memory_per_block(self) -> int: ...

class HardwareInfo:
    """The CPU and the CUDA devices the library sees."""

    @staticmethod
    def current() -> HardwareInfo:
        """Detected once, then cached (a copy)."""

    @property
    def cpu(self) -> CpuInfo: ...

    @property
    def gpus(self) -> list[GpuInfo]: ...

    def to_string(self) -> str: ...

    def __str__(self) -> str: ...

def merge_states(o1: object, lse1: object, o2: object, lse2: object, out: object, lse_out: object) -> None:
    """
    Merges two partial results over disjoint keys (o [tokens, heads, D], lse float32 [tokens, heads]) into the result over their union (host arrays).
    """

def hardware_report() -> str:
    """
    HardwareInfo.current().to_string(): the CPU flags, cores, caches and CUDA devices.
    """

class BlockLayout:
    """
    A BSR block layout: indptr int32 [L, NBq + 1], indices int32 [L, capacity] (host arrays, kept by reference).
    """

    def __init__(self, block_q: int, block_k: int, indptr: object, indices: object) -> None: ...

    @property
    def block_q(self) -> int: ...

    @block_q.setter
    def block_q(self, arg: int, /) -> None: ...

    @property
    def block_k(self) -> int: ...

    @block_k.setter
    def block_k(self, arg: int, /) -> None: ...

    @property
    def indptr(self) -> object: ...

    @indptr.setter
    def indptr(self, arg: object, /) -> None: ...

    @property
    def indices(self) -> object: ...

    @indices.setter
    def indices(self, arg: object, /) -> None: ...

class AttentionPlan:
    """
    What plan() decided for a problem's shapes; run() takes it with arrays of the same shapes, strides and dtypes.
    """

    @property
    def workspace_bytes(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def variant(self) -> Variant: ...

    @property
    def device(self) -> Device: ...

    def __repr__(self) -> str: ...

class Attention:
    """
    An attention variant chosen by the selector: create once, plan once per problem shape, run many times.
    """

    def __init__(self, config: AttentionConfig, layer_idx: int = 0) -> None:
        """Selector.create(config, layer_idx)."""

    @property
    def variant(self) -> Variant: ...

    @property
    def device(self) -> Device: ...

    def describe(self) -> str: ...

    def __repr__(self) -> str: ...

    def plan(self, q: object, k: object, v: object, out: object, *, lse: object | None = None, weights: object | None = None, scale: float | None = None, softcap: float = 0.0, mask: MaskKind | None = None, window_left: int = -1, window_right: int = -1, cu_seqlens_q: object | None = None, cu_seqlens_k: object | None = None, max_seqlen_q: int = 0, max_seqlen_k: int = 0, additive_mask: object | None = None, key_lengths: object | None = None, q_positions: object | None = None, block_layout: BlockLayout | None = None) -> AttentionPlan:
        """Validates the problem and decides kernel, tiles and workspace."""

    def run(self, plan: AttentionPlan, q: object, k: object, v: object, out: object, *, lse: object | None = None, weights: object | None = None, scale: float | None = None, softcap: float = 0.0, mask: MaskKind | None = None, window_left: int = -1, window_right: int = -1, cu_seqlens_q: object | None = None, cu_seqlens_k: object | None = None, max_seqlen_q: int = 0, max_seqlen_k: int = 0, additive_mask: object | None = None, key_lengths: object | None = None, q_positions: object | None = None, block_layout: BlockLayout | None = None, workspace: object | None = None, stream: int = 0) -> None:
        """
        Runs a plan on arrays of the planned shapes (no validation beyond the plan's signature). stream: the cudaStream_t as an integer (CUDA).
        """

    def forward(self, q: object, k: object, v: object, out: object, *, lse: object | None = None, weights: object | None = None, scale: float | None = None, softcap: float = 0.0, mask: MaskKind | None = None, window_left: int = -1, window_right: int = -1, cu_seqlens_q: object | None = None, cu_seqlens_k: object | None = None, max_seqlen_q: int = 0, max_seqlen_k: int = 0, additive_mask: object | None = None, key_lengths: object | None = None, q_positions: object | None = None, block_layout: BlockLayout | None = None, workspace: object | None = None, stream: int = 0) -> None:
        """plan + run in one call; writes out (and lse / weights when given)."""

    def supports(self, q: object, k: object, v: object, out: object, *, lse: object | None = None, weights: object | None = None, scale: float | None = None, softcap: float = 0.0, mask: MaskKind | None = None, window_left: int = -1, window_right: int = -1, cu_seqlens_q: object | None = None, cu_seqlens_k: object | None = None, max_seqlen_q: int = 0, max_seqlen_k: int = 0, additive_mask: object | None = None, key_lengths: object | None = None, q_positions: object | None = None, block_layout: BlockLayout | None = None) -> bool:
        """Whether plan() accepts the problem (plan() raises with the reason)."""

    def workspace_size(self, q: object, k: object, v: object, out: object, *, lse: object | None = None, weights: object | None = None, scale: float | None = None, softcap: float = 0.0, mask: MaskKind | None = None, window_left: int = -1, window_right: int = -1, cu_seqlens_q: object | None = None, cu_seqlens_k: object | None = None, max_seqlen_q: int = 0, max_seqlen_k: int = 0, additive_mask: object | None = None, key_lengths: object | None = None, q_positions: object | None = None, block_layout: BlockLayout | None = None) -> int:
        """The plan's workspace bytes (0 if refused)."""

class Selector:
    @staticmethod
    def create(config: AttentionConfig, layer_idx: int = 0) -> Attention:
        """
        The variant for the config (Variant.auto: the selector picks and says why in describe()). A variant that is not built raises.
        """

    @staticmethod
    def built() -> list[tuple[Variant, Device]]:
        """The (variant, device) pairs this build has."""

class KvCacheConfig:
    def __init__(self, *, layout: KvLayout = KvLayout.paged, batch: int = 1, kv_heads: int = 1, head_dim: int = 128, dtype: DType = DType.f16, max_len: int = 0, num_blocks: int = 0, block_size: int = 16, max_blocks: int = 0, key_bounds: bool = False) -> None: ...

    @property
    def layout(self) -> KvLayout: ...

    @layout.setter
    def layout(self, arg: KvLayout, /) -> None: ...

    @property
    def batch(self) -> int: ...

    @batch.setter
    def batch(self, arg: int, /) -> None: ...

    @property
    def kv_heads(self) -> int: ...

    @kv_heads.setter
    def kv_heads(self, arg: int, /) -> None: ...

    @property
    def head_dim(self) -> int: ...

    @head_dim.setter
    def head_dim(self, arg: int, /) -> None: ...

    @property
    def dtype(self) -> DType:
        """storage dtype (default f16)"""

    @dtype.setter
    def dtype(self, arg: DType, /) -> None: ...

    @property
    def max_len(self) -> int: ...

    @max_len.setter
    def max_len(self, arg: int, /) -> None: ...

    @property
    def num_blocks(self) -> int: ...

    @num_blocks.setter
    def num_blocks(self, arg: int, /) -> None: ...

    @property
    def block_size(self) -> int: ...

    @block_size.setter
    def block_size(self, arg: int, /) -> None: ...

    @property
    def max_blocks(self) -> int: ...

    @max_blocks.setter
    def max_blocks(self, arg: int, /) -> None: ...

    @property
    def key_bounds(self) -> bool: ...

    @key_bounds.setter
    def key_bounds(self, arg: bool, /) -> None: ...

def kv_storage_shape(config: KvCacheConfig) -> list[int]:
    """The shape of the k and v storage arrays the config needs."""

def kv_key_bounds_shape(config: KvCacheConfig) -> list[int]:
    """
    The shape of the float32 Quest key bounds storage [num_blocks, 2, Hkv, D].
    """

class KvCacheView:
    """What decode reads: a cache's storage and table."""

    @property
    def layout(self) -> KvLayout: ...

    @property
    def batch(self) -> int: ...

    @property
    def kv_heads(self) -> int: ...

    @property
    def head_dim(self) -> int: ...

    @property
    def max_seq_len(self) -> int: ...

    @property
    def capacity(self) -> int: ...

class KvCache:
    """
    A contiguous or paged KV cache over caller-owned storage arrays (kept alive by the cache; written in place).
    """

    def __init__(self, config: KvCacheConfig, k_storage: object, v_storage: object, key_bounds: object | None = None) -> None: ...

    def append(self, k: object, v: object, cu_seqlens: object | None = None, stream: int = 0) -> None:
        """
        Appends k, v [batch, T, Hkv, D] (T tokens a sequence), or [tokens, Hkv, D] with cu_seqlens int32 [batch + 1] on the host.
        """

    def fork(self, src: int, dst: int, stream: int = 0) -> None:
        """
        Makes empty sequence dst a copy of src (paged: shares blocks, copy-on-write).
        """

    def reset(self, seq: int) -> None: ...

    def view(self, stream: int = 0) -> KvCacheView:
        """
        The view decode reads (CUDA: uploads the table's device copy on stream first). Take a fresh view after each append.
        """

    def length(self, seq: int) -> int: ...

    @property
    def lengths(self) -> list[int]: ...

    def position_delta(self, seq: int) -> int: ...

    def set_position_delta(self, seq: int, delta: int) -> None: ...

    @property
    def block_table(self) -> list[int]: ...

    @property
    def capacity(self) -> int: ...

    @property
    def config(self) -> KvCacheConfig: ...

    @property
    def k_storage(self) -> object: ...

    @property
    def v_storage(self) -> object: ...

    def ref_count(self, block: int) -> int: ...

    def describe(self) -> str: ...

class DecodePlan:
    @property
    def workspace_bytes(self) -> int: ...

    @property
    def splits(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def device(self) -> Device: ...

class DecodeAttention:
    """
    Decode over a KV cache: q [batch, 1..8, Hq, D] new rows (causal among them) against the cached tokens.
    """

    @staticmethod
    def cpu(options: CpuOptions | None = None) -> DecodeAttention: ...

    @staticmethod
    def cuda(device: int = -1, tensor_cores: bool = True) -> DecodeAttention:
        """
        CUDA decode (device -1: the current device); NotBuiltError without the CUDA backend.
        """

    @property
    def device(self) -> Device: ...

    def describe(self) -> str: ...

    def plan(self, q: object, out: object, kv: KvCacheView, *, lse: object | None = None, scale: float | None = None, num_splits: int = 0) -> DecodePlan: ...

    def run(self, plan: DecodePlan, q: object, out: object, kv: KvCacheView, *, lse: object | None = None, scale: float | None = None, num_splits: int = 0, workspace: object | None = None, stream: int = 0) -> None: ...

    def forward(self, q: object, out: object, kv: KvCacheView, *, lse: object | None = None, scale: float | None = None, num_splits: int = 0, workspace: object | None = None, stream: int = 0) -> None: ...

    def supports(self, q: object, out: object, kv: KvCacheView, *, lse: object | None = None, scale: float | None = None, num_splits: int = 0) -> bool: ...

    def workspace_size(self, q: object, out: object, kv: KvCacheView, *, lse: object | None = None, scale: float | None = None, num_splits: int = 0) -> int: ...

class QuestAggregation(enum.Enum):
    max = 0

    sum = 1

class QuestDecode:
    """
    Quest page selection over a paged cache with key bounds, then exact decode over the kept pages (the newest rows' pages always kept).
    """

    @staticmethod
    def cpu(token_budget: int = 4096, aggregation: QuestAggregation = QuestAggregation.max, options: CpuOptions | None = None) -> QuestDecode: ...

    @staticmethod
    def cuda(token_budget: int = 4096, aggregation: QuestAggregation = QuestAggregation.max, device: int = -1) -> QuestDecode: ...

    @property
    def device(self) -> Device: ...

    def describe(self) -> str: ...

    def forward(self, q: object, out: object, kv: KvCacheView, key_bounds: object, *, lse: object | None = None, scale: float | None = None, workspace: object | None = None, stream: int = 0) -> None:
        """
        key_bounds: the float32 [num_blocks, 2, Hkv, D] array the cache was created with.
        """

class RopeStyle(enum.Enum):
    neox = 0

    gptj = 1

class RopeArithmetic(enum.Enum):
    fused = 0

    transformers_fp32 = 1

    transformers_storage = 2

class AngleRecipe(enum.Enum):
    exact = 0

    transformers_fp32 = 1

class TableLayout(enum.Enum):
    full = 0

    split = 1

class MRopeLayout(enum.Enum):
    none = 0

    chunked = 1

    interleaved = 2

class RopeScalingType(enum.Enum):
    default = 0

    linear = 1

    ntk = 2

    dynamic = 3

    yarn = 4

    llama3 = 5

class RopeIndexModel(enum.Enum):
    qwen2_vl = 0

    qwen2_5_vl = 1

    qwen3_vl = 2

class RopeScaling:
    def __init__(self) -> None: ...

    @property
    def type(self) -> RopeScalingType: ...

    @type.setter
    def type(self, arg: RopeScalingType, /) -> None: ...

    @property
    def factor(self) -> float: ...

    @factor.setter
    def factor(self, arg: float, /) -> None: ...

    @property
    def original_max_position(self) -> int: ...

    @original_max_position.setter
    def original_max_position(self, arg: int, /) -> None: ...

    @property
    def beta_fast(self) -> float: ...

    @beta_fast.setter
    def beta_fast(self, arg: float, /) -> None: ...

    @property
    def beta_slow(self) -> float: ...

    @beta_slow.setter
    def beta_slow(self, arg: float, /) -> None: ...

    @property
    def mscale(self) -> float: ...

    @mscale.setter
    def mscale(self, arg: float, /) -> None: ...

    @property
    def mscale_all_dim(self) -> float: ...

    @mscale_all_dim.setter
    def mscale_all_dim(self, arg: float, /) -> None: ...

    @property
    def attention_factor(self) -> float: ...

    @attention_factor.setter
    def attention_factor(self, arg: float, /) -> None: ...

    @property
    def truncate(self) -> bool: ...

    @truncate.setter
    def truncate(self, arg: bool, /) -> None: ...

    @property
    def low_freq_factor(self) -> float: ...

    @low_freq_factor.setter
    def low_freq_factor(self, arg: float, /) -> None: ...

    @property
    def high_freq_factor(self) -> float: ...

    @high_freq_factor.setter
    def high_freq_factor(self, arg: float, /) -> None: ...

class RopeConfig:
    def __init__(self, head_dim: int = 128, rotary_dim: int = 0, theta: float = 10000.0, scaling: RopeScaling | None = None) -> None: ...

    @property
    def head_dim(self) -> int: ...

    @head_dim.setter
    def head_dim(self, arg: int, /) -> None: ...

    @property
    def rotary_dim(self) -> int: ...

    @rotary_dim.setter
    def rotary_dim(self, arg: int, /) -> None: ...

    @property
    def theta(self) -> float: ...

    @theta.setter
    def theta(self, arg: float, /) -> None: ...

    @property
    def scaling(self) -> RopeScaling: ...

    @scaling.setter
    def scaling(self, arg: RopeScaling, /) -> None: ...

def compute_frequencies(config: RopeConfig, seq_len: int, inv_freq: object | None = None) -> tuple[NDArray[numpy.float32], float]:
    """
    (inv_freq float32 [rotary / 2], attention_factor) for a sequence length (dynamic NTK).
    """

class RopeTable:
    """cos / sin of every position and frequency slot."""

    @staticmethod
    def text(config: RopeConfig, layout: MRopeLayout = MRopeLayout.interleaved, section: tuple[int, int, int] = (24, 20, 20), max_position: int = 262144, recipe: AngleRecipe = AngleRecipe.exact, table_layout: TableLayout = TableLayout.split, inv_freq: object | None = None) -> RopeTable:
        """
        make_text_table: the text table (M-RoPE sections t, h, w add up to rotary_dim / 2).
        """

    @staticmethod
    def vision(head_dim: int, theta: float = 10000.0, max_side: int = 4096, recipe: AngleRecipe = AngleRecipe.transformers_fp32, table_layout: TableLayout = TableLayout.full, inv_freq: object | None = None) -> RopeTable:
        """make_vision_table: the vision encoder's 2-D table (rows, columns)."""

    @property
    def half(self) -> int: ...

    @property
    def axes(self) -> int: ...

    @property
    def max_position(self) -> int: ...

    @property
    def layout(self) -> TableLayout: ...

    @property
    def recipe(self) -> AngleRecipe: ...

    @property
    def inv_freq(self) -> object: ...

    @property
    def axis(self) -> object: ...

    @property
    def bytes(self) -> int: ...

class DeviceRopeTable:
    """A RopeTable copied to a CUDA device."""

    @staticmethod
    def upload(table: RopeTable, device: int = 0) -> DeviceRopeTable: ...

def rope_cos_sin(table: object, positions: object, cos: object, sin: object) -> None:
    """
    The cos / sin the table gives host positions int32 [T] or [axes, T], into float32 [T, half] arrays.
    """

class RopeApplier:
    """Rotates q and k in place."""

    @staticmethod
    def cpu(options: CpuOptions | None = None) -> RopeApplier: ...

    @staticmethod
    def cuda(device: int = 0) -> RopeApplier: ...

    @property
    def device(self) -> Device: ...

    def describe(self) -> str: ...

    def apply(self, q: object, k: object | None, positions: object, table: object, *, style: RopeStyle = RopeStyle.neox, arithmetic: RopeArithmetic = RopeArithmetic.fused, stream: int = 0) -> None:
        """
        q [B, S, H, D] or [T, H, D] (and k, or None) rotated in place; positions int32 [B, S] / [T] or [axes, B, S] / [axes, T]. CUDA: positions out of the table are reported by take_error().
        """

    def take_error(self, stream: int = 0) -> None: ...

def get_rope_index(token_types: Annotated[NDArray, dict(writable=False)], image_grid_thw: Sequence[tuple[int, int, int]] = [], video_grid_thw: Sequence[tuple[int, int, int]] = [], attention_mask: Annotated[NDArray, dict(writable=False)] | None = None, model: RopeIndexModel = RopeIndexModel.qwen3_vl, second_per_grid_ts: Sequence[float] = [], tokens_per_second: int = 2, spatial_merge_size: int = 2, pad_position: int = 0) -> tuple[NDArray[numpy.int32], NDArray[numpy.int32]]:
    """
    M-RoPE position ids: (positions int32 [3, B, L] (t, h, w), delta int32 [B]). token_types int32 [B, L] or [L]: 0 text, 1 image, 2 video.
    """

def vision_positions(grids: Sequence[tuple[int, int, int]], merge: int = 2) -> NDArray[numpy.int32]:
    """
    The vision encoder's (row, col) of every patch, int32 [2, N], in merge-block order.
    """

def vision_patches(grids: Sequence[tuple[int, int, int]]) -> int: ...

class LayerOptions:
    def __init__(self, *, device: Device = Device.cpu, device_index: int = 0, dtype: DType = DType.f32, variant: Variant = Variant.auto, need_weights: bool = False, cpu: CpuOptions | None = None) -> None: ...

    @property
    def device(self) -> Device: ...

    @device.setter
    def device(self, arg: Device, /) -> None: ...

    @property
    def device_index(self) -> int: ...

    @device_index.setter
    def device_index(self, arg: int, /) -> None: ...

    @property
    def dtype(self) -> DType: ...

    @dtype.setter
    def dtype(self, arg: DType, /) -> None: ...

    @property
    def variant(self) -> Variant: ...

    @variant.setter
    def variant(self, arg: Variant, /) -> None: ...

    @property
    def need_weights(self) -> bool: ...

    @need_weights.setter
    def need_weights(self, arg: bool, /) -> None: ...

    @property
    def cpu(self) -> CpuOptions: ...

    @cpu.setter
    def cpu(self, arg: CpuOptions, /) -> None: ...

class TextAttentionConfig:
    def __init__(self, *, hidden_size: int, num_heads: int, num_kv_heads: int, head_dim: int, rms_norm_eps: float = 1e-06, rope_theta: float = 5000000.0, mrope_section: tuple[int, int, int] = (24, 20, 20), max_position: int = 262144, options: LayerOptions | None = None) -> None: ...

    @property
    def hidden_size(self) -> int: ...

    @hidden_size.setter
    def hidden_size(self, arg: int, /) -> None: ...

    @property
    def num_heads(self) -> int: ...

    @num_heads.setter
    def num_heads(self, arg: int, /) -> None: ...

    @property
    def num_kv_heads(self) -> int: ...

    @num_kv_heads.setter
    def num_kv_heads(self, arg: int, /) -> None: ...

    @property
    def head_dim(self) -> int: ...

    @head_dim.setter
    def head_dim(self, arg: int, /) -> None: ...

    @property
    def rms_norm_eps(self) -> float: ...

    @rms_norm_eps.setter
    def rms_norm_eps(self, arg: float, /) -> None: ...

    @property
    def rope_theta(self) -> float: ...

    @rope_theta.setter
    def rope_theta(self, arg: float, /) -> None: ...

    @property
    def rope_scaling(self) -> RopeScaling: ...

    @rope_scaling.setter
    def rope_scaling(self, arg: RopeScaling, /) -> None: ...

    @property
    def mrope_layout(self) -> MRopeLayout: ...

    @mrope_layout.setter
    def mrope_layout(self, arg: MRopeLayout, /) -> None: ...

    @property
    def mrope_section(self) -> tuple[int, int, int]: ...

    @mrope_section.setter
    def mrope_section(self, arg: tuple[int, int, int], /) -> None: ...

    @property
    def max_position(self) -> int: ...

    @max_position.setter
    def max_position(self, arg: int, /) -> None: ...

    @property
    def rope_recipe(self) -> AngleRecipe: ...

    @rope_recipe.setter
    def rope_recipe(self, arg: AngleRecipe, /) -> None: ...

    @property
    def rope_table(self) -> TableLayout: ...

    @rope_table.setter
    def rope_table(self, arg: TableLayout, /) -> None: ...

    @property
    def rope_arithmetic(self) -> RopeArithmetic: ...

    @rope_arithmetic.setter
    def rope_arithmetic(self, arg: RopeArithmetic, /) -> None: ...

    @property
    def options(self) -> LayerOptions: ...

    @options.setter
    def options(self, arg: LayerOptions, /) -> None: ...

class TextAttention:
    """
    Qwen3-VL's text attention layer (q/k/v projections, QK RMSNorm, M-RoPE, GQA attention with a KV cache, o_proj). Weights are copied at creation.
    """

    def __init__(self, config: TextAttentionConfig, q_proj: object, k_proj: object, v_proj: object, o_proj: object, q_norm: object, k_norm: object, layer_idx: int = 0) -> None: ...

    def describe(self) -> str: ...

    @property
    def config(self) -> TextAttentionConfig: ...

    def forward(self, hidden_states: object, output: object, *, cache: KvCache | None = None, position_ids: object | None = None, attention_mask: object | None = None, attn_weights: object | None = None, workspace: object | None = None, stream: int = 0) -> None:
        """
        hidden_states [B, L, hidden] -> output [B, L, hidden]; the cache gains the L tokens. position_ids int32 [3, B, L] or [B, L] (absent: from the cache's lengths and rope delta); attention_mask int32 [B, L] host (left padding).
        """

    def workspace_size(self, hidden_states: object, output: object, *, cache: KvCache | None = None, position_ids: object | None = None, attention_mask: object | None = None, attn_weights: object | None = None) -> int: ...

    def __call__(self, hidden_states: object, attention_mask: object | None = None, position_ids: object | None = None, cache: KvCache | None = None) -> tuple[object, object]:
        """
        The host convenience: (output, attn_weights or None) as new NumPy arrays.
        """

class VisionAttentionConfig:
    def __init__(self, *, hidden_size: int, num_heads: int, rope_theta: float = 10000.0, max_grid_side: int = 4096, options: LayerOptions | None = None) -> None: ...

    @property
    def hidden_size(self) -> int: ...

    @hidden_size.setter
    def hidden_size(self, arg: int, /) -> None: ...

    @property
    def num_heads(self) -> int: ...

    @num_heads.setter
    def num_heads(self, arg: int, /) -> None: ...

    @property
    def rope_theta(self) -> float: ...

    @rope_theta.setter
    def rope_theta(self, arg: float, /) -> None: ...

    @property
    def max_grid_side(self) -> int: ...

    @max_grid_side.setter
    def max_grid_side(self, arg: int, /) -> None: ...

    @property
    def rope_recipe(self) -> AngleRecipe: ...

    @rope_recipe.setter
    def rope_recipe(self, arg: AngleRecipe, /) -> None: ...

    @property
    def rope_arithmetic(self) -> RopeArithmetic: ...

    @rope_arithmetic.setter
    def rope_arithmetic(self, arg: RopeArithmetic, /) -> None: ...

    @property
    def options(self) -> LayerOptions: ...

    @options.setter
    def options(self, arg: LayerOptions, /) -> None: ...

class VisionAttention:
    """
    Qwen3-VL's vision attention layer: fused qkv with bias, 2-D RoPE, attention within each frame (cu_seqlens), proj with bias.
    """

    def __init__(self, config: VisionAttentionConfig, qkv_weight: object, qkv_bias: object, proj_weight: object, proj_bias: object, layer_idx: int = 0) -> None: ...

    def describe(self) -> str: ...

    @property
    def config(self) -> VisionAttentionConfig: ...

    def forward(self, hidden_states: object, positions: object, cu_seqlens: object, output: object, *, workspace: object | None = None, stream: int = 0) -> None:
        """
        hidden_states [N, hidden], positions int32 [2, N] (rows, then columns), cu_seqlens int32 [frames + 1] on the host -> output [N, hidden].
        """

    def __call__(self, hidden_states: object, positions: object, cu_seqlens: object) -> object:
        """The host convenience: the output as a new NumPy array."""
