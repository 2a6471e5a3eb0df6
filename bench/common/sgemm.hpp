// The machine's sgemm rate: the anchor every attention rate is quoted against (attention and sgemm
// do the same multiply-adds, so their ratio says how close a kernel runs to the machine's dense
// rate), measured in the same process with the same thread count. OpenBLAS when the build found it,
// else Eigen's GEMM split over oneTBB.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qwen3vl::bench {

struct SgemmRate {
  double gflops = 0.0;  // median over the timed runs
  int64_t n = 0;        // square size used
  int threads = 0;      // 0 on a GPU
  std::string source;   // which GEMM, e.g. "OpenBLAS 0.3.21 (Cooperlake kernels)"
};

// C = A B on square fp32 matrices with seeded random inputs, in `threads` threads.
class CpuSgemm {
 public:
  CpuSgemm(int64_t n, int threads);
  ~CpuSgemm();
  void run();  // one product
  int64_t n() const { return n_; }
  double flops() const { return 2.0 * static_cast<double>(n_) * n_ * n_; }
  // Which GEMM runs, e.g. "OpenBLAS 0.3.21 (Cooperlake kernels)" or "Eigen 3.4 GEMM over oneTBB
  // (avx2)".
  static std::string source();

 private:
  struct Impl;
  int64_t n_;
  int threads_;
  std::vector<float> a_, b_, c_;
  std::unique_ptr<Impl> impl_;
};

// Square size (a multiple of 256 in [lo, hi]) whose product takes about `seconds` at `gflops`.
int64_t sgemm_size_for(double gflops, double seconds, int64_t lo = 256, int64_t hi = 8192);

// Calibrates the size at n = 1024 so one product takes about `target_seconds`, then returns the
// median rate of `runs` products after one warm-up.
SgemmRate measure_cpu_sgemm(int threads, double target_seconds = 0.5, int runs = 3);

}  // namespace qwen3vl::bench
