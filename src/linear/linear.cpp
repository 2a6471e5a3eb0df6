// Linear attention on the CPU: checks, workspace slots and oneTBB over (sequence, KV head); the
// chunked math is in linear_kernel.inl, compiled once per ISA.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <vector>

#include "linear_kernels.hpp"
#include "src/core/as_attention.hpp"
#include "src/cpu/cpu_backend.hpp"

namespace qwen3vl {
namespace {

class LinearCpu final : public LinearAttention {
 public:
  LinearCpu(std::unique_ptr<detail::CpuBackend> backend, const LinearConfig& config)
      : backend_(std::move(backend)), config_(config) {}

  Status init() {
    QWEN3VL_RETURN_IF_ERROR(detail::check_linear_config(config_));
    if (config_.feature_map == LinearFeatureMap::kPerformer)
      QWEN3VL_RETURN_IF_ERROR(make_performer_projection(config_, config_.head_dim, &omega_));
    return Status();
  }

  Variant variant() const override { return Variant::kLinear; }
  Device device() const override { return Device::kCPU; }

  Status prefill(const AttentionParams& p, const LinearState& state, Workspace ws,
                 void* /*stream*/) const override {
    detail::LinearCall call;
    QWEN3VL_RETURN_IF_ERROR(detail::check_linear_state(p, config_, state, Device::kCPU, &call));
    return run_chunks(p, call, &state, false, ws);
  }

  Status step(const AttentionParams& p, const LinearState& state, Workspace ws,
              void* /*stream*/) const override {
    detail::LinearCall call;
    QWEN3VL_RETURN_IF_ERROR(detail::check_linear_state(p, config_, state, Device::kCPU, &call));
    return run_chunks(p, call, &state, true, ws);
  }

  std::string description() const override {
    return std::string("linear (cpu): ") +
           (config_.feature_map == LinearFeatureMap::kEluPlusOne ? "elu+1" : "performer") +
           " features, chunked form (chunk " + std::to_string(config_.chunk) +
           "), Eigen per (sequence, KV head); " + backend_->describe();
  }

 protected:
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    auto call = std::make_shared<detail::LinearCall>();
    call->shape = plan->shape;
    QWEN3VL_RETURN_IF_ERROR(detail::check_linear_problem(p, config_, Device::kCPU, call.get()));
    plan->workspace_bytes = backend_->workspace_bytes(slot_bytes(*call));
    if (plan->with_reason)
      plan->reason = description() + "; " + std::to_string(call->features) + " features, " +
                     (call->causal ? "causal" : "non-causal");
    plan->data = std::move(call);
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* /*stream*/) const override {
    return run_chunks(p, *static_cast<const detail::LinearCall*>(plan.data.get()), nullptr, false,
                      ws);
  }

 private:
  size_t slot_bytes(const detail::LinearCall& call) const {
    return static_cast<size_t>(
               detail::linear_scratch_floats(config_.chunk, call.features, call.shape.head_dim)) *
           sizeof(float);
  }

  Status run_chunks(const AttentionParams& p, const detail::LinearCall& call,
                    const LinearState* state, bool continue_state, Workspace ws) const {
    const size_t slot = slot_bytes(call);
    QWEN3VL_RETURN_IF_ERROR(backend_->check_workspace(ws, slot));
    const float* omega = omega_.empty() ? nullptr : omega_.data();
    const auto kernel = detail::isa_table<detail::LinearKernels>(backend_->isa()).run;
    const int64_t tasks = call.shape.batch * call.shape.kv_heads;
    backend_->arena().execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, tasks, 1),
          [&](const tbb::blocked_range<int64_t>& range) {
            for (int64_t t = range.begin(); t != range.end(); ++t) {
              detail::LinearTask task;
              task.params = &p;
              task.call = &call;
              task.config = &config_;
              task.omega = omega;
              task.b = t / call.shape.kv_heads;
              task.kv_head = t % call.shape.kv_heads;
              task.span = sequence_span(p, task.b);
              task.state = state;
              task.continue_state = continue_state;
              task.scratch = detail::CpuBackend::thread_slot(ws, slot);
              kernel(task);
            }
          },
          tbb::simple_partitioner());
    });
    return Status();
  }

  std::unique_ptr<detail::CpuBackend> backend_;
  LinearConfig config_;
  std::vector<float> omega_;  // Performer projection [F, config_.head_dim]
};

}  // namespace

Status create_linear_cpu(const CpuOptions& options, const LinearConfig& config,
                         std::unique_ptr<LinearAttention>* out) {
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  auto linear = std::make_unique<LinearCpu>(std::move(backend), config);
  QWEN3VL_RETURN_IF_ERROR(linear->init());
  *out = std::move(linear);
  return Status();
}

Status create_linear_cpu(const CpuOptions& options, const LinearConfig& config,
                         std::unique_ptr<Attention>* out) {
  return detail::create_as_attention<LinearAttention>(
      out, [&](auto* made) { return create_linear_cpu(options, config, made); });
}

}  // namespace qwen3vl
