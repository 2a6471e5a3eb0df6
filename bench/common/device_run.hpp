// Where a benchmark problem lives while a variant runs, and the clock of that device: the host
// problem itself and a steady clock on the CPU; device copies and CUDA events on a GPU.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/core/params.hpp"
#include "qwen3vl/cpu/isa.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "sgemm.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {

class DeviceRun {
 public:
  virtual ~DeviceRun() = default;
  // The views forward() takes: the host problem's on the CPU, device copies on CUDA.
  virtual const AttentionParams& params() const = 0;
  // The `stream` argument of forward() (nullptr on the CPU).
  virtual void* stream() const = 0;
  // Scratch of `bytes` on the device, owned by this object until the next call.
  virtual Status workspace(size_t bytes, Workspace* ws) = 0;
  // Milliseconds of each of `repeats` calls after `warmup` untimed ones; stops at the first error.
  virtual Status time(const std::function<Status()>& call, int warmup, int repeats,
                      std::vector<double>* ms) = 0;
  // Copies the output back into the host problem (nothing to do on the CPU).
  virtual Status fetch_output(testing::Problem* host) = 0;
};

// Places `host` (which must outlive the result) on `device`.
Status make_device_run(Device device, testing::Problem* host, std::unique_ptr<DeviceRun>* out);

// The device's sgemm anchor: CPU sgemm in `threads` threads, or cuBLAS SGEMM (fp32, no TF32) on
// CUDA device 0.
Status measure_sgemm(Device device, int threads, SgemmRate* out);

// "avx2" style names of what runs: the CPU ISA, or "sm_90" for the first CUDA device.
std::string device_arch(Device device, CpuIsa cpu_isa);

#if QWEN3VL_BENCH_CUDA
Status make_cuda_run(testing::Problem* host, std::unique_ptr<DeviceRun>* out);
Status measure_cuda_sgemm(SgemmRate* out);
#endif

}  // namespace qwen3vl::bench
