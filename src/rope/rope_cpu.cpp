// The CPU RoPE applier: validation and position checks up front, then oneTBB over blocks of
// tokens; the per-token work is in rope_kernel.inl, compiled once per ISA.
#include <algorithm>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "rope_kernels.hpp"
#include "src/cpu/cpu_backend.hpp"

namespace qwen3vl::rope {
namespace {

// Below this many rotated elements one thread does the whole call (decode steps).
constexpr int64_t kSerialElements = 1 << 15;

class RopeCpu final : public RopeApplier {
 public:
  explicit RopeCpu(std::unique_ptr<qwen3vl::detail::CpuBackend> backend)
      : backend_(std::move(backend)) {}

  Device device() const override { return Device::kCPU; }

  Status apply(const RopeApplyParams& p, void* /*stream*/) const override {
    RopeApplyShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    if (p.q.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                        ": the CPU RoPE applier needs host memory");
    QWEN3VL_RETURN_IF_ERROR(check_positions(p, s));
    const detail::RopeTask task{&p, s};
    const auto kernel =
        qwen3vl::detail::isa_table<detail::RopeCpuKernels>(backend_->isa()).apply_tokens;
    const int64_t tokens = s.tokens();
    const int64_t per_token = (s.q_heads + s.k_heads) * s.rotary_dim;
    if (tokens * per_token <= kSerialElements || backend_->threads() == 1) {
      kernel(task, 0, tokens);
      return Status();
    }
    const int64_t grain = std::max<int64_t>(1, kSerialElements / std::max<int64_t>(1, per_token));
    backend_->arena().execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, tokens, grain),
          [&](const tbb::blocked_range<int64_t>& r) { kernel(task, r.begin(), r.end()); });
    });
    return Status();
  }

  Status take_error(void* /*stream*/) const override { return Status(); }

  std::string describe() const override { return "rope (cpu): " + backend_->describe(); }

 private:
  std::unique_ptr<qwen3vl::detail::CpuBackend> backend_;
};

}  // namespace

Status create_rope_cpu(const CpuOptions& options, std::unique_ptr<RopeApplier>* out) {
  std::unique_ptr<qwen3vl::detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::CpuBackend::create(options, &backend));
  *out = std::make_unique<RopeCpu>(std::move(backend));
  return Status();
}

}  // namespace qwen3vl::rope
