// Exact per-query top-k on CUDA (research specs 2.6; the CPU definition is
// src/dynamic_sparse/exact_topk.cpp), composed from the standard variant:
//   1. the CUDA standard variant writes every row's softmax probabilities into the workspace
//      ([B, Hq, Lq, Lk] f32: masks, soft-cap and key padding applied) and its LSE;
//   2. keep_kernel, one block per (sequence, head, row): the row's k-th largest probability by a
//      bitwise search over the float bits (probabilities are >= 0, so their bits order like their
//      values), the keys at or above it kept (exactly k on tie-free data; ties at the k-th are all
//      kept, as on the CPU), renormalised by the kept mass, then O = P_kept V over the kept keys
//      and LSE = the standard LSE + log(kept mass).
// Probabilities rank like the logits (exp is monotone), so the kept set is the CPU's except where
// two logits round to one probability. Costs: the workspace is O(B Hq Lq Lk) and every key is
// scored, so this is a correctness-first composition (dense cost plus a P V over the kept keys),
// not a fast path. Fixed-length batches only (attention weights have no varlen layout).
#include "exact_topk_cuda.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "block_sum.cuh"
#include "cuda/common/device_context.hpp"
#include "cuda/common/device_util.cuh"
#include "qwen3vl/cuda/check.cuh"
#include "src/core/workspace_carver.hpp"

namespace qwen3vl::detail {
namespace {

constexpr int kThreads = 256;
constexpr size_t kAlign = 256;

struct KeepArgs {
  AttentionArgs a;                 // v, out, lse of the caller (make_attention_args)
  float* weights = nullptr;        // [B, Hq, Lq, Lk], contiguous
  const float* std_lse = nullptr;  // [B, Hq, Lq], contiguous
  int64_t lq = 0, lk = 0, top_k = 0;
  double fraction = 0.0;
};

__global__ void keep_kernel(KeepArgs t) {
  __shared__ int count_cell;
  __shared__ float sum_cell;
  const AttentionArgs& a = t.a;
  const int64_t row = blockIdx.x, i = row % t.lq, h = row / t.lq % a.heads,
                b = row / t.lq / a.heads;
  float* w = t.weights + row * t.lk;
  if (threadIdx.x == 0) count_cell = 0, sum_cell = 0.0f;
  __syncthreads();
  int local = 0;
  for (int64_t j = threadIdx.x; j < t.lk; j += blockDim.x) local += w[j] > 0.0f;
  const int64_t n = block_sum(local, &count_cell);  // keys with a probability (masked: 0)
  const int64_t k = t.fraction > 0.0
                        ? min(n, static_cast<int64_t>(ceil(t.fraction * static_cast<double>(n))))
                        : min(n, t.top_k);
  // The k-th largest bit pattern: the largest x with #{bits >= x} >= k, built bit by bit.
  unsigned threshold = 1u;  // k == n: every positive probability
  if (k == 0) {
    threshold = 0x7f800000u;  // +inf: none (probabilities are finite)
  } else if (k < n) {
    unsigned prefix = 0u;
    for (int bit = 30; bit >= 0; --bit) {
      const unsigned candidate = prefix | (1u << bit);
      int c = 0;
      for (int64_t j = threadIdx.x; j < t.lk; j += blockDim.x)
        c += __float_as_uint(w[j]) >= candidate;
      if (block_sum(c, &count_cell) >= k) prefix = candidate;
    }
    threshold = prefix;
  }
  float kept_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < t.lk; j += blockDim.x)
    if (__float_as_uint(w[j]) >= threshold) kept_sum += w[j];
  const float mass = block_sum(kept_sum, &sum_cell);
  // A row that saw a NaN has NaN probabilities (the standard variant's rule): its mass is NaN and
  // so are its output and LSE. Only a mass of 0 is a row that keeps nothing.
  const float inv = mass == 0.0f ? 0.0f : 1.0f / mass;
  for (int64_t j = threadIdx.x; j < t.lk; j += blockDim.x)
    w[j] = __float_as_uint(w[j]) >= threshold ? w[j] * inv : 0.0f;
  __syncthreads();  // the renormalised row is read by every thread below
  const int64_t kv = h / a.group;
  for (int64_t c = threadIdx.x; c < a.head_dim; c += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < t.lk; ++j)
      if (w[j] != 0.0f)
        acc += w[j] * load_element(a.v.data, row_offset(a.v, b, j, kv) + c, a.dtype);
    store_element(a.out.data, row_offset(a.out, b, i, h) + c, a.dtype, acc);
  }
  if (a.lse != nullptr && threadIdx.x == 0) {
    const float std_lse = t.std_lse[row];
    a.lse[b * a.lse_batch + h * a.lse_head + i * a.lse_token] =
        mass == 0.0f ? -__int_as_float(0x7f800000) : std_lse + logf(mass);
  }
}

// The workspace: the standard variant's probabilities and LSE (null pointers while sizing).
struct Buffers {
  float* weights = nullptr;
  float* lse = nullptr;
};

class ExactTopKCuda final : public DynamicSparseAttention {
 public:
  ExactTopKCuda(const DeviceContext& ctx, std::unique_ptr<Attention> standard,
                const DynamicSparseConfig& config)
      : ctx_(ctx), standard_(std::move(standard)), config_(config) {}

  Variant variant() const override { return Variant::kDynamicSparse; }
  Device device() const override { return Device::kCUDA; }
  const DynamicSparseConfig& config() const override { return config_; }
  double last_density() const override { return -1.0; }  // would need a host sync

  size_t estimate_workspace_size(const AttentionParams&) const override { return 0; }
  Status estimate(const AttentionParams&, Workspace, BlockLayout*) const override {
    return make_error(StatusCode::kUnsupported,
                      "method = exact_topk: token granular, it has no block layout to estimate");
  }

  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    // A plan is made from shapes: where the data lives is checked by launch(), per call.
    QWEN3VL_RETURN_IF_ERROR(check(p, /*query_pointers=*/false));
    Carver sizing(nullptr, kAlign);
    buffers(&sizing, plan->shape);
    plan->workspace_bytes = sizing.used() + kAlign;
    if (plan->with_reason) plan->reason = description();
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream) const override {
    bool query_pointers = true;
    QWEN3VL_RETURN_IF_ERROR(pointer_queries_allowed(stream, &query_pointers));
    QWEN3VL_RETURN_IF_ERROR(check(p, query_pointers));  // where the new pointers live
    QWEN3VL_RETURN_IF_ERROR(check_current_device(ctx_));
    const AttentionShape& s = plan.shape;
    Carver carver = carve(ws.data, kAlign);  // run() checked ws against the plan's size
    const Buffers pl = buffers(&carver, s);
    const int64_t rows = s.batch * s.heads * s.max_q;
    if (rows == 0) return Status();
    AttentionParams dense = p;
    dense.weights = on_device(
        TensorView::contiguous(pl.weights, DType::kF32, {s.batch, s.heads, s.max_q, s.max_k}));
    dense.lse = on_device(TensorView::contiguous(pl.lse, DType::kF32, {s.batch, s.heads, s.max_q}));
    QWEN3VL_RETURN_IF_ERROR(standard_->forward(dense, Workspace{nullptr, 0}, stream));
    KeepArgs t;
    t.a = make_attention_args(p, s);
    t.weights = dense.weights.ptr<float>();
    t.std_lse = dense.lse.ptr<const float>();
    t.lq = s.max_q;
    t.lk = s.max_k;
    t.top_k = config_.top_k;
    t.fraction = config_.keep_fraction;
    keep_kernel<<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(t);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("exact top-k keep_kernel");
    return Status();
  }

  std::string description() const override {
    const std::string budget = config_.keep_fraction > 0
                                   ? std::to_string(config_.keep_fraction) + " of the visible keys"
                                   : "top " + std::to_string(config_.top_k) + " keys";
    return "dynamic_sparse (cuda): exact_topk, " + budget +
           " per query row; the standard variant's probabilities ranked per row, kept keys "
           "renormalised, P V over them; over " +
           standard_->describe();
  }

 private:
  TensorView on_device(TensorView v) const {
    v.device = Device::kCUDA;
    v.device_index = ctx_.device;
    return v;
  }

  // Sizes (counting carver) and carves (over the workspace) with the same calls.
  static Buffers buffers(Carver* c, const AttentionShape& s) {
    Buffers b;
    b.weights = c->take<float>(s.batch * s.heads * s.max_q * s.max_k);
    b.lse = c->take<float>(s.batch * s.heads * s.max_q);
    return b;
  }

  // The variant's limits and where the pointers live, for params that passed validate().
  Status check(const AttentionParams& p, bool query_pointers) const {
    if (p.weights.present())
      return make_error(StatusCode::kUnsupported, "weights = ", p.weights.shape_string(),
                        ": dynamic sparse returns no attention weights; use the standard variant");
    if (p.block_layout.present())
      return make_error(StatusCode::kInvalidArgument, "block_layout (", p.block_layout.block_q, "x",
                        p.block_layout.block_k,
                        " blocks) is set: the dynamic-sparse variant routes its own pattern");
    if (p.varlen())
      return make_error(StatusCode::kUnsupported, "cu_seqlens_q = ", p.cu_seqlens_q.shape_string(),
                        ": CUDA exact top-k ranks the standard variant's attention weights, which "
                        "need a fixed-length batch (the CPU variant takes varlen)");
    return check_device_params(ctx_, p, query_pointers);
  }

  DeviceContext ctx_;
  std::unique_ptr<Attention> standard_;
  DynamicSparseConfig config_;
};

}  // namespace

Status create_exact_topk_cuda(const CudaOptions& options, const DynamicSparseConfig& config,
                              std::unique_ptr<DynamicSparseAttention>* out) {
  return create_over_inner<ExactTopKCuda>(options, config, &create_standard_cuda, out);
}

}  // namespace qwen3vl::detail
