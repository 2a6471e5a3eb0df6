// qwen3vl-attn-bench static-sparse: the static-sparse CPU variant (variants/static_sparse.hpp),
// each pattern at its default knobs (block 64), against dense flash2 on the same problem in one
// run: the layout's block density and dense time / pattern time.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/progress.hpp"
#include "common/timing.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/static_sparse.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {
namespace {

struct StaticSettings {
  std::vector<int64_t> lens = {4096, 8192};
  std::vector<std::string> masks = {"none", "causal"};
  int64_t heads = 4, kv_heads = 2, head_dim = 128;
  int threads = 2, reps = 3;
};

// Median ms of `reps` calls after one warm-up.
double time_ms(const Attention& attention, const AttentionParams& params, int reps) {
  std::vector<unsigned char> workspace(attention.workspace_size(params));
  return median_ms(reps, [&] {
    throw_if_error(attention.forward(params, Workspace{workspace.data(), workspace.size()}));
  });
}

const std::vector<std::pair<const char*, SparsePattern>>& patterns() {
  static const std::vector<std::pair<const char*, SparsePattern>> all = {
      {"sliding_window", SparsePattern::kSlidingWindow},
      {"longformer", SparsePattern::kLongformer},
      {"bigbird", SparsePattern::kBigBird},
      {"variable", SparsePattern::kVariable},
      {"dilated", SparsePattern::kDilated},
      {"fixed", SparsePattern::kFixed}};
  return all;
}

}  // namespace

int static_sparse_routine(const std::vector<std::string>& args) {
  StaticSettings s;
  ArgParser parser(
      "static-sparse",
      R"(The static-sparse CPU variant with each pattern at its default knobs (block 64) against dense
flash2 on the same problem (f32), in one run: per (N, mask), the layout's block density and
dense_over_sparse = the dense time of the same (N, mask) over the pattern's; wall clock, median
of --reps calls after a warm-up. Mask none runs the bidirectional pattern, causal the
unidirectional one (was qwen3vl-static-sparse-bench-cpu, a Google Benchmark binary).)");
  parser.add_int_list("--lens", &s.lens, 64, int64_t(1) << 20, "N (queries = keys)");
  parser.add_word_list("--masks", &s.masks, {"none", "causal"}, "masks to run");
  parser.add_int("--heads", &s.heads, 1, 1024, "query heads");
  parser.add_int("--kv-heads", &s.kv_heads, 1, 1024, "KV heads (must divide --heads)");
  parser.add_int("--head-dim", &s.head_dim, 1, 256, "head dim");
  parser.add_int("--threads", &s.threads, 1, 1024, "CPU threads");
  parser.add_int("--reps", &s.reps, 1, 10000, "timed calls per case");
  return run_routine(parser, args, [&](Report& report) {
    if (s.heads % s.kv_heads != 0)
      return usage_error("static-sparse",
                         make_error(StatusCode::kInvalidArgument, "--kv-heads = ", s.kv_heads,
                                    ": must divide --heads = ", s.heads));
    CpuOptions options;
    options.num_threads = s.threads;
    std::printf("%-16s %7s %-6s %10s %9s %10s  %s\n", "pattern", "N", "mask", "ms", "density",
                "dense/pat", "config");
    Progress progress("static-sparse", s.lens.size() * s.masks.size() * (1 + patterns().size()));
    for (int64_t n : s.lens)
      for (const std::string& mask : s.masks) {
        const bool causal = mask == "causal";
        testing::ProblemSpec spec;
        spec.seq_q = spec.seq_k = n;
        spec.heads = s.heads;
        spec.kv_heads = s.kv_heads;
        spec.head_dim = s.head_dim;
        spec.mask = causal ? MaskKind::kCausal : MaskKind::kNone;
        testing::Problem p(spec);
        std::unique_ptr<Attention> dense;
        throw_if_error(create_flash2_cpu(options, &dense));
        progress.start("dense flash2, N " + std::to_string(n) + " " + mask);
        const double dense_ms = time_ms(*dense, p.params, s.reps);
        progress.erase();
        std::printf("%-16s %7lld %-6s %10.2f %9.4f %10.2f\n", "dense flash2",
                    static_cast<long long>(n), mask.c_str(), dense_ms, 1.0, 1.0);
        report.add({{"pattern", "dense"},
                    {"n", n},
                    {"mask", mask},
                    {"ms", dense_ms},
                    {"density", 1.0},
                    {"dense_over_sparse", 1.0}});
        for (const auto& [name, pattern] : patterns()) {
          StaticSparseConfig config;
          config.pattern = pattern;
          config.unidirectional = causal;
          std::unique_ptr<Attention> sparse;
          throw_if_error(create_static_sparse_cpu(options, config, &sparse));
          BlockLayoutData layout;
          throw_if_error(build_static_sparse_layout(config, n, n, s.kv_heads, &layout));
          const double density = static_cast<double>(layout.blocks(0)) /
                                 static_cast<double>(layout.row_blocks * layout.col_blocks);
          progress.start(std::string(name) + ", N " + std::to_string(n) + " " + mask);
          const double ms = time_ms(*sparse, p.params, s.reps);
          progress.erase();
          std::printf("%-16s %7lld %-6s %10.2f %9.4f %10.2f  %s\n", name, static_cast<long long>(n),
                      mask.c_str(), ms, density, dense_ms / ms, config.to_string().c_str());
          std::fflush(stdout);
          report.add({{"pattern", name},
                      {"n", n},
                      {"mask", mask},
                      {"ms", ms},
                      {"density", density},
                      {"dense_over_sparse", dense_ms / ms},
                      {"config", config.to_string()}});
        }
      }
    return 0;
  });
}

}  // namespace qwen3vl::bench
