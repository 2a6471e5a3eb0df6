// Mixture-of-heads on CUDA, four launches: one routing kernel (a block per query head scans the
// tokens in order and packs the ones routed to it that see a key: row index, gate, key position,
// and the per-sequence row offsets, all on the device), one gather kernel (q rows into per-head
// blocks), ONE flash launch over every head's gathered rows (the flash kernel's gathered-rows
// mode: sequence b of head h is that head's rows of b, against the problem's own K/V), and one
// scatter kernel (gate * O, zeros and LSE -inf elsewhere). No allocation and no host sync: the
// host never learns how many rows a head got. A launch per head instead cost more than dense at
// every active fraction: each lasted as long as its longest (4096-key) tile.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "cuda/common/device_context.hpp"
#include "cuda/flash/flash_registry.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "src/core/as_attention.hpp"
#include "src/core/workspace_carver.hpp"
#include "src/mixture_of_heads/head_call.hpp"

namespace qwen3vl {
namespace {

constexpr size_t kAlign = 256;
constexpr int kRouteThreads = 256;  // a multiple of 32

// What the kernels read about the problem (sequences, masks, routing) and where they write.
struct RouteArgs {
  const int32_t* head_index;
  const float* head_weight;
  int64_t index_stride[2], weight_stride[2];
  int k;
  int64_t tokens, heads, batch, lq, lk;  // lq, lk: fixed-length sequence lengths
  bool varlen;
  const int32_t* cu_q;
  const int32_t* cu_k;
  int64_t cu_q_stride, cu_k_stride;
  const int32_t* key_lengths;
  int64_t key_lengths_stride;
  const int32_t* q_positions;
  int64_t positions_stride[2];
  MaskKind mask;
  int64_t window_left, window_right;
  // Outputs, per head h at h * tokens: the token's row in the head's block (-1: none), its gate,
  // the tokens in packed order (= the rows), the rows' key positions; and per head at
  // h * (batch + 1) the first row of each sequence (GatheredQueries::cu_rows).
  int32_t* row_of;
  float* gate;
  int32_t* packed;
  int32_t* positions;
  int32_t* cu_rows;
};

struct Row {
  int64_t b = -1, i = 0, q_len = 0, k_len = 0, q_start = 0;
};

// The sequence of packed token t (b = -1: outside every sequence, a varlen tail).
__device__ Row locate(const RouteArgs& a, int64_t t) {
  Row r;
  if (a.varlen) {
    int64_t lo = 0, hi = a.batch;  // the last b with cu_q[b] <= t
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (a.cu_q[mid * a.cu_q_stride] <= t)
        lo = mid;
      else
        hi = mid - 1;
    }
    const int64_t start = a.cu_q[lo * a.cu_q_stride];
    if (lo >= a.batch || t >= a.cu_q[(lo + 1) * a.cu_q_stride]) return r;
    r.b = lo;
    r.q_start = start;
    r.i = t - start;
    r.q_len = a.cu_q[(lo + 1) * a.cu_q_stride] - start;
    r.k_len = a.cu_k[(lo + 1) * a.cu_k_stride] - a.cu_k[lo * a.cu_k_stride];
  } else {
    r.b = t / a.lq;
    r.i = t % a.lq;
    r.q_len = a.lq;
    r.k_len = a.lk;
  }
  if (a.key_lengths) {
    const int64_t kl = a.key_lengths[r.b * a.key_lengths_stride];
    r.k_len = kl < r.k_len ? kl : r.k_len;
  }
  return r;
}

__device__ int64_t key_position(const RouteArgs& a, const Row& r) {
  if (!a.q_positions) return detail::moh::aligned_position(a.mask, r.i, r.q_len, r.k_len);
  return a.q_positions[a.varlen ? (r.q_start + r.i) * a.positions_stride[0]
                                : r.b * a.positions_stride[0] + r.i * a.positions_stride[1]];
}

__device__ int64_t sequence_start(const RouteArgs& a, int64_t b) {
  return a.varlen ? a.cu_q[b * a.cu_q_stride] : b * a.lq;
}

// First packed rank whose token is >= t.
__device__ int64_t lower_bound(const int32_t* packed, int64_t n, int64_t t) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (packed[mid] < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Block h: the tokens routed to head h with a non-zero gate that see a key, in token order.
__global__ void route_kernel(RouteArgs a) {
  const int64_t h = blockIdx.x, base = h * a.tokens;
  __shared__ int32_t warp_sums[kRouteThreads / 32];
  __shared__ int64_t total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t chunk = 0; chunk < a.tokens; chunk += kRouteThreads) {
    const int64_t t = chunk + threadIdx.x;
    float w = 0.0f;
    if (t < a.tokens) {
      for (int e = 0; e < a.k; ++e)
        if (a.head_index[t * a.index_stride[0] + e * a.index_stride[1]] == h) {
          w = a.head_weight[t * a.weight_stride[0] + e * a.weight_stride[1]];
          break;  // a head listed twice counts once (host routings are checked for it)
        }
      if (w != 0.0f) {
        const Row r = locate(a, t);
        if (r.b < 0 || !detail::moh::row_sees_keys_at(a.mask, a.window_left, a.window_right,
                                                      key_position(a, r), r.k_len))
          w = 0.0f;
      }
      a.row_of[base + t] = -1;
      a.gate[base + t] = w;
    }
    const int flag = w != 0.0f;
    // Block-wide exclusive scan of the flags: warp ballots, then the warps' totals.
    const unsigned ballot = __ballot_sync(0xffffffffu, flag);
    const int in_warp = __popc(ballot & ((1u << lane) - 1u));
    if (lane == 0) warp_sums[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, chunk_total = 0;
    for (int i = 0; i < kRouteThreads / 32; ++i) {
      before += i < warp ? warp_sums[i] : 0;
      chunk_total += warp_sums[i];
    }
    if (flag) a.packed[base + total + before + in_warp] = static_cast<int32_t>(t);
    __syncthreads();
    if (threadIdx.x == 0) total += chunk_total;
    __syncthreads();
  }
  const int64_t n = total;
  const int32_t* packed = a.packed + base;
  // The first row of each sequence.
  for (int64_t b = threadIdx.x; b <= a.batch; b += blockDim.x) {
    const int64_t first = b < a.batch ? lower_bound(packed, n, sequence_start(a, b)) : n;
    a.cu_rows[h * (a.batch + 1) + b] = static_cast<int32_t>(first);
  }
  // Each packed token's row (its rank) and key position (clamped at 0: see
  // check_window_alignment).
  for (int64_t row = threadIdx.x; row < n; row += blockDim.x) {
    const int64_t t = packed[row];
    a.row_of[base + t] = static_cast<int32_t>(row);
    const int64_t pos = key_position(a, locate(a, t));
    a.positions[base + row] = static_cast<int32_t>(pos > 0 ? pos : 0);
  }
}

struct RowCopyArgs {
  void* rows;         // q or out of the problem
  int64_t stride[3];  // token-major strides: varlen (token, head), fixed (batch, seq, head)
  void* block;        // per-head blocks [H, tokens, D]
  float* block_lse;   // [H, tokens]
  float* lse;         // the problem's lse (scatter only), may be null
  int64_t lse_stride[3];
  int64_t head_dim;
};

__device__ int64_t row_offset_of(const RouteArgs& a, const int64_t* stride, const Row& r, int64_t t,
                                 int64_t h) {
  return a.varlen ? t * stride[0] + h * stride[1]
                  : r.b * stride[0] + r.i * stride[1] + h * stride[2];
}

// One warp per (token, head): copies the routed q row into the head's block.
template <class T>
__global__ void gather_kernel(RouteArgs a, RowCopyArgs c) {
  const int64_t t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, h = blockIdx.y;
  if (t >= a.tokens) return;
  const int32_t row = a.row_of[h * a.tokens + t];
  if (row < 0) return;
  const Row r = locate(a, t);
  const T* src = static_cast<const T*>(c.rows) + row_offset_of(a, c.stride, r, t, h);
  T* dst = static_cast<T*>(c.block) + (h * a.tokens + row) * c.head_dim;
  for (int64_t d = threadIdx.x % 32; d < c.head_dim; d += 32) dst[d] = src[d];
}

// One warp per (token, head): out = gate * the head's row, or 0 (LSE -inf) where not routed.
template <class T>
__global__ void scatter_kernel(RouteArgs a, RowCopyArgs c) {
  const int64_t t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, h = blockIdx.y;
  if (t >= a.tokens) return;
  const Row r = locate(a, t);
  if (r.b < 0) return;  // a packed row outside every sequence: left as it is, like dense attention
  const int32_t row = a.row_of[h * a.tokens + t];
  const float w = row >= 0 ? a.gate[h * a.tokens + t] : 0.0f;
  T* dst = static_cast<T*>(c.rows) + row_offset_of(a, c.stride, r, t, h);
  const T* src =
      static_cast<const T*>(c.block) + (h * a.tokens + (row >= 0 ? row : 0)) * c.head_dim;
  for (int64_t d = threadIdx.x % 32; d < c.head_dim; d += 32)
    dst[d] = from_float<T>(row >= 0 ? w * to_float(src[d]) : 0.0f);
  if (c.lse && threadIdx.x % 32 == 0)
    c.lse[a.varlen ? h * c.lse_stride[0] + t * c.lse_stride[1]
                   : r.b * c.lse_stride[0] + h * c.lse_stride[1] + r.i * c.lse_stride[2]] =
        row >= 0 ? c.block_lse[h * a.tokens + row] : -INFINITY;
}

// The workspace parts (null pointers while sizing), laid out by `c`: plan() sizes with a counting
// carver, run() carves the caller's workspace with the same calls.
struct DeviceLayout {
  int32_t* row_of;
  float* gate;
  int32_t* packed;
  int32_t* positions;
  int32_t* cu_rows;
  void* q;
  void* out;
  float* lse;
};

DeviceLayout device_layout(detail::Carver* c, const AttentionParams& p, const AttentionShape& s) {
  const int64_t ht = s.heads * detail::moh::routing_tokens(p);
  const int64_t row_bytes = s.head_dim * static_cast<int64_t>(size_of(p.q.dtype));
  DeviceLayout l{};
  l.row_of = c->take<int32_t>(ht);
  l.gate = c->take<float>(ht);
  l.packed = c->take<int32_t>(ht);
  l.positions = c->take<int32_t>(ht);
  l.cu_rows = c->take<int32_t>(s.heads * (s.batch + 1));
  l.q = c->take<char>(ht * row_bytes);
  l.out = c->take<char>(ht * row_bytes);
  l.lse = c->take<float>(ht);
  return l;
}

size_t device_layout_bytes(const AttentionParams& p, const AttentionShape& s) {
  detail::Carver sizing(nullptr, kAlign);
  device_layout(&sizing, p, s);
  return sizing.used() + kAlign;
}

class MixtureOfHeadsCuda final : public MixtureOfHeadsAttention {
 public:
  MixtureOfHeadsCuda(const detail::DeviceContext& ctx, std::unique_ptr<Attention> kernel,
                     const MoHConfig& config)
      : ctx_(ctx), kernel_(std::move(kernel)), config_(config) {}

  Variant variant() const override { return Variant::kMixtureOfHeads; }
  Device device() const override { return Device::kCUDA; }
  const MoHConfig& config() const override { return config_; }

  Status run(const AttentionPlan& plan, const AttentionParams& p, const HeadRouting& r,
             Workspace ws, void* stream) const override;

 protected:
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    const AttentionShape& s = plan->shape;
    // A plan is made from shapes: where the data lives is checked by launch(), per call.
    QWEN3VL_RETURN_IF_ERROR(check(p, s, /*query_pointers=*/false));
    const bool no_rows = detail::moh::routing_tokens(p) == 0 || s.batch == 0 || s.max_q == 0;
    plan->workspace_bytes =  // an empty problem launches nothing
        std::max(no_rows ? 0 : device_layout_bytes(p, s), kernel_->workspace_size(p));
    if (plan->with_reason) plan->reason = description();
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream) const override {
    bool query_pointers = true;
    QWEN3VL_RETURN_IF_ERROR(detail::pointer_queries_allowed(stream, &query_pointers));
    QWEN3VL_RETURN_IF_ERROR(check(p, plan.shape, query_pointers));  // the new pointers
    return kernel_->forward(p, ws, stream);  // every head, gate 1: dense attention
  }

  Status check_routing(const AttentionPlan& plan, const AttentionParams& p,
                       const HeadRouting& r) const override {
    return check_routing(plan.shape, p, r, true);
  }

  std::string description() const override {
    return std::string("mixture-of-heads (cuda): ") + std::to_string(config_.num_shared_heads) +
           " shared + top-" + std::to_string(config_.top_k) + " of " +
           std::to_string(config_.routed_heads()) +
           " routed heads; routing, gather and scatter kernels around one gathered-rows launch of "
           "[" +
           kernel_->describe() + "]";
  }

 private:
  // The variant's limits and where the pointers live, for validated params of shape s.
  Status check(const AttentionParams& p, const AttentionShape& s, bool query_pointers) const {
    if (s.heads != config_.num_heads)
      return make_error(StatusCode::kShapeMismatch, "q heads = ", s.heads,
                        ": must equal MoHConfig.num_heads = ", config_.num_heads);
    QWEN3VL_RETURN_IF_ERROR(detail::moh::refuse_unsupported(p));
    QWEN3VL_RETURN_IF_ERROR(detail::check_device_params(ctx_, p, query_pointers));
    return detail::check_device_tensor(ctx_, p.q_positions, "q_positions", query_pointers);
  }
  Status check_routing(const AttentionShape& s, const AttentionParams& p, const HeadRouting& r,
                       bool query_pointers) const {
    QWEN3VL_RETURN_IF_ERROR(detail::moh::check_window_alignment(p, s));  // gathered rows only
    QWEN3VL_RETURN_IF_ERROR(
        validate_head_routing(r, detail::moh::routing_tokens(p), config_.num_heads));
    QWEN3VL_RETURN_IF_ERROR(
        detail::check_device_tensor(ctx_, r.head_index, "routing.head_index", query_pointers));
    return detail::check_device_tensor(ctx_, r.head_weight, "routing.head_weight", query_pointers);
  }

  detail::DeviceContext ctx_;
  std::unique_ptr<Attention> kernel_;
  MoHConfig config_;
};

Status MixtureOfHeadsCuda::run(const AttentionPlan& plan, const AttentionParams& p,
                               const HeadRouting& r, Workspace ws, void* stream_ptr) const {
  QWEN3VL_RETURN_IF_ERROR(check_run(plan, p, ws));
  bool query_pointers = true;
  QWEN3VL_RETURN_IF_ERROR(detail::pointer_queries_allowed(stream_ptr, &query_pointers));
  const AttentionShape& s = plan.shape;
  QWEN3VL_RETURN_IF_ERROR(check(p, s, query_pointers));  // where the new pointers live
  QWEN3VL_RETURN_IF_ERROR(check_routing(s, p, r, query_pointers));
  QWEN3VL_RETURN_IF_ERROR(detail::check_current_device(ctx_));
  const int64_t tokens = detail::moh::routing_tokens(p);
  if (tokens == 0 || s.batch == 0 || s.max_q == 0) return Status();
  const size_t need = device_layout_bytes(p, s);
  if (ws.data == nullptr || ws.bytes < need)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ": mixture-of-heads needs ", need, " (workspace_size())");
  detail::Carver carver = detail::carve(ws.data, kAlign);
  const DeviceLayout l = device_layout(&carver, p, s);
  // The flash object must take the problem: asked before anything is launched (not while the
  // stream is captured: supports() queries pointer attributes).
  if (query_pointers) QWEN3VL_RETURN_IF_ERROR(kernel_->supports(p));

  RouteArgs a{};
  a.head_index = r.head_index.ptr<const int32_t>();
  a.head_weight = r.head_weight.ptr<const float>();
  a.index_stride[0] = r.head_index.stride[0];
  a.index_stride[1] = r.head_index.stride[1];
  a.weight_stride[0] = r.head_weight.stride[0];
  a.weight_stride[1] = r.head_weight.stride[1];
  a.k = static_cast<int>(r.head_index.shape[1]);
  a.tokens = tokens;
  a.heads = s.heads;
  a.batch = s.batch;
  a.varlen = p.varlen();
  a.lq = a.varlen ? 0 : p.q.shape[1];
  a.lk = a.varlen ? 0 : p.k.shape[1];
  if (a.varlen) {
    a.cu_q = p.cu_seqlens_q.ptr<const int32_t>();
    a.cu_k = p.cu_seqlens_k.ptr<const int32_t>();
    a.cu_q_stride = p.cu_seqlens_q.stride[0];
    a.cu_k_stride = p.cu_seqlens_k.stride[0];
  }
  if (p.key_lengths.present()) {
    a.key_lengths = p.key_lengths.ptr<const int32_t>();
    a.key_lengths_stride = p.key_lengths.stride[0];
  }
  if (p.q_positions.present()) {
    a.q_positions = p.q_positions.ptr<const int32_t>();
    a.positions_stride[0] = p.q_positions.stride[0];
    a.positions_stride[1] = p.q_positions.rank > 1 ? p.q_positions.stride[1] : 0;
  }
  a.mask = p.mask;
  a.window_left = p.window_left;
  a.window_right = p.window_right;
  a.row_of = l.row_of;
  a.gate = l.gate;
  a.packed = l.packed;
  a.positions = l.positions;
  a.cu_rows = l.cu_rows;

  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  route_kernel<<<static_cast<unsigned>(s.heads), kRouteThreads, 0, stream>>>(a);
  QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("moh route_kernel");

  const auto copy_args = [&](const TensorView& t, void* block) {
    RowCopyArgs c{};
    c.rows = t.data;
    for (int d = 0; d < 3; ++d) c.stride[d] = t.stride[d];
    c.block = block;
    c.block_lse = l.lse;
    c.head_dim = s.head_dim;
    if (p.lse.present()) {
      c.lse = p.lse.ptr<float>();
      for (int d = 0; d < p.lse.rank; ++d) c.lse_stride[d] = p.lse.stride[d];
    }
    return c;
  };
  constexpr int kWarps = 8;
  const dim3 grid(static_cast<unsigned>((tokens + kWarps - 1) / kWarps),
                  static_cast<unsigned>(s.heads));
  Status launched = dispatch_float_dtype(p.q.dtype, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<grid, kWarps * 32, 0, stream>>>(a, copy_args(p.q, l.q));
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("moh gather_kernel");
    return Status();
  });
  QWEN3VL_RETURN_IF_ERROR(launched);
  detail::GatheredQueries g;
  g.q = l.q;
  g.out = l.out;
  g.lse = p.lse.present() ? l.lse : nullptr;
  g.positions = detail::moh::needs_positions(p) ? a.positions : nullptr;
  g.cu_rows = a.cu_rows;
  g.rows = tokens;
  QWEN3VL_RETURN_IF_ERROR(detail::flash::forward_gathered(*kernel_, p, g, stream));
  return dispatch_float_dtype(p.out.dtype, [&](auto tag) {
    using T = decltype(tag);
    scatter_kernel<T><<<grid, kWarps * 32, 0, stream>>>(a, copy_args(p.out, l.out));
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("moh scatter_kernel");
    return Status();
  });
}

}  // namespace

Status create_mixture_of_heads_cuda(const CudaOptions& options, const MoHConfig& config,
                                    std::unique_ptr<MixtureOfHeadsAttention>* out) {
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer, "out = null: must point to a unique_ptr");
  QWEN3VL_RETURN_IF_ERROR(validate_moh_config(config));
  return detail::create_over_inner<MixtureOfHeadsCuda>(options, config, &create_flash2_cuda, out);
}

Status create_mixture_of_heads_cuda(const CudaOptions& options, const MoHConfig& config,
                                    std::unique_ptr<Attention>* out) {
  return detail::create_as_attention<MixtureOfHeadsAttention>(
      out, [&](auto* made) { return create_mixture_of_heads_cuda(options, config, made); });
}

}  // namespace qwen3vl
