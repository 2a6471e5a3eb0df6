// Mixture-of-heads on the CPU against dense CPU flash2, measured in the same run: T tokens
// (default 4096), Hq 32 / Hkv 8, D 128, causal, f32, with 25/50/75/100% of the heads routed per
// token (top_k of the MoH router over random logits). The time should fall with the active
// fraction; at 100% the difference to dense is the gather/scatter overhead.
//   qwen3vl-moh-bench [--tokens 4096 --heads 32 --kv-heads 8 --head-dim 128 --reps 3
//                      --threads 0 --causal 1]
#include <memory>

#include "moh_bench_common.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "support/problem.hpp"

using namespace qwen3vl;

int main(int argc, char** argv) {
  const bench::MoHBenchOptions o = bench::parse_moh_options(argc, argv);
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
  std::printf("%-22s %10s %10s %12s\n", "case", "ms", "vs dense", "dense GFLOP/s");
  std::printf("%-22s %10.1f %10.3f %12.1f\n", "dense flash2", dense_ms, 1.0,
              bench::dense_flops(o) / dense_ms * 1e-6);
  for (int percent : o.percents) {
    const bench::BenchRouting r = bench::bench_routing(o, percent, 7);
    const double ms = time([&] { throw_if_error(moh->forward(p, r.view(), w)); });
    char name[64];
    std::snprintf(name, sizeof name, "moh %d%% heads", percent);
    // Rate counted on the computed rows only (the active fraction of the dense FLOPs).
    std::printf("%-22s %10.1f %10.3f %12.1f\n", name, ms, ms / dense_ms,
                bench::dense_flops(o) * percent / 100.0 / ms * 1e-6);
  }
  return 0;
}
