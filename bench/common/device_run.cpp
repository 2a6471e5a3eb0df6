#include "device_run.hpp"

#include <cstdlib>

#include "qwen3vl/hardware/hardware_info.hpp"
#include "timing.hpp"

namespace qwen3vl::bench {
namespace {

class CpuRun final : public DeviceRun {
 public:
  explicit CpuRun(testing::Problem* host) : host_(host) {}
  const AttentionParams& params() const override { return host_->params; }
  void* stream() const override { return nullptr; }

  Status workspace(size_t bytes, Workspace* ws) override {
    constexpr size_t kAlign = 64;
    const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    buffer_.reset(rounded ? std::aligned_alloc(kAlign, rounded) : nullptr);
    if (rounded && !buffer_)
      return make_error(StatusCode::kOutOfMemory, "workspace of ", bytes, " bytes");
    *ws = Workspace{buffer_.get(), bytes};
    return Status();
  }

  Status time(const std::function<Status()>& call, int warmup, int repeats,
              std::vector<double>* ms) override {
    for (int r = 0; r < warmup; ++r) QWEN3VL_RETURN_IF_ERROR(call());
    ms->clear();
    for (int r = 0; r < repeats; ++r) {
      Status status;
      ms->push_back(wall_ms([&] { status = call(); }));
      QWEN3VL_RETURN_IF_ERROR(status);
    }
    return Status();
  }

  Status fetch_output(testing::Problem*) override { return Status(); }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  testing::Problem* host_;
  std::unique_ptr<void, Free> buffer_;
};

Status no_cuda() {
  return make_error(
      StatusCode::kNotImplemented,
      "device = cuda: this build has no CUDA backend (configure with -DQWEN3VL_CUDA=ON)");
}

}  // namespace

Status make_device_run(Device device, testing::Problem* host, std::unique_ptr<DeviceRun>* out) {
  if (device == Device::kCPU) {
    *out = std::make_unique<CpuRun>(host);
    return Status();
  }
#if QWEN3VL_BENCH_CUDA
  return make_cuda_run(host, out);
#else
  return no_cuda();
#endif
}

Status measure_sgemm(Device device, int threads, SgemmRate* out) {
  if (device == Device::kCPU) {
    *out = measure_cpu_sgemm(threads);
    return Status();
  }
#if QWEN3VL_BENCH_CUDA
  return measure_cuda_sgemm(out);
#else
  return no_cuda();
#endif
}

std::string device_arch(Device device, CpuIsa cpu_isa) {
  if (device == Device::kCPU) return to_string(cpu_isa);
  const auto& gpus = HardwareInfo::current().gpus;
  if (gpus.empty()) return "no gpu";
  return "sm_" + std::to_string(gpus[0].sm_major) + std::to_string(gpus[0].sm_minor);
}

}  // namespace qwen3vl::bench
