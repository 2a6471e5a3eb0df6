#include "sgemm.hpp"

#include <cmath>
#include <random>
#include <sstream>

#include "timing.hpp"

#if QWEN3VL_BENCH_OPENBLAS
#include <cblas.h>
#else
#include <tbb/task_arena.h>

#include "eigen_sgemm.hpp"
#include "qwen3vl/cpu/isa.hpp"
#endif

namespace qwen3vl::bench {

#if QWEN3VL_BENCH_OPENBLAS

struct CpuSgemm::Impl {};

void CpuSgemm::run() {
  openblas_set_num_threads(threads_);
  const int n = static_cast<int>(n_);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a_.data(), n, b_.data(), n,
              0.0f, c_.data(), n);
}

std::string CpuSgemm::source() {
  // The config string starts "OpenBLAS <version> ..."; the core name says which kernels run.
  std::istringstream config(openblas_get_config());
  std::string name, version;
  config >> name >> version;
  return name + " " + version + " (" + openblas_get_corename() + " kernels)";
}

#else

namespace {
// The widest Eigen build this CPU runs (CPUID only: the anchor is the machine's, whatever ISA
// the attention kernels were forced to).
CpuIsa eigen_isa() {
  for (CpuIsa isa : {CpuIsa::kAvx512, CpuIsa::kAvx2})
    if (cpu_isa_compiled(isa) && cpu_supports(CpuInfo::current(), isa)) return isa;
  return CpuIsa::kScalar;
}
}  // namespace

struct CpuSgemm::Impl {
  explicit Impl(int threads) : arena(threads) {}
  tbb::task_arena arena;
};

void CpuSgemm::run() {
  eigen_sgemm(eigen_isa(), impl_->arena, a_.data(), b_.data(), c_.data(), n_);
}

std::string CpuSgemm::source() {
  return std::string("Eigen 3.4 GEMM over oneTBB (") + to_string(eigen_isa()) + ")";
}

#endif

CpuSgemm::CpuSgemm(int64_t n, int threads) : n_(n), threads_(threads) {
  const size_t elements = static_cast<size_t>(n * n);
  std::mt19937 rng(12345);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  a_.resize(elements);
  b_.resize(elements);
  c_.resize(elements);
  for (size_t i = 0; i < elements; ++i) {
    a_[i] = dist(rng);
    b_[i] = dist(rng);
  }
#if !QWEN3VL_BENCH_OPENBLAS
  impl_ = std::make_unique<Impl>(threads);
#endif
}

CpuSgemm::~CpuSgemm() = default;

int64_t sgemm_size_for(double gflops, double seconds, int64_t lo, int64_t hi) {
  const double n = std::cbrt(gflops * 1e9 * seconds / 2.0);
  int64_t rounded = static_cast<int64_t>(std::lround(n / 256.0)) * 256;
  return rounded < lo ? lo : rounded > hi ? hi : rounded;
}

SgemmRate measure_cpu_sgemm(int threads, double target_seconds, int runs) {
  double estimate = 0.0;
  {
    CpuSgemm probe(1024, threads);
    probe.run();  // wakes the thread pool
    estimate = probe.flops() / (wall_ms([&] { probe.run(); }) * 1e6);
  }
  CpuSgemm gemm(sgemm_size_for(estimate, target_seconds), threads);
  gemm.run();
  std::vector<double> rates;
  for (int r = 0; r < runs; ++r)
    rates.push_back(gemm.flops() / (wall_ms([&] { gemm.run(); }) * 1e6));
  return SgemmRate{median(rates), gemm.n(), threads, CpuSgemm::source()};
}

}  // namespace qwen3vl::bench
