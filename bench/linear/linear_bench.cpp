// qwen3vl-attn-bench linear: causal linear attention (elu+1, chunk 64) against causal flash2 on the
// same problem, N swept 256..16384 (B 1, D 128): the time ratio T(16384) / T(4096) (ideal 4 for
// O(N)) and the N from which linear is faster. CPU here, CUDA in linear_bench_cuda.cpp.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/timing.hpp"
#include "linear/linear_bench.hpp"
#include "qwen3vl/attention.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {
namespace {

#if !QWEN3VL_BENCH_CUDA
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

}  // namespace
}  // namespace qwen3vl::bench

namespace qwen3vl::bench {

int linear_routine(const std::vector<std::string>& args) {
  std::string device = "cpu";
  int64_t heads = 0, kv_heads = 0, min_n = 256, max_n = 16384, flash_max = 16384;
  int reps = 0;
  ArgParser parser(
      "linear",
      R"(Causal linear attention (elu+1, chunk 64, f32, B 1, D 128) against causal flash2 on the same
problem, N doubling from --min-n to --max-n: the time ratio T(16384) / T(4096) (ideal 4 for O(N))
and the N from which linear is faster (was qwen3vl-linear-bench). cpu: wall clock, median of
--reps after a warm-up (flash2 once from N 8192); cuda: CUDA events, median of --reps single calls
after one checked call.)");
  parser.add_choice("--device", &device, {"cpu", "cuda"}, "where it runs");
  parser.add_int("--heads", &heads, 0, 1024, "query heads (0: 4 on the CPU, 32 on CUDA)");
  parser.add_int("--kv-heads", &kv_heads, 0, 1024, "KV heads (0: as many as --heads)");
  parser.add_int("--reps", &reps, 0, 100000, "timed calls (0: 3 on the CPU, 10 on CUDA)");
  parser.add_int("--min-n", &min_n, 1, int64_t(1) << 22, "smallest N");
  parser.add_int("--max-n", &max_n, 1, int64_t(1) << 22, "largest N");
  parser.add_int("--flash-max-n", &flash_max, 0, int64_t(1) << 22,
                 "flash2 only up to this N (0: none)");
  return run_routine(parser, args, [&](Report& report) {
    const bool cuda = device == "cuda";
    LinearCase base;
    base.heads = heads ? heads : (cuda ? 32 : 4);
    base.kv_heads = kv_heads ? kv_heads : base.heads;
    base.reps = reps ? reps : (cuda ? 10 : 3);
    if (base.heads % base.kv_heads != 0)
      return usage_error("linear",
                         make_error(StatusCode::kInvalidArgument, "--kv-heads = ", base.kv_heads,
                                    ": must divide --heads = ", base.heads));
    std::printf(
        "device %s, B 1, Hq %lld, Hkv %lld, D 128, causal, f32; linear elu+1 chunk 64 vs flash2\n",
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
        std::fprintf(stderr, "qwen3vl-attn-bench linear: %s\n", why.c_str());
        return kExitUsage;
      }
      linear_ms[n] = t.linear_ms;
      report.add(
          {{"device", device},
           {"n", n},
           {"heads", c.heads},
           {"kv_heads", c.kv_heads},
           {"linear_ms", t.linear_ms},
           {"flash2_ms", t.flash_ms > 0 ? Value(t.flash_ms) : Value()},
           {"flash_over_linear", t.flash_ms > 0 ? Value(t.flash_ms / t.linear_ms) : Value()}});
      if (t.flash_ms > 0) {
        std::printf("%8lld %12.3f %12.3f %10.2f\n", static_cast<long long>(n), t.linear_ms,
                    t.flash_ms, t.flash_ms / t.linear_ms);
        if (crossover == 0 && t.linear_ms < t.flash_ms) crossover = n;
      } else {
        std::printf("%8lld %12.3f %12s %10s\n", static_cast<long long>(n), t.linear_ms, "-", "-");
      }
      std::fflush(stdout);
    }
    if (linear_ms.count(4096) && linear_ms.count(16384)) {
      std::printf("T(16384) / T(4096) = %.2f (O(N): 4)\n", linear_ms[16384] / linear_ms[4096]);
      report.context("t16384_over_t4096", linear_ms[16384] / linear_ms[4096]);
    }
    if (crossover)
      std::printf("linear faster than flash2 from N = %lld (of the sizes run)\n",
                  static_cast<long long>(crossover));
    else
      std::printf("linear was not faster than flash2 at any N run\n");
    report.context("crossover_n", crossover ? Value(crossover) : Value());
    return 0;
  });
}

}  // namespace qwen3vl::bench
