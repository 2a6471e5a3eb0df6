// The linear variant on CUDA: checks, the workspace carve-up and the launches of
// linear_kernels.cuh. forward(), prefill() and step() allocate nothing and never synchronise.
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "cuda/common/device_context.hpp"
#include "linear_kernels.cuh"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "src/core/as_attention.hpp"
#include "src/core/linear_common.hpp"
#include "src/core/workspace_carver.hpp"

namespace qwen3vl {
namespace detail::linear {
namespace {

constexpr size_t kAlign = 256;

// The workspace's buffers (null pointers while sizing), laid out by `c`: plan() sizes with a
// counting carver, the launch carves the caller's workspace with the same calls.
struct Buffers {
  float* phi_q;
  float* phi_k;
  float* chunk_state;
  float* total;
  unsigned* key_max;
};

Buffers carve_buffers(Carver* c, const AttentionParams& p, const LinearCall& call) {
  const AttentionShape& s = call.shape;
  const int64_t rows_q = p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
  const int64_t rows_k = p.varlen() ? p.k.shape[0] : s.batch * s.max_k;
  const int64_t chunks = (s.max_k + kChunk - 1) / kChunk;
  const int64_t per_state = call.features * (s.head_dim + 1);
  Buffers b;
  b.phi_q = c->take<float>(rows_q * s.heads * call.features);
  b.phi_k = c->take<float>(rows_k * s.kv_heads * call.features);
  b.chunk_state = c->take<float>(s.batch * s.kv_heads * chunks * per_state);
  b.total = c->take<float>(s.batch * s.kv_heads * per_state);
  b.key_max = c->take<unsigned>(s.batch * s.kv_heads);
  return b;
}

size_t buffers_bytes(const AttentionParams& p, const LinearCall& call) {
  Carver sizing(nullptr, kAlign);
  carve_buffers(&sizing, p, call);
  return sizing.used() + kAlign;
}

unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

class LinearCuda final : public LinearAttention {
 public:
  LinearCuda(const DeviceContext& ctx, const LinearConfig& config) : ctx_(ctx), config_(config) {}
  ~LinearCuda() override {
    if (omega_) cudaFree(omega_);
  }

  Status init() {
    QWEN3VL_RETURN_IF_ERROR(check_linear_config(config_));
    if (config_.chunk != kChunk)
      return make_error(StatusCode::kUnsupported, "LinearConfig.chunk = ", config_.chunk,
                        ": the CUDA linear kernels use chunks of ", kChunk);
    if (config_.feature_map != LinearFeatureMap::kPerformer) return Status();
    std::vector<float> omega;
    QWEN3VL_RETURN_IF_ERROR(make_performer_projection(config_, config_.head_dim, &omega));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaSetDevice(ctx_.device));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMalloc(&omega_, omega.size() * sizeof(float)));
    QWEN3VL_CUDA_RETURN_IF_ERROR(
        cudaMemcpy(omega_, omega.data(), omega.size() * sizeof(float), cudaMemcpyHostToDevice));
    return Status();
  }

  Variant variant() const override { return Variant::kLinear; }
  Device device() const override { return Device::kCUDA; }

  std::string description() const override {
    return std::string("linear (cuda): ") +
           (config_.feature_map == LinearFeatureMap::kEluPlusOne ? "elu+1" : "performer") +
           " features, chunked form in 4 launches (features, per-chunk phi(K)^T [V|1], scan over "
           "chunks, outputs), chunk 64, fp32 state; " +
           ctx_.to_string();
  }

  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    auto call = std::make_shared<LinearCall>();
    call->shape = plan->shape;
    QWEN3VL_RETURN_IF_ERROR(check_linear_problem(p, config_, Device::kCUDA, call.get()));
    // A plan is made from shapes: where the data lives is checked by launch(), per call.
    QWEN3VL_RETURN_IF_ERROR(check_launch(p, *call, /*query_pointers=*/false));
    plan->workspace_bytes = buffers_bytes(p, *call);
    if (plan->with_reason) plan->reason = description();
    plan->data = std::move(call);
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream) const override {
    const auto& call = *static_cast<const LinearCall*>(plan.data.get());
    bool query = true;
    QWEN3VL_RETURN_IF_ERROR(pointer_queries_allowed(stream, &query));
    QWEN3VL_RETURN_IF_ERROR(check_device_params(ctx_, p, query));  // the new pointers
    return launch_chunks(p, call, nullptr, false, ws, stream);
  }

  Status prefill(const AttentionParams& p, const LinearState& state, Workspace ws,
                 void* stream) const override {
    return with_state(p, state, false, ws, stream);
  }

  Status step(const AttentionParams& p, const LinearState& state, Workspace ws,
              void* stream) const override {
    return with_state(p, state, true, ws, stream);
  }

 private:
  Status check(const AttentionParams& p, LinearCall& call, bool query) const {
    QWEN3VL_RETURN_IF_ERROR(check_linear_params(p, config_, Device::kCUDA, &call));
    return check_launch(p, call, query);
  }

  // The device's limits for a checked call.
  Status check_launch(const AttentionParams& p, const LinearCall& call, bool query) const {
    QWEN3VL_RETURN_IF_ERROR(check_device_params(ctx_, p, query));
    if (call.shape.batch > ctx_.max_grid_z || call.shape.heads > ctx_.max_grid_y)
      return make_error(StatusCode::kUnsupported, "batch = ", call.shape.batch,
                        ", heads = ", call.shape.heads, ": the CUDA linear kernels launch at most ",
                        ctx_.max_grid_z, " sequences and ", ctx_.max_grid_y, " heads");
    return Status();
  }

  Status with_state(const AttentionParams& p, const LinearState& state, bool continue_state,
                    Workspace ws, void* stream) const {
    LinearCall call;
    bool query = true;
    QWEN3VL_RETURN_IF_ERROR(pointer_queries_allowed(stream, &query));
    QWEN3VL_RETURN_IF_ERROR(check(p, call, query));
    QWEN3VL_RETURN_IF_ERROR(check_linear_state(p, config_, state, Device::kCUDA, &call));
    QWEN3VL_RETURN_IF_ERROR(check_device_tensor(ctx_, state.s, "state.s", query));
    QWEN3VL_RETURN_IF_ERROR(check_device_tensor(ctx_, state.z, "state.z", query));
    return launch_chunks(p, call, &state, continue_state, ws, stream);
  }

  Status launch_chunks(const AttentionParams& p, const LinearCall& call, const LinearState* state,
                       bool continue_state, Workspace ws, void* stream_ptr) const {
    QWEN3VL_RETURN_IF_ERROR(check_current_device(ctx_));
    const size_t need = buffers_bytes(p, call);
    if (ws.bytes < need || (ws.data == nullptr && need > 0))
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                        ": the CUDA linear variant needs ", need, " (workspace_size())");
    const AttentionShape& s = call.shape;
    if (s.batch == 0) return Status();
    LinearArgs l;
    l.a = make_attention_args(p, s);
    l.features = call.features;
    l.chunks = (s.max_k + kChunk - 1) / kChunk;
    l.rows_q = p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
    l.rows_k = p.varlen() ? p.k.shape[0] : s.batch * s.max_k;
    Carver carver = carve(ws.data, kAlign);
    const Buffers b = carve_buffers(&carver, p, call);
    l.phi_q = b.phi_q;
    l.phi_k = b.phi_k;
    l.chunk_state = b.chunk_state;
    l.total = b.total;
    l.key_max = b.key_max;
    l.omega = omega_;
    l.query_scale = std::sqrt(s.scale);
    l.eps = config_.eps;
    l.causal = call.causal;
    if (state) {
      l.state_s = state->s.ptr<float>();
      l.state_z = state->z.ptr<float>();
      for (int i = 0; i < 3; ++i) l.s_stride[i] = state->s.stride[i];
      for (int i = 0; i < 2; ++i) l.z_stride[i] = state->z.stride[i];
      l.load_state = continue_state;
    }
    const auto stream = static_cast<cudaStream_t>(stream_ptr);
    const int64_t per_state = call.features * (s.head_dim + 1);

    if (omega_) {
      QWEN3VL_CUDA_RETURN_IF_ERROR(
          cudaMemsetAsync(l.key_max, 0, sizeof(unsigned) * s.batch * s.kv_heads, stream));
      const int64_t rows =
          l.rows_q * s.heads > l.rows_k * s.kv_heads ? l.rows_q * s.heads : l.rows_k * s.kv_heads;
      if (rows > 0) {
        performer_features_kernel<<<dim3(static_cast<unsigned>(rows), 2), kThreads, 0, stream>>>(l);
        QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("linear performer_features_kernel");
        performer_keys_kernel<<<blocks_for(l.rows_k * s.kv_heads * l.features), kThreads, 0,
                                stream>>>(l);
        QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("linear performer_keys_kernel");
      }
    } else {
      const int64_t n =
          l.rows_q * s.heads > l.rows_k * s.kv_heads ? l.rows_q * s.heads : l.rows_k * s.kv_heads;
      if (n > 0) {
        elu_features_kernel<<<dim3(blocks_for(n * s.head_dim), 2), kThreads, 0, stream>>>(l);
        QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("linear elu_features_kernel");
      }
    }
    const unsigned bkv = static_cast<unsigned>(s.batch * s.kv_heads);
    if (l.chunks > 0) {
      const int64_t tiles =
          ((call.features + kTileF - 1) / kTileF) * ((s.head_dim + 1 + kTileF - 1) / kTileF);
      chunk_state_kernel<<<dim3(static_cast<unsigned>(l.chunks), static_cast<unsigned>(tiles), bkv),
                           kTileF * 8, 0, stream>>>(l);
      QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("linear chunk_state_kernel");
    }
    scan_kernel<<<dim3(blocks_for(per_state), bkv), kThreads, 0, stream>>>(l);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("linear scan_kernel");
    const int64_t q_chunks = (s.max_q + kChunk - 1) / kChunk;
    if (q_chunks > 0) {
      output_kernel<<<dim3(static_cast<unsigned>(q_chunks), static_cast<unsigned>(s.heads),
                           static_cast<unsigned>(s.batch)),
                      kThreads, 0, stream>>>(l);
      QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("linear output_kernel");
    }
    return Status();
  }

  DeviceContext ctx_;
  LinearConfig config_;
  float* omega_ = nullptr;  // Performer projection [F, D] on ctx_.device
};

}  // namespace
}  // namespace detail::linear

Status create_linear_cuda(const CudaOptions& options, const LinearConfig& config,
                          std::unique_ptr<LinearAttention>* out) {
  detail::DeviceContext ctx;
  QWEN3VL_RETURN_IF_ERROR(detail::DeviceContext::create(options, &ctx));
  auto linear = std::make_unique<detail::linear::LinearCuda>(ctx, config);
  QWEN3VL_RETURN_IF_ERROR(linear->init());
  *out = std::move(linear);
  return Status();
}

Status create_linear_cuda(const CudaOptions& options, const LinearConfig& config,
                          std::unique_ptr<Attention>* out) {
  return detail::create_as_attention<LinearAttention>(
      out, [&](auto* made) { return create_linear_cuda(options, config, made); });
}

}  // namespace qwen3vl
