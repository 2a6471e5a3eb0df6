// qwen3vl-attn-bench moh: mixture-of-heads against dense flash2, measured in the same run (CPU
// here, CUDA in bench_moh_cuda.cpp): T tokens
// (default 4096), Hq 32 / Hkv 8, D 128, causal, f32, with 25/50/75/100% of the heads routed per
// token (top_k of the MoH router over random logits). The time should fall with the active
// fraction; at 100% the difference to dense is the gather/scatter overhead.
#include <memory>

#include "cli/routines.hpp"
#include "moh_bench_common.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {

#if !QWEN3VL_BENCH_CUDA
int run_moh_cuda(MoHBenchOptions, Report*) { return no_cuda_error("moh"); }
#endif

int run_moh_cpu(const MoHBenchOptions& o, Report* report) {
  CpuOptions cpu;
  cpu.num_threads = o.threads;
  std::unique_ptr<Attention> dense;
  throw_if_error(create_flash2_cpu(cpu, &dense));
  std::unique_ptr<MixtureOfHeadsAttention> moh;
  throw_if_error(create_mixture_of_heads_cpu(cpu, MoHConfig{o.heads, 0, o.heads}, &moh));
  std::printf("# %s\n", moh->describe().c_str());
  testing::ProblemSpec spec =
      testing::problem_spec(o.tokens, o.tokens, o.heads, o.kv_heads, o.head_dim,
                            o.causal ? MaskKind::kCausal : MaskKind::kNone, /*seed=*/1);
  spec.with_lse = false;
  const testing::Problem problem(spec);
  const AttentionParams& p = problem.params;
  std::vector<unsigned char> ws(std::max(dense->workspace_size(p), moh->workspace_size(p)));
  const Workspace w{ws.data(), ws.size()};
  const auto time = [&](auto&& call) { return bench::median_ms(o.reps, call); };
  const double dense_ms = time([&] { throw_if_error(dense->forward(p, w)); });
  std::printf("T %lld Hq %lld Hkv %lld D %lld %s f32, threads %d, median of %d\n",
              static_cast<long long>(o.tokens), static_cast<long long>(o.heads),
              static_cast<long long>(o.kv_heads), static_cast<long long>(o.head_dim),
              o.causal ? "causal" : "no mask", o.threads, o.reps);
  const MoHTable table{"cpu", 1, "dense GFLOP/s", 12, 1, 1e-6};
  print_moh_header(table);
  moh_row(report, table, "dense flash2", 100, dense_ms, dense_ms, o);
  for (int percent : o.percents) {
    const BenchRouting r = bench_routing(o, percent, 7);
    const double ms = time([&] { throw_if_error(moh->forward(p, r.view(), w)); });
    moh_row(report, table, moh_case_name(percent), percent, ms, dense_ms, o);
  }
  return 0;
}

int moh_routine(const std::vector<std::string>& args) {
  MoHBenchOptions o;
  std::string device = "cpu";
  int causal = 1, reps = 0;
  ArgParser parser(
      "moh", R"(Mixture-of-heads against dense flash2 on the same problem, in the same run (was
qwen3vl-moh-bench / qwen3vl-moh-bench-cuda): T tokens, Hq / Hkv heads, D, f32, causal unless
--causal 0, routings from uniform router logits with top_k = 25 / 50 / 75 / 100% of the heads.
The time should fall with the active fraction; at 100% the difference to dense is the
gather/scatter overhead. Rates count the computed rows only. cpu: wall clock, median of --reps
after a warm-up (default 3); cuda: CUDA events, median of --reps single calls after 2 warm-ups
(default and least 10).)");
  parser.add_choice("--device", &device, {"cpu", "cuda"}, "where it runs");
  parser.add_int("--tokens", &o.tokens, 1, int64_t(1) << 20, "tokens T");
  parser.add_int("--heads", &o.heads, 1, 1024, "query heads");
  parser.add_int("--kv-heads", &o.kv_heads, 1, 1024, "KV heads");
  parser.add_int("--head-dim", &o.head_dim, 1, 256, "head dim");
  parser.add_int("--reps", &reps, 0, 100000, "timed calls (0: 3 on the CPU, 10 on CUDA)");
  parser.add_int("--threads", &o.threads, 0, 1024, "CPU threads (0: physical cores)");
  parser.add_int("--causal", &causal, 0, 1, "causal mask");
  return run_routine(parser, args, [&](Report& report) {
    o.causal = causal != 0;
    if (o.heads % o.kv_heads != 0)
      return usage_error("moh", make_error(StatusCode::kInvalidArgument, "--kv-heads = ",
                                           o.kv_heads, ": must divide --heads = ", o.heads));
    if (reps > 0) o.reps = reps;
    return device == "cuda" ? run_moh_cuda(o, &report) : run_moh_cpu(o, &report);
  });
}

}  // namespace qwen3vl::bench
