// CUDA decode: validation and device checks, the split plan (enough blocks to fill the GPU, never
// splits shorter than kMinSplitKeys), the kernel arguments, and the merge kernel that combines the
// splits' partials with merge_states' arithmetic, all splits of a row at once.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../common/device_context.hpp"
#include "../common/device_util.cuh"
#include "decode_launch.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"

namespace qwen3vl {

namespace detail {

// One block per (sequence, query head, row). merge_states' arithmetic over all splits at once:
// M = max lse_s, w_s = exp(lse_s - M) / sum_t exp(lse_t - M), out = sum_s w_s o_s (empty splits,
// lse = -inf, weigh exactly 0 and are not read), lse = M + log(sum). The weights are computed once
// per row in shared memory, then the threads sweep the head dimension.
constexpr int kMergeThreads = 128;
constexpr int kMergeMaxSplits = 1024;  // validate() caps num_splits at 1024

__global__ void __launch_bounds__(kMergeThreads) merge_splits(const DecodeArgs a) {
  __shared__ float w[kMergeMaxSplits];
  __shared__ float red[kMergeThreads];
  const int64_t row = blockIdx.x;
  const int r = static_cast<int>(row % a.rows);
  const int head = static_cast<int>(row / a.rows % a.heads);
  const int64_t b = row / (static_cast<int64_t>(a.rows) * a.heads);
  const float* po = a.partial_o + row * a.splits * a.head_dim;
  const float* pl = a.partial_lse + row * a.splits;
  float mx = -INFINITY;
  for (int s = threadIdx.x; s < a.splits; s += kMergeThreads) mx = fmaxf(mx, pl[s]);
  red[threadIdx.x] = mx;
  __syncthreads();
  for (int n = kMergeThreads / 2; n > 0; n /= 2) {
    if (threadIdx.x < n) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + n]);
    __syncthreads();
  }
  mx = red[0];
  __syncthreads();
  float sum = 0.0f;
  for (int s = threadIdx.x; s < a.splits; s += kMergeThreads) {
    const float e = mx == -INFINITY || !(pl[s] > -INFINITY) ? 0.0f : expf(pl[s] - mx);
    w[s] = e;
    sum += e;
  }
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int n = kMergeThreads / 2; n > 0; n /= 2) {
    if (threadIdx.x < n) red[threadIdx.x] += red[threadIdx.x + n];
    __syncthreads();
  }
  sum = red[0];
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int e = threadIdx.x; e < a.head_dim; e += kMergeThreads) {
    float acc = 0.0f;
    for (int s = 0; s < a.splits; ++s)
      if (w[s] != 0.0f) acc = fmaf(w[s], po[s * a.head_dim + e], acc);
    store_element(a.out, b * a.out_stride[0] + r * a.out_stride[1] + head * a.out_stride[2] + e,
                  a.q_dtype, acc * inv);
  }
  if (threadIdx.x == 0 && a.lse)
    a.lse[b * a.lse_stride[0] + head * a.lse_stride[1] + r * a.lse_stride[2]] =
        sum > 0.0f ? mx + logf(sum) : -INFINITY;
}

Status launch_merge(const DecodeArgs& a, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(a.batch) * a.heads * a.rows;
  merge_splits<<<static_cast<unsigned>(rows), kMergeThreads, 0, stream>>>(a);
  return cuda_status(cudaGetLastError(), "launch of merge_splits");
}

}  // namespace detail

namespace {

constexpr int64_t kMinSplitKeys = 64;  // two steps of a block: below this fixed costs dominate
constexpr int64_t kMaxAutoSplits = 256;

class DecodeCuda final : public DecodeAttention {
 public:
  explicit DecodeCuda(detail::DeviceContext ctx) : ctx_(std::move(ctx)) {}

  Device device() const override { return Device::kCUDA; }

  Status supports(const DecodeParams& p) const override { return check(p, true); }

  size_t workspace_size(const DecodeParams& p) const override {
    DecodeShape s;
    if (!validate(p, &s).ok()) return 0;
    const int64_t splits = plan_splits(p, s);
    if (splits == 1) return 0;
    return static_cast<size_t>(s.batch * s.heads * s.rows * splits * (s.head_dim + 1)) * sizeof(float);
  }

  int64_t splits(const DecodeParams& p) const override {
    DecodeShape s;
    return validate(p, &s).ok() ? plan_splits(p, s) : 1;
  }

  Status forward(const DecodeParams& p, Workspace ws, void* stream) const override {
    bool query = true;
    QWEN3VL_RETURN_IF_ERROR(detail::pointer_queries_allowed(stream, &query));
    QWEN3VL_RETURN_IF_ERROR(check(p, query));
    QWEN3VL_RETURN_IF_ERROR(detail::check_current_device(ctx_));
    DecodeShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    const size_t need = workspace_size(p);
    if (need > 0 && (ws.data == nullptr || ws.bytes < need))
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                        ws.data ? "" : " (data = null)", ": need ", need,
                        " (workspace_size() for these params)");

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
    const bool paged = p.kv.layout == KvLayout::kPaged;
    a.table = paged ? p.kv.block_table.ptr<const int32_t>() : nullptr;
    a.table_stride[0] = paged ? p.kv.block_table.stride[0] : 0;
    a.table_stride[1] = paged ? p.kv.block_table.stride[1] : 0;
    a.block_size = paged ? p.kv.block_size() : 1;
    a.num_blocks = p.kv.k.shape[0];
    a.capacity = p.kv.capacity();
    a.batch = static_cast<int>(s.batch);
    a.heads = static_cast<int>(s.heads);
    a.kv_heads = static_cast<int>(s.kv_heads);
    a.rows = static_cast<int>(s.rows);
    a.head_dim = static_cast<int>(s.head_dim);
    a.group_rows = static_cast<int>(s.group_size() * s.rows);
    a.row_tiles = (a.group_rows + detail::kDecodeRowTile - 1) / detail::kDecodeRowTile;
    a.splits = static_cast<int>(plan_splits(p, s));
    a.scale_log2 = s.scale * 1.4426950408889634f;
    a.vector_loads = vector_loads(p.kv);
    if (a.splits > 1) {
      a.partial_o = static_cast<float*>(ws.data);
      a.partial_lse = a.partial_o + s.batch * s.heads * s.rows * a.splits * s.head_dim;
    }
    const auto st = static_cast<cudaStream_t>(stream);
    QWEN3VL_RETURN_IF_ERROR(dispatch_float_dtype(p.kv.k.dtype, [&](auto tag) {
      return detail::launch_decode<decltype(tag)>(a, st);
    }));
    if (a.splits > 1) QWEN3VL_RETURN_IF_ERROR(detail::launch_merge(a, st));
    return Status();
  }

  std::string describe() const override {
    return "decode (cuda): GQA-packed 4-row tiles, split-KV blocks + merge, fp32 math; " +
           ctx_.to_string();
  }

 private:
  Status check(const DecodeParams& p, bool query_pointers) const {
    DecodeShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    const TensorView* tensors[] = {&p.q, &p.out, &p.lse, &p.kv.k, &p.kv.v, &p.kv.seq_lens,
                                   &p.kv.block_table};
    const char* names[] = {"q", "out", "lse", "kv.k", "kv.v", "kv.seq_lens", "kv.block_table"};
    for (int i = 0; i < 7; ++i)
      QWEN3VL_RETURN_IF_ERROR(detail::check_device_tensor(ctx_, *tensors[i], names[i], query_pointers));
    const int64_t row_tiles = (s.group_size() * s.rows + detail::kDecodeRowTile - 1) / detail::kDecodeRowTile;
    if (p.kv.capacity() > INT32_MAX)
      return make_error(StatusCode::kUnsupported, "kv capacity = ", p.kv.capacity(),
                        " tokens per sequence: CUDA decode indexes keys in 32 bits (at most ",
                        INT32_MAX, ")");
    if (s.batch > ctx_.max_grid_z || s.kv_heads * row_tiles > ctx_.max_grid_y)
      return make_error(StatusCode::kUnsupported, "batch = ", s.batch, ", Hkv * row tiles = ",
                        s.kv_heads * row_tiles, ": the grid allows at most ", ctx_.max_grid_z,
                        " and ", ctx_.max_grid_y);
    return Status();
  }

  int64_t plan_splits(const DecodeParams& p, const DecodeShape& s) const {
    if (p.num_splits > 0) return p.num_splits;
    const int64_t row_tiles = (s.group_size() * s.rows + detail::kDecodeRowTile - 1) / detail::kDecodeRowTile;
    const int64_t blocks = s.batch * s.kv_heads * row_tiles;
    const int64_t want = (4 * static_cast<int64_t>(ctx_.multiprocessors) + blocks - 1) / blocks;
    const int64_t most = std::max<int64_t>(1, s.max_len / kMinSplitKeys);
    return std::clamp<int64_t>(std::min(want, most), 1, kMaxAutoSplits);
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

  detail::DeviceContext ctx_;
};

}  // namespace

Status create_decode_cuda(const CudaOptions& options, std::unique_ptr<DecodeAttention>* out) {
  detail::DeviceContext ctx;
  QWEN3VL_RETURN_IF_ERROR(detail::DeviceContext::create(options, &ctx));
  *out = std::make_unique<DecodeCuda>(std::move(ctx));
  return Status();
}

}  // namespace qwen3vl
