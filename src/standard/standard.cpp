// Standard attention on the CPU: validation, workspace slots and oneTBB over (sequence, head); the
// per-head math is in standard_kernel.inl, compiled once per ISA.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "qwen3vl/variants/standard.hpp"
#include "src/cpu/cpu_backend.hpp"
#include "src/cpu/kernels.hpp"

namespace qwen3vl {
namespace {

class StandardCpu final : public Attention {
 public:
  explicit StandardCpu(std::unique_ptr<detail::CpuBackend> backend)
      : backend_(std::move(backend)) {}

  Variant variant() const override { return Variant::kStandard; }
  Device device() const override { return Device::kCPU; }

  std::string description() const override {
    return "standard (cpu): scores materialised, Eigen GEMMs per (sequence, head); " +
           backend_->describe();
  }

 protected:
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    if (p.q.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                        ": the CPU standard variant needs host memory");
    AttentionParams dense_keys = p;  // query positions only move the rows' key ranges: taken
    dense_keys.q_positions = TensorView();
    QWEN3VL_RETURN_IF_ERROR(refuse_sparse_rows(dense_keys, "CPU standard"));
    const size_t slot = slot_bytes(plan->shape);
    plan->workspace_bytes = slot ? backend_->workspace_bytes(slot) : 0;
    if (plan->with_reason)
      plan->reason = description() + "; " + std::to_string(slot) + " bytes of scores per thread";
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* /*stream*/) const override {
    const AttentionShape& s = plan.shape;
    const size_t slot = slot_bytes(s);
    QWEN3VL_RETURN_IF_ERROR(backend_->check_workspace(ws, slot));
    const auto kernel = detail::isa_table<detail::StandardKernels>(backend_->isa()).head;
    const int64_t tasks = s.batch * s.heads;
    backend_->arena().execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, tasks, 1),
          [&](const tbb::blocked_range<int64_t>& range) {
            for (int64_t t = range.begin(); t != range.end(); ++t) {
              detail::StandardHeadTask task;
              task.params = &p;
              task.shape = s;
              task.b = t / s.heads;
              task.h = t % s.heads;
              task.span = sequence_span(p, task.b);
              task.k_total = p.varlen() ? task.span.k_len : p.k.shape[1];
              task.scratch = detail::CpuBackend::thread_slot(ws, slot);
              kernel(task);
            }
          },
          tbb::simple_partitioner());
    });
    return Status();
  }

 private:
  static size_t slot_bytes(const AttentionShape& s) {
    return static_cast<size_t>(detail::standard_scratch_floats(s.max_q, s.max_k, s.head_dim)) *
           sizeof(float);
  }
  std::unique_ptr<detail::CpuBackend> backend_;
};

}  // namespace

Status create_standard_cpu(const CpuOptions& options, std::unique_ptr<Attention>* out) {
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  *out = std::make_unique<StandardCpu>(std::move(backend));
  return Status();
}

}  // namespace qwen3vl
