// Dynamic sparse prefill on CUDA: block top-k or vertical-slash routing (the CPU routers'
// definitions, see src/dynamic_sparse/block_topk.cpp and vertical_slash.cpp) written as a device
// layout, then the CUDA block-sparse object. No host sync and no allocation. Block top-k:
//   pool_kernel     one block per (sequence, KV head, block index): the mean of each query block's
//                   rows (every head of the group) and of each key block's valid keys;
//   route_kernel    one block per (sequence, KV head, query block): the key hull its rows see,
//                   per-head softmax of the pooled scores summed over the group, sink and local
//                   blocks forced, the top blocks by rank, written in increasing order to a slot;
// Vertical-slash: the launches of vertical_slash_cuda.cu (last rows' softmax sums, selection,
// block marking) fill the same slots and counts. Then, for both:
//   compact_kernel  one block per layout: counts -> indptr, slots -> indices (BSR).
// Exact top-k is exact_topk_cuda.cu (token granular, no layout).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "cuda/common/device_context.hpp"
#include "cuda/common/device_util.cuh"
#include "exact_topk_cuda.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "src/core/as_attention.hpp"
#include "src/core/workspace_carver.hpp"
#include "vertical_slash_cuda.cuh"

namespace qwen3vl {
namespace {

using detail::AttentionArgs;
using detail::DeviceSpan;
using detail::rows_key_hull;

constexpr int kThreads = 256;
constexpr size_t kAlign = 256;

struct RouteArgs {
  AttentionArgs a;  // q, k, sequences, masks (make_attention_args)
  int64_t kv_heads = 0, nbq = 0, nbk = 0, row_cap = 0, capacity = 0;
  int32_t block_q = 0, block_k = 0, top_k = 0, sink = 0, local = 0;
  double fraction = 0.0;
  float* q_pool = nullptr;     // [B, Hkv, NBq, G, D]
  float* k_pool = nullptr;     // [B, Hkv, NBk, D]
  int32_t* slots = nullptr;    // [B Hkv, NBq, row_cap]
  int32_t* counts = nullptr;   // [B Hkv, NBq]
  int32_t* indptr = nullptr;   // [B Hkv, NBq + 1]
  int32_t* indices = nullptr;  // [B Hkv, capacity]
};

__device__ float mean_row(const detail::RowTensor& t, DType dtype, int64_t b, int64_t start,
                          int64_t i0, int64_t n, int64_t head, int64_t c) {
  float sum = 0.0f;
  for (int64_t r = 0; r < n; ++r)
    sum += detail::load_element(t.data, detail::row_offset(t, b, start + i0 + r, head) + c, dtype);
  return n > 0 ? sum / static_cast<float>(n) : 0.0f;
}

__global__ void pool_kernel(RouteArgs r) {
  const AttentionArgs& a = r.a;
  const int64_t x = blockIdx.x, l = blockIdx.y, b = l / r.kv_heads, kv = l % r.kv_heads;
  const DeviceSpan span = detail::sequence_span(a, b);
  const int64_t d = a.head_dim, g_size = a.group;
  // Fixed-length rows are addressed by (b, token); varlen rows by their packed token (b = 0).
  const int64_t bq = a.cu_q ? 0 : b;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    if (x < r.nbq) {
      const int64_t i0 = min(x * r.block_q, span.q_len);
      const int64_t n = min(static_cast<int64_t>(r.block_q), span.q_len - i0);
      for (int64_t g = 0; g < g_size; ++g)
        r.q_pool[((l * r.nbq + x) * g_size + g) * d + c] =
            mean_row(a.q, a.dtype, bq, span.q_start, i0, n, kv * g_size + g, c);
    }
    if (x < r.nbk) {
      const int64_t j0 = min(x * r.block_k, span.k_len);
      const int64_t n = min(static_cast<int64_t>(r.block_k), span.k_len - j0);
      r.k_pool[(l * r.nbk + x) * d + c] = mean_row(a.k, a.dtype, bq, span.k_start, j0, n, kv, c);
    }
  }
}

// Block-wide max or sum of one value per thread (kThreads threads).
template <bool kMax>
__device__ float block_reduce(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, w) : v + w;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
  __syncthreads();
  float all = shared[0];
  for (int w = 1; w < kThreads / 32; ++w) all = kMax ? fmaxf(all, shared[w]) : all + shared[w];
  return all;
}

__global__ void route_kernel(RouteArgs r) {
  extern __shared__ float smem[];  // total[nbk], head[nbk]
  __shared__ float reduce[kThreads / 32];
  __shared__ int hull_begin, hull_end, forced;
  const AttentionArgs& a = r.a;
  const int64_t row = blockIdx.x, l = blockIdx.y, b = l / r.kv_heads;
  const DeviceSpan span = detail::sequence_span(a, b);
  const int64_t r0 = row * r.block_q, r1 = min(r0 + r.block_q, span.q_len);
  if (threadIdx.x == 0) forced = 0;
  rows_key_hull(a, span, r0, r1, &hull_begin, &hull_end);
  int32_t* count = r.counts + l * r.nbq + row;
  if (hull_end <= hull_begin) {
    if (threadIdx.x == 0) *count = 0;
    return;
  }
  const int64_t c0 = hull_begin / r.block_k, c1 = (hull_end - 1) / r.block_k + 1, n = c1 - c0;
  float* total = smem;
  float* head = smem + r.nbk;
  const float inf = __int_as_float(0x7f800000);
  const int64_t d = a.head_dim;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) total[c] = 0.0f;
  for (int64_t g = 0; g < a.group; ++g) {
    const float* qp = r.q_pool + ((l * r.nbq + row) * a.group + g) * d;
    float local_max = -inf;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
      const float* kp = r.k_pool + (l * r.nbk + c0 + c) * d;
      float dot = 0.0f;
      for (int64_t e = 0; e < d; ++e) dot += qp[e] * kp[e];
      head[c] = dot * a.scale;
      local_max = fmaxf(local_max, head[c]);
    }
    const float mx = block_reduce<true>(local_max, reduce);
    float local_sum = 0.0f;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x)
      local_sum += head[c] = __expf(head[c] - mx);
    const float sum = block_reduce<false>(local_sum, reduce);
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) total[c] += head[c] / sum;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // the forced blocks: sinks and the local blocks ending at the diagonal
    for (int64_t c = 0; c < n; ++c)
      if (isnan(total[c])) total[c] = -inf;
    int f = 0;
    for (int64_t c = c0; c < min(c1, static_cast<int64_t>(r.sink)); ++c, ++f) total[c - c0] = inf;
    const int64_t position =
        a.mask_kind == MaskKind::kCausalTopLeft ? r1 - 1 : r1 - 1 + span.k_len - span.q_len;
    const int64_t last = detail::clamp64(position, hull_begin, hull_end - 1);
    const int64_t diag = last / r.block_k;
    for (int64_t c = max(c0, diag - r.local + 1); c <= diag; ++c)
      if (total[c - c0] != inf) total[c - c0] = inf, ++f;
    forced = f;
  }
  __syncthreads();
  const int64_t budget =
      r.fraction > 0.0 ? static_cast<int64_t>(ceil(r.fraction * static_cast<double>(n))) : r.top_k;
  const int64_t keep = min(n, forced + budget);
  // Rank by (score descending, index ascending); kept iff rank < keep. head[] holds the flags.
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    int64_t rank = 0;
    const float x = total[c];
    for (int64_t o = 0; o < n; ++o) rank += total[o] > x || (total[o] == x && o < c);
    head[c] = rank < keep ? 1.0f : 0.0f;
  }
  __syncthreads();
  if (threadIdx.x < 32) {  // warp 0 writes the kept blocks in increasing order
    const unsigned lane = threadIdx.x;
    int32_t* out = r.slots + (l * r.nbq + row) * r.row_cap;
    int base = 0;
    for (int64_t c = 0; c < n; c += 32) {
      const bool kept = c + lane < n && head[c + lane] != 0.0f;
      const unsigned ballot = __ballot_sync(0xffffffffu, kept);
      if (kept)
        out[base + __popc(ballot & ((1u << lane) - 1u))] = static_cast<int32_t>(c0 + c + lane);
      base += __popc(ballot);
    }
    if (lane == 0) *count = base;
  }
}

__global__ void compact_kernel(RouteArgs r) {
  const int64_t l = blockIdx.x;
  int32_t* ptr = r.indptr + l * (r.nbq + 1);
  const int32_t* counts = r.counts + l * r.nbq;
  if (threadIdx.x == 0) {
    ptr[0] = 0;
    for (int64_t row = 0; row < r.nbq; ++row) ptr[row + 1] = ptr[row] + counts[row];
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t row = warp; row < r.nbq; row += blockDim.x / 32)
    for (int e = lane; e < counts[row]; e += 32)
      r.indices[l * r.capacity + ptr[row] + e] = r.slots[(l * r.nbq + row) * r.row_cap + e];
}

// The routing's geometry: query and key blocks, listed blocks per row, layouts.
struct Geometry {
  int64_t nbq = 0, nbk = 0, row_cap = 0, layouts = 0;
};

// The workspace (null pointers while sizing): the layout first (the block-sparse kernel's
// workspace follows it, over the router's finished scratch), then the router's scratch.
struct Buffers {
  int32_t* indptr = nullptr;
  int32_t* indices = nullptr;
  size_t layout_end = 0;  // bytes from the aligned base to the end of the layout
  int32_t* slots = nullptr;
  int32_t* counts = nullptr;
  float* q_pool = nullptr;  // block top-k
  float* k_pool = nullptr;
  detail::VerticalSlashScratch vs;  // vertical-slash
  size_t scratch_end = 0;           // bytes from the aligned base to the end of the scratch
};

class DynamicSparseCuda final : public DynamicSparseAttention {
 public:
  DynamicSparseCuda(const detail::DeviceContext& ctx, std::unique_ptr<Attention> blocks,
                    const DynamicSparseConfig& config)
      : ctx_(ctx), block_sparse_(std::move(blocks)), config_(config) {}

  Variant variant() const override { return Variant::kDynamicSparse; }
  Device device() const override { return Device::kCUDA; }
  const DynamicSparseConfig& config() const override { return config_; }
  double last_density() const override { return -1.0; }  // would need a host sync

  size_t estimate_workspace_size(const AttentionParams& p) const override {
    AttentionShape s;
    if (!validate(p, &s).ok()) return 0;
    return buffers(nullptr, s).scratch_end + kAlign;
  }

  Status estimate(const AttentionParams& p, Workspace ws, BlockLayout* layout) const override {
    if (layout == nullptr) return make_error(StatusCode::kNullPointer, "layout = null");
    bool query_pointers = true;
    QWEN3VL_RETURN_IF_ERROR(detail::pointer_queries_allowed(nullptr, &query_pointers));
    AttentionShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    return route(p, s, ws, nullptr, layout, query_pointers);
  }

  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    // A plan is made from shapes: where the data lives is checked by launch(), per call.
    QWEN3VL_RETURN_IF_ERROR(check(p, /*query_pointers=*/false));
    const Buffers pl = buffers(nullptr, plan->shape);
    plan->workspace_bytes =
        std::max(pl.scratch_end, pl.layout_end + block_sparse_->workspace_size(p)) + kAlign;
    if (plan->with_reason) plan->reason = description();
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream) const override {
    bool query_pointers = true;
    QWEN3VL_RETURN_IF_ERROR(detail::pointer_queries_allowed(stream, &query_pointers));
    AttentionParams routed = p;
    QWEN3VL_RETURN_IF_ERROR(route(p, plan.shape, ws, stream, &routed.block_layout, query_pointers));
    const Buffers pl = buffers(nullptr, plan.shape);
    char* base = detail::align_pointer(ws.data, kAlign);
    const size_t used = static_cast<size_t>(base - static_cast<char*>(ws.data)) + pl.layout_end;
    return block_sparse_->forward(routed, Workspace{base + pl.layout_end, ws.bytes - used}, stream);
  }

  std::string description() const override {
    if (vertical_slash())
      return "dynamic_sparse (cuda): vertical_slash, last " + std::to_string(config_.last_queries) +
             " queries, " + budget_text(config_.vertical, "columns") + " and " +
             budget_text(config_.slash, "diagonals") + " (" +
             std::to_string(config_.forced_vertical) + " / " +
             std::to_string(config_.forced_slash) + " forced), blocks " +
             std::to_string(config_.block_q) + "x" + std::to_string(config_.block_k) +
             "; routing in 4 kernels (score, select, mark, compact); over " +
             block_sparse_->describe();
    char fraction[32];
    std::snprintf(fraction, sizeof fraction, "%.3g", config_.keep_fraction);
    return std::string("dynamic_sparse (cuda): block_topk, ") +
           (config_.keep_fraction > 0 ? std::string(fraction) + " of the visible blocks"
                                      : "top " + std::to_string(config_.top_k_blocks) + " blocks") +
           " + " + std::to_string(config_.sink_blocks) + " sink + " +
           std::to_string(config_.local_blocks) + " local per query block, blocks " +
           std::to_string(config_.block_q) + "x" + std::to_string(config_.block_k) +
           "; routing in 3 launches (pool, route, compact); over " + block_sparse_->describe();
  }

 private:
  bool vertical_slash() const { return config_.method == DynamicSparseMethod::kVerticalSlash; }

  std::string budget_text(int64_t count, const char* what) const {
    if (config_.keep_fraction <= 0) return std::to_string(count) + " " + what;
    char fraction[32];
    std::snprintf(fraction, sizeof fraction, "%.3g", config_.keep_fraction);
    return std::string(fraction) + " of the keys as " + what;
  }

  Geometry geometry(const AttentionShape& s) const {
    Geometry g;
    g.nbq = (s.max_q + config_.block_q - 1) / config_.block_q;
    g.nbk = (s.max_k + config_.block_k - 1) / config_.block_k;
    const int64_t routed =
        config_.keep_fraction > 0
            ? static_cast<int64_t>(std::ceil(config_.keep_fraction * double(g.nbk)))
            : config_.top_k_blocks;
    g.row_cap =
        std::max<int64_t>(1, std::min(g.nbk, config_.sink_blocks + config_.local_blocks + routed));
    if (vertical_slash()) g.row_cap = std::max<int64_t>(1, g.nbk);  // any block may be touched
    g.layouts = s.batch * s.kv_heads;
    return g;
  }

  // The workspace laid out by one carver: counting (data null) or over the caller's buffer.
  Buffers buffers(void* data, const AttentionShape& s) const {
    const Geometry g = geometry(s);
    detail::Carver c = detail::carve(data, kAlign);
    Buffers b;
    b.indptr = c.take<int32_t>(g.layouts * (g.nbq + 1));
    b.indices = c.take<int32_t>(g.layouts * g.nbq * g.row_cap);
    b.layout_end = c.used();
    b.slots = c.take<int32_t>(g.layouts * g.nbq * g.row_cap);
    b.counts = c.take<int32_t>(g.layouts * g.nbq);
    if (vertical_slash()) {
      b.vs =
          detail::vertical_slash_scratch(&c, s.batch, s.heads, s.kv_heads,
                                         std::min<int64_t>(config_.last_queries, s.max_q), s.max_k);
    } else {
      b.q_pool = c.take<float>(s.batch * s.heads * g.nbq * s.head_dim);
      b.k_pool = c.take<float>(g.layouts * g.nbk * s.head_dim);
    }
    b.scratch_end = c.used();
    return b;
  }

  // The variant's limits and where the pointers live, for params that passed validate().
  Status check(const AttentionParams& p, bool query_pointers) const {
    if (p.weights.present())
      return make_error(StatusCode::kUnsupported, "weights = ", p.weights.shape_string(),
                        ": dynamic sparse never materialises the scores; use the standard variant");
    if (p.block_layout.present())
      return make_error(StatusCode::kInvalidArgument, "block_layout (", p.block_layout.block_q, "x",
                        p.block_layout.block_k,
                        " blocks) is set: the dynamic-sparse variant routes its own layout");
    if (p.q_positions.present())
      return make_error(StatusCode::kUnsupported, "q_positions = ", p.q_positions.shape_string(),
                        ": the CUDA block routers align rows by the mask (no query positions)");
    return detail::check_device_params(ctx_, p, query_pointers);
  }

  // Routes validated params of shape s.
  Status route(const AttentionParams& p, const AttentionShape& s, Workspace ws, void* stream_ptr,
               BlockLayout* layout, bool query_pointers) const {
    QWEN3VL_RETURN_IF_ERROR(check(p, query_pointers));
    QWEN3VL_RETURN_IF_ERROR(detail::check_current_device(ctx_));
    const Geometry pl = geometry(s);
    const size_t need = buffers(nullptr, s).scratch_end + kAlign;
    if (ws.data == nullptr || ws.bytes < need)
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes, ": need ",
                        need, " (workspace_size() for these params)");
    const size_t shared = static_cast<size_t>(2 * pl.nbk) * sizeof(float);
    if (!vertical_slash() && shared > 48 * 1024)
      return make_error(StatusCode::kUnsupported, "key blocks = ", pl.nbk, " (max_k ", s.max_k,
                        " / block_k ", config_.block_k, "): the CUDA router holds at most ",
                        48 * 1024 / 8, " per row in shared memory");
    const Buffers b = buffers(ws.data, s);
    RouteArgs r;
    r.a = detail::make_attention_args(p, s);
    r.kv_heads = s.kv_heads;
    r.nbq = pl.nbq;
    r.nbk = pl.nbk;
    r.row_cap = pl.row_cap;
    r.capacity = pl.nbq * pl.row_cap;
    r.block_q = config_.block_q;
    r.block_k = config_.block_k;
    r.top_k = config_.top_k_blocks;
    r.sink = config_.sink_blocks;
    r.local = config_.local_blocks;
    r.fraction = config_.keep_fraction;
    r.q_pool = b.q_pool;
    r.k_pool = b.k_pool;
    r.slots = b.slots;
    r.counts = b.counts;
    r.indptr = b.indptr;
    r.indices = b.indices;

    layout->block_q = config_.block_q;
    layout->block_k = config_.block_k;
    layout->indptr = TensorView::contiguous(r.indptr, DType::kI32, {pl.layouts, pl.nbq + 1});
    layout->indices = TensorView::contiguous(r.indices, DType::kI32, {pl.layouts, r.capacity});
    layout->indptr.device = layout->indices.device = Device::kCUDA;
    layout->indptr.device_index = layout->indices.device_index = ctx_.device;
    const auto stream = static_cast<cudaStream_t>(stream_ptr);
    if (pl.layouts == 0) return Status();
    if (pl.nbq == 0) {  // no query rows: indptr [L, 1] of zeros
      QWEN3VL_CUDA_RETURN_IF_ERROR(
          cudaMemsetAsync(r.indptr, 0, static_cast<size_t>(pl.layouts) * 4, stream));
      return Status();
    }
    const unsigned layouts = static_cast<unsigned>(pl.layouts);
    if (vertical_slash()) {
      QWEN3VL_RETURN_IF_ERROR(
          detail::launch_vertical_slash(vertical_slash_args(r, s, pl, b.vs), stream));
      compact_kernel<<<layouts, kThreads, 0, stream>>>(r);
      QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("dynamic sparse compact_kernel");
      return Status();
    }
    pool_kernel<<<dim3(static_cast<unsigned>(std::max<int64_t>(std::max(pl.nbq, pl.nbk), 1)),
                       layouts),
                  128, 0, stream>>>(r);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("dynamic sparse pool_kernel");
    route_kernel<<<dim3(static_cast<unsigned>(pl.nbq), layouts), kThreads, shared, stream>>>(r);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("dynamic sparse route_kernel");
    compact_kernel<<<layouts, kThreads, 0, stream>>>(r);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("dynamic sparse compact_kernel");
    return Status();
  }

  detail::VerticalSlashArgs vertical_slash_args(const RouteArgs& r, const AttentionShape& s,
                                                const Geometry& pl,
                                                const detail::VerticalSlashScratch& vs) const {
    detail::VerticalSlashArgs v;
    v.a = r.a;
    v.kv_heads = s.kv_heads;
    v.max_q = s.max_q;
    v.max_k = s.max_k;
    v.nbq = pl.nbq;
    v.nbk = pl.nbk;
    v.row_cap = pl.row_cap;
    v.a_max = std::min<int64_t>(config_.last_queries, s.max_q);
    v.config = config_;
    v.scores = vs.scores;
    v.vertical = vs.vertical;
    v.slash = vs.slash;
    v.kept_v = vs.kept_v;
    v.kept_s = vs.kept_s;
    v.slots = r.slots;
    v.counts = r.counts;
    return v;
  }

  detail::DeviceContext ctx_;
  std::unique_ptr<Attention> block_sparse_;
  DynamicSparseConfig config_;
};

}  // namespace

Status create_dynamic_sparse_cuda(const CudaOptions& options, const DynamicSparseConfig& config,
                                  std::unique_ptr<DynamicSparseAttention>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  if (config.method == DynamicSparseMethod::kExactTopK)
    return detail::create_exact_topk_cuda(options, config, out);
  return detail::create_over_inner<DynamicSparseCuda>(options, config, &create_block_sparse_cuda,
                                                      out);
}

Status create_dynamic_sparse_cuda(const CudaOptions& options, const DynamicSparseConfig& config,
                                  std::unique_ptr<Attention>* out) {
  return detail::create_as_attention<DynamicSparseAttention>(
      out, [&](auto* made) { return create_dynamic_sparse_cuda(options, config, made); });
}

}  // namespace qwen3vl
