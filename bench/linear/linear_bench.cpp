// qwen3vl-linear-bench: causal linear attention (elu+1, chunk 64) against causal flash2 on the
// same problem, N swept 256..16384 (B 1, D 128): the time ratio T(16384) / T(4096) (ideal 4 for
// O(N)) and the N from which linear is faster. Usage:
//   qwen3vl-linear-bench [--device cpu|cuda] [--heads H] [--kv-heads K] [--reps R]
//                        [--min-n N] [--max-n N] [--flash-max-n N]  (flash2 only up to that N; 0: none)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/timing.hpp"
#include "linear/linear_bench.hpp"
#include "qwen3vl/attention.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {
namespace {

#if !QWEN3VL_LINEAR_BENCH_CUDA
}  // namespace
bool run_linear_cuda(const LinearCase&, LinearTimes*, std::string* why) {
  *why = "this build has no CUDA";
  return false;
}
namespace {
#endif

double time_cpu(const Attention& attn, const AttentionParams& p, int reps) {
  std::vector<unsigned char> ws(attn.workspace_size(p));
  const Workspace w{ws.data(), ws.size()};
  return median_ms(reps, [&] { throw_if_error(attn.forward(p, w)); });
}

bool run_linear_cpu(const LinearCase& c, LinearTimes* t) {
  testing::ProblemSpec spec = testing::problem_spec(c.n, c.n, c.heads, c.kv_heads, c.head_dim,
                                                    MaskKind::kCausal, /*seed=*/1);
  spec.with_lse = false;
  const testing::Problem problem(spec);
  const AttentionParams& p = problem.params;
  std::unique_ptr<Attention> linear, flash;
  throw_if_error(create_linear_cpu(CpuOptions{}, LinearConfig{}, &linear));
  t->linear_ms = time_cpu(*linear, p, c.reps);
  if (c.flash) {
    throw_if_error(create_flash2_cpu(CpuOptions{}, &flash));
    t->flash_ms = time_cpu(*flash, p, c.n >= 8192 ? 1 : c.reps);
  }
  return true;
}

int64_t flag(int argc, char** argv, const char* name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoll(argv[i + 1]);
  return fallback;
}

}  // namespace
}  // namespace qwen3vl::bench

int main(int argc, char** argv) {
  using namespace qwen3vl::bench;
  std::string device = "cpu";
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--device") == 0) device = argv[i + 1];
  const bool cuda = device == "cuda";
  LinearCase base;
  base.heads = flag(argc, argv, "--heads", cuda ? 32 : 4);
  base.kv_heads = flag(argc, argv, "--kv-heads", base.heads);
  base.reps = static_cast<int>(flag(argc, argv, "--reps", cuda ? 10 : 3));
  const int64_t min_n = flag(argc, argv, "--min-n", 256);
  const int64_t max_n = flag(argc, argv, "--max-n", 16384);
  const int64_t flash_max = flag(argc, argv, "--flash-max-n", 16384);
  std::printf("device %s, B 1, Hq %lld, Hkv %lld, D 128, causal, f32; linear elu+1 chunk 64 vs flash2\n",
              device.c_str(), static_cast<long long>(base.heads), static_cast<long long>(base.kv_heads));
  std::printf("%8s %12s %12s %10s\n", "N", "linear ms", "flash2 ms", "flash/lin");
  std::map<int64_t, double> linear_ms;
  int64_t crossover = 0;
  for (int64_t n = min_n; n <= max_n; n *= 2) {
    LinearCase c = base;
    c.n = n;
    c.flash = n <= flash_max;
    LinearTimes t;
    std::string why;
    if (cuda ? !run_linear_cuda(c, &t, &why) : !run_linear_cpu(c, &t)) {
      std::fprintf(stderr, "qwen3vl-linear-bench: %s\n", why.c_str());
      return 2;
    }
    linear_ms[n] = t.linear_ms;
    if (t.flash_ms > 0) {
      std::printf("%8lld %12.3f %12.3f %10.2f\n", static_cast<long long>(n), t.linear_ms, t.flash_ms,
                  t.flash_ms / t.linear_ms);
      if (crossover == 0 && t.linear_ms < t.flash_ms) crossover = n;
    } else {
      std::printf("%8lld %12.3f %12s %10s\n", static_cast<long long>(n), t.linear_ms, "-", "-");
    }
    std::fflush(stdout);
  }
  if (linear_ms.count(4096) && linear_ms.count(16384))
    std::printf("T(16384) / T(4096) = %.2f (O(N): 4)\n", linear_ms[16384] / linear_ms[4096]);
  if (crossover) std::printf("linear faster than flash2 from N = %lld (of the sizes run)\n",
                             static_cast<long long>(crossover));
  else std::printf("linear was not faster than flash2 at any N run\n");
  return 0;
}
