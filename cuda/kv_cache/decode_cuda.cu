// CUDA decode (DecodeAttention's plan / run): device checks, the split plan (enough blocks to fill
// the GPU, never splits shorter than kMinSplitKeys), the kernel arguments, and the merge kernel
// that combines the splits' partials with merge_states' arithmetic, all splits of a row at once.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "cuda/common/device_context.hpp"
#include "cuda/common/device_util.cuh"
#include "decode_launch.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"

namespace qwen3vl {

namespace detail {

// merge_states' arithmetic over the splits' partials of a row: M = max lse_s, w_s = exp(lse_s - M),
// out = sum_s w_s o_s / sum_s w_s, lse = M + log(sum_s w_s); an empty split (lse = -inf) weighs
// exactly 0. One block per (sequence, query head, row) and 32 head-dim elements. Warp w sums
// splits w, w + 8, ... of its 32 elements; every load of the first kAhead of them (partial and
// LSE) goes out before the LSE reductions, so the kernel waits on L2 once, not three times. Every
// warp finds M and the sum of weights itself (lanes over the LSEs, shuffles: no barrier); warp 0
// adds the 8 sums: one barrier.
constexpr int kMergeThreads = 256;
constexpr int kMergeWarps = kMergeThreads / 32;
constexpr int kAhead = 4;  // splits a warp loads up front: 32 splits in all

// The merge kernel's arguments: two constant-cache lines, not DecodeArgs' six (cold under a graph
// replay that streams the caches, see DecodeArgs).
struct MergeArgs {
  const float* partial_o;    // [rows, splits, D]
  const float* partial_lse;  // [rows, splits]
  int splits, head_dim, rows, heads;
  void* out;
  DType q_dtype;
  int64_t out_stride[3];
  float* lse;
  int64_t lse_stride[3];
};

__global__ void __launch_bounds__(kMergeThreads) merge_splits(const MergeArgs a) {
  __shared__ float part[kMergeWarps][32];
  const int64_t row = blockIdx.x;
  const float* po = a.partial_o + row * a.splits * a.head_dim;
  const float* pl = a.partial_lse + row * a.splits;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int e = blockIdx.y * 32 + lane;
  const bool in_row = e < a.head_dim;

  float o_ahead[kAhead], l_ahead[kAhead];
#pragma unroll
  for (int j = 0; j < kAhead; ++j) {
    const int s = warp + j * kMergeWarps;
    const bool live = s < a.splits;
    o_ahead[j] = live && in_row ? po[static_cast<int64_t>(s) * a.head_dim + e]
                                : 0.0f;  // empty splits hold 0
    l_ahead[j] = live ? pl[s] : -INFINITY;
  }
  float mx = -INFINITY;
  for (int s = lane; s < a.splits; s += 32) mx = fmaxf(mx, pl[s]);
  for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  // 0 for every split of an empty row; a NaN split (its rows saw a NaN) weighs NaN, so the row is
  // NaN.
  auto weight = [mx](float ls) { return ls > -INFINITY || ls != ls ? expf(ls - mx) : 0.0f; };
  float sum = 0.0f;
  for (int s = lane; s < a.splits; s += 32) sum += weight(pl[s]);
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);

  float acc = 0.0f;
#pragma unroll
  for (int j = 0; j < kAhead; ++j) acc = fmaf(weight(l_ahead[j]), o_ahead[j], acc);
  if (in_row)
#pragma unroll 4
    for (int s = warp + kAhead * kMergeWarps; s < a.splits; s += kMergeWarps)
      acc = fmaf(weight(pl[s]), po[static_cast<int64_t>(s) * a.head_dim + e], acc);
  part[warp][lane] = acc;
  __syncthreads();
  if (warp == 0) {
    for (int w = 1; w < kMergeWarps; ++w) acc += part[w][lane];
    const int r = static_cast<int>(row % a.rows);
    const int head = static_cast<int>(row / a.rows % a.heads);
    const int64_t b = row / (static_cast<int64_t>(a.rows) * a.heads);
    if (in_row)
      store_element(a.out, b * a.out_stride[0] + r * a.out_stride[1] + head * a.out_stride[2] + e,
                    a.q_dtype, sum == 0.0f ? 0.0f : acc / sum);
    if (e == 0 && a.lse)
      a.lse[b * a.lse_stride[0] + head * a.lse_stride[1] + r * a.lse_stride[2]] =
          sum == 0.0f ? -INFINITY : mx + logf(sum);
  }
}

Status launch_merge(const DecodeArgs& a, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(a.batch) * a.heads * a.rows;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>((a.head_dim + 31) / 32));
  MergeArgs m{a.partial_o, a.partial_lse, a.splits, a.head_dim, a.rows, a.heads,
              a.out,       a.q_dtype,     {},       a.lse,      {}};
  for (int i = 0; i < 3; ++i) {
    m.out_stride[i] = a.out_stride[i];
    m.lse_stride[i] = a.lse_stride[i];
  }
  merge_splits<<<grid, kMergeThreads, 0, stream>>>(m);
  return cuda_status(cudaGetLastError(), "launch of merge_splits");
}

}  // namespace detail

namespace {

constexpr int64_t kMinSplitKeys =
    32;  // below this the partials (D + 1 floats a row) cost more than the keys
constexpr int64_t kMaxAutoSplits = 1024;  // validate() caps num_splits here too

// How the blocks of one decode call are laid out: KV heads per block (a power of two <= Hkv that
// divides the block's warps; the other warps are slots of the same heads), head chunks, tiles of
// packed query rows.
struct Layout {
  int64_t heads_per_block = 1, head_chunks = 1, row_tiles = 1;
  int64_t blocks_per_split(const DecodeShape& s) const { return s.batch * head_chunks * row_tiles; }
};

// As many heads per block as possible (a block then reads whole rows of consecutive tokens), but
// fewer where splits of at least kMinSplitKeys could not fill a wave of `wave` blocks: more warps
// per head then share each split, instead of more splits with more partials to merge (KV 4096
// at Hkv 8 on 132 SMs: 4 warps per head and 66 splits, not 1 and 128).
Layout layout_of(const DecodeShape& s, int64_t wave, int64_t row_tile = detail::kDecodeRowTile,
                 int64_t min_split_keys = kMinSplitKeys, int64_t warps = detail::kDecodeWarps,
                 int64_t max_heads = detail::kDecodeWarps) {
  Layout l;
  l.row_tiles = (s.group_size() * s.rows + row_tile - 1) / row_tile;
  while (l.heads_per_block * 2 <= std::min({warps, max_heads, s.kv_heads})) l.heads_per_block *= 2;
  const int64_t most_splits = std::max<int64_t>(1, s.max_len / min_split_keys);
  for (;; l.heads_per_block /= 2) {
    l.head_chunks = (s.kv_heads + l.heads_per_block - 1) / l.heads_per_block;
    if (l.heads_per_block == 1 || most_splits * l.blocks_per_split(s) >= wave) return l;
  }
}

// The tensor-core kernel's block shape and its plan: tiles of 16 rows, `warps` warps a block, at
// most `max_heads` KV heads a block, splits of at least 4 16-key tiles, a wave of as many blocks
// as fit on the SMs (shared memory: 8 warps a SM). One KV head a block by default (its warps take
// turns over a split's tiles: fewer, longer splits), which measured faster than 8 heads a block
// at every cache length.
struct MmaShape {
  int warps = detail::kMmaWarps, max_heads = 1;
};
constexpr int64_t kMmaMinSplitKeys = 4 * detail::kMmaTileKeys;
Layout mma_layout_of(const DecodeShape& s, int64_t wave, const MmaShape& m) {
  return layout_of(s, wave, detail::kMmaRowTile, kMmaMinSplitKeys, m.warps, m.max_heads);
}

// The block shape CudaDecodeOptions asks for (create_decode_cuda checked it).
MmaShape mma_shape_of(const CudaDecodeOptions& o) {
  MmaShape m;
  m.warps = o.mma_warps;
  m.max_heads = o.mma_kv_heads;
  return m;
}

class DecodeCuda final : public DecodeAttention {
 public:
  // The tensor-core kernel (decode_mma.cuh) serves what it can on sm_80+: it is faster than the
  // CUDA-core kernel at every cache length (docs/perf-log/decode.md). options.tensor_cores = false
  // turns it off; so does a binary whose tensor-core kernel is a compute_61 trap.
  DecodeCuda(detail::DeviceContext ctx, const CudaDecodeOptions& options) : ctx_(std::move(ctx)) {
    mma_allowed_ = options.tensor_cores && ctx_.cc_major >= 8 &&
                   detail::decode_mma_compiled<qwen3vl::half>() &&
                   detail::decode_mma_compiled<qwen3vl::bfloat16>();
    mma_ = mma_shape_of(options);
  }

  Device device() const override { return Device::kCUDA; }

  std::string describe() const override {
    return std::string("decode (cuda): ") +
           (mma_allowed_
                ? "tensor cores (mma.sync, 16-row x 16-key tiles; blocks of " +
                      std::to_string(mma_.warps) + " warps, <= " + std::to_string(mma_.max_heads) +
                      " KV heads) for f16/bf16 q and cache with D % 16 == 0 <= 128, else "
                : std::string()) +
           "GQA-packed 4-row tiles, a warp per KV head, split-KV blocks + merge, fp32 math; " +
           ctx_.to_string();
  }

 protected:
  uint64_t facts() const override {
    // The device, its SM count (the wave the splits fill) and the kernel knobs.
    return (static_cast<uint64_t>(ctx_.device) << 48 |
            static_cast<uint64_t>(ctx_.multiprocessors) << 16 |
            static_cast<uint64_t>(mma_.warps) << 8 | static_cast<uint64_t>(mma_.max_heads) << 1 |
            (mma_allowed_ ? 1u : 0u)) +
           1;
  }

  // From shapes: device tags (pointers are queried by launch), the 32-bit key index, the grid,
  // the kernel (tensor cores unless the data rules them out: launch decides from the pointers)
  // and the split count.
  Status make_plan(const DecodeParams& p, DecodePlan* plan) const override {
    const DecodeShape& s = plan->shape;
    const TensorView* tensors[] = {&p.q,    &p.out,         &p.lse,           &p.kv.k,
                                   &p.kv.v, &p.kv.seq_lens, &p.kv.block_table};
    const char* names[] = {"q", "out", "lse", "kv.k", "kv.v", "kv.seq_lens", "kv.block_table"};
    for (int i = 0; i < 7; ++i)
      QWEN3VL_RETURN_IF_ERROR(detail::check_device_tensor(ctx_, *tensors[i], names[i], false));
    if (p.kv.capacity() > INT32_MAX)
      return make_error(StatusCode::kUnsupported, "kv capacity = ", p.kv.capacity(),
                        " tokens per sequence: CUDA decode indexes keys in 32 bits (at most ",
                        INT32_MAX, ")");
    const bool mma = use_mma(p, s);
    // The tensor-core plan may fall back to the CUDA-core kernel at launch: both grids must fit.
    for (int kernel = mma ? 1 : 0; kernel >= 0; --kernel) {
      const Layout layout = kernel == 1 ? mma_layout_of(s, mma_wave(), mma_) : layout_of(s, wave());
      const int64_t grid_y = layout.head_chunks * layout.row_tiles;
      if (s.batch > ctx_.max_grid_z || grid_y > ctx_.max_grid_y)
        return make_error(StatusCode::kUnsupported, "batch = ", s.batch,
                          ", head chunks * row tiles = ", grid_y, ": the grid allows at most ",
                          ctx_.max_grid_z, " and ", ctx_.max_grid_y);
    }
    plan->kernel = mma ? 1 : 0;
    plan->splits = plan_splits(p, s, mma);
    plan->workspace_bytes =
        plan->splits == 1
            ? 0
            : static_cast<size_t>(s.batch * s.heads * s.rows * plan->splits * (s.head_dim + 1)) *
                  sizeof(float);
    plan->reason = detail::concat("cuda decode: ", mma ? "tensor-core" : "CUDA-core", " kernel, ",
                                  plan->splits, plan->splits == 1 ? " split" : " key splits",
                                  " (keys <= ", s.max_len, ", ", ctx_.multiprocessors, " SMs)");
    return Status();
  }

  // Pointer checks (where the data lives, unless the stream is being captured), the current
  // device, the kernel arguments. A plan for tensor cores falls back to the CUDA-core kernel with
  // the same splits (and workspace) when the data is not aligned for it.
  Status launch(const DecodePlan& plan, const DecodeParams& p, Workspace ws,
                void* stream) const override {
    bool query = true;
    QWEN3VL_RETURN_IF_ERROR(detail::pointer_queries_allowed(stream, &query));
    if (query) {
      const TensorView* tensors[] = {&p.q,    &p.out,         &p.lse,           &p.kv.k,
                                     &p.kv.v, &p.kv.seq_lens, &p.kv.block_table};
      const char* names[] = {"q", "out", "lse", "kv.k", "kv.v", "kv.seq_lens", "kv.block_table"};
      for (int i = 0; i < 7; ++i)
        QWEN3VL_RETURN_IF_ERROR(detail::check_device_tensor(ctx_, *tensors[i], names[i], true));
    }
    QWEN3VL_RETURN_IF_ERROR(detail::check_current_device(ctx_));
    const DecodeShape& s = plan.shape;

    detail::DecodeArgs a{};
    a.q = p.q.data;
    a.q_dtype = p.q.dtype;
    a.out = p.out.data;
    a.lse = p.lse.present() ? p.lse.ptr<float>() : nullptr;
    for (int i = 0; i < 3; ++i) {
      a.q_stride[i] = p.q.stride[i];
      a.out_stride[i] = p.out.stride[i];
      a.lse_stride[i] = p.lse.present() ? p.lse.stride[i] : 0;
      a.k_stride[i] = p.kv.k.stride[i];
      a.v_stride[i] = p.kv.v.stride[i];
    }
    a.k = p.kv.k.data;
    a.v = p.kv.v.data;
    a.seq_lens = p.kv.seq_lens.ptr<const int32_t>();
    a.lens_stride = p.kv.seq_lens.stride[0];
    a.lens_stride_head = p.kv.lens_head_stride();
    const bool paged = p.kv.layout == KvLayout::kPaged;
    a.table = paged ? p.kv.block_table.ptr<const int32_t>() : nullptr;
    a.table_stride[0] = paged ? p.kv.table_stride() : 0;
    a.table_stride[1] = paged ? p.kv.table_col_stride() : 0;
    a.table_stride_head = paged ? p.kv.table_head_stride() : 0;
    a.block_size = paged ? p.kv.block_size() : 1;
    a.block_shift = -1;
    for (int shift = 0; shift < 31; ++shift)
      if (int64_t{1} << shift == a.block_size) a.block_shift = shift;
    a.num_blocks = p.kv.k.shape[0];
    a.capacity = p.kv.capacity();
    a.batch = static_cast<int>(s.batch);
    a.heads = static_cast<int>(s.heads);
    a.kv_heads = static_cast<int>(s.kv_heads);
    a.rows = static_cast<int>(s.rows);
    a.head_dim = static_cast<int>(s.head_dim);
    a.group_rows = static_cast<int>(s.group_size() * s.rows);
    const bool mma = plan.kernel == 1 && use_mma(p, s);
    const Layout layout = mma ? mma_layout_of(s, mma_wave(), mma_) : layout_of(s, wave());
    a.mma_warps = mma_.warps;
    a.row_tiles = static_cast<int>(layout.row_tiles);
    a.heads_per_block = static_cast<int>(layout.heads_per_block);
    a.head_chunks = static_cast<int>(layout.head_chunks);
    a.splits = static_cast<int>(plan.splits);
    a.scale_log2 = s.scale * 1.4426950408889634f;
    a.vector_loads = vector_loads(p.kv);
    a.q_vector = q_vector_loads(p.q);
    if (a.splits > 1) {
      a.partial_o = static_cast<float*>(ws.data);
      a.partial_lse = a.partial_o + s.batch * s.heads * s.rows * a.splits * s.head_dim;
    }
    const auto st = static_cast<cudaStream_t>(stream);
    QWEN3VL_RETURN_IF_ERROR(dispatch_float_dtype(p.kv.k.dtype, [&](auto tag) {
      using T = decltype(tag);
      if constexpr (!std::is_same_v<T, float>)
        if (mma) return detail::launch_decode_mma<T>(a, st);
      return detail::launch_decode<T>(a, st);
    }));
    if (a.splits > 1) QWEN3VL_RETURN_IF_ERROR(detail::launch_merge(a, st));
    return Status();
  }

 private:
  // Forced, or as many splits as fill one wave of resident blocks (4 per SM: the kernels' launch
  // bounds) without splits shorter than kMinSplitKeys.
  int64_t plan_splits(const DecodeParams& p, const DecodeShape& s, bool mma) const {
    if (p.num_splits > 0) return p.num_splits;
    if (mma) {  // one wave of blocks
      const int64_t want =
          std::max<int64_t>(1, mma_wave() / mma_layout_of(s, mma_wave(), mma_).blocks_per_split(s));
      const int64_t most = std::max<int64_t>(1, s.max_len / kMmaMinSplitKeys);
      return std::clamp<int64_t>(std::min(want, most), 1, kMaxAutoSplits);
    }
    const int64_t want = std::max<int64_t>(1, wave() / layout_of(s, wave()).blocks_per_split(s));
    const int64_t most = std::max<int64_t>(1, s.max_len / kMinSplitKeys);
    return std::clamp<int64_t>(std::min(want, most), 1, kMaxAutoSplits);
  }

  int64_t wave() const { return 4 * ctx_.multiprocessors; }
  int64_t mma_wave() const { return ctx_.multiprocessors * detail::mma_blocks_per_sm(mma_.warps); }

  // The tensor-core kernel: sm_80+, 2-byte caches and queries of the same type (an f32 query asks
  // for f32 accuracy, which P rounded to 2 bytes would not keep), whole 16-column MMA steps,
  // aligned rows.
  bool use_mma(const DecodeParams& p, const DecodeShape& s) const {
    return mma_allowed_ && p.kv.k.dtype != DType::kF32 && p.q.dtype == p.kv.k.dtype &&
           s.head_dim % 16 == 0 && s.head_dim <= detail::kMmaMaxHeadDim && vector_loads(p.kv);
  }

  // 16-byte vector loads need aligned rows: base, strides and head dim multiples of the vector.
  static bool vector_loads(const KvCacheView& kv) {
    const int64_t elems = 16 / size_of(kv.k.dtype);
    for (const TensorView* t : {&kv.k, &kv.v}) {
      if (reinterpret_cast<uintptr_t>(t->data) % 16 != 0) return false;
      for (int i = 0; i < 3; ++i)
        if (t->stride[i] % elems != 0) return false;
    }
    return kv.head_dim() % elems == 0;
  }

  // The query prologue's vector loads: a 16-byte aligned base and [b, r, h] strides (the head
  // dimension is contiguous), so every lane's run of elements starts on its vector's boundary.
  static bool q_vector_loads(const TensorView& q) {
    const int64_t elems = 16 / size_of(q.dtype);
    if (reinterpret_cast<uintptr_t>(q.data) % 16 != 0) return false;
    for (int i = 0; i < 3; ++i)
      if (q.stride[i] % elems != 0) return false;
    return true;
  }

  detail::DeviceContext ctx_;
  bool mma_allowed_ = false;  // sm_80+, this binary compiled the kernel for it, not switched off
  MmaShape mma_;
};

}  // namespace

Status create_decode_cuda(const CudaOptions& options, std::unique_ptr<DecodeAttention>* out) {
  const CudaDecodeOptions& d = options.decode;
  if (d.mma_warps != detail::kMmaWarps && d.mma_warps != detail::kMmaWarps / 2)
    return make_error(StatusCode::kInvalidArgument, "decode.mma_warps = ", d.mma_warps,
                      ": allowed ", detail::kMmaWarps, " or ", detail::kMmaWarps / 2);
  if (d.mma_kv_heads < 1 || d.mma_kv_heads > d.mma_warps)
    return make_error(StatusCode::kInvalidArgument, "decode.mma_kv_heads = ", d.mma_kv_heads,
                      ": allowed 1..", d.mma_warps, " (decode.mma_warps)");
  detail::DeviceContext ctx;
  QWEN3VL_RETURN_IF_ERROR(detail::DeviceContext::create(options, &ctx));
  *out = std::make_unique<DecodeCuda>(std::move(ctx), d);
  return Status();
}

}  // namespace qwen3vl
