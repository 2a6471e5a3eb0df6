// qwen3vl-attn-bench block-sparse: block-sparse attention on the CPU (random BSR layouts with the
// diagonal block kept) at densities 100%, 50%, 10% and 5% against dense flash2 on the same
// problem, in one run: the dense/sparse time ratios next to the ideal 1/density. A layout listing
// every block (100%) shows what the layout's row-block tasks cost over flash2's own tiles. Ratios
// come from wall time and from the process's CPU time per call (all threads): on a shared machine
// the second is the steadier one.
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/progress.hpp"
#include "common/timing.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "support/block_layouts.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {
namespace {

struct SparseSettings {
  int64_t n = 4096, heads = 1, head_dim = 128, block = 64;
  int threads = 2, reps = 3;
  bool causal = false;
};

double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

struct Timed {
  double wall_ms = 0, cpu_ms = 0, density = 1;  // medians per call; the layout's density
  std::string label;
};

// density_pct < 0 runs dense flash2 (no layout); otherwise the block-sparse variant. One warm-up
// call (page faults, thread start), then `reps` timed calls.
Timed time_case(const SparseSettings& s, testing::Problem* problem, int density_pct) {
  AttentionParams params = problem->params;
  testing::HostLayout layout;
  CpuOptions options;
  options.num_threads = s.threads;
  std::unique_ptr<Attention> attn;
  throw_if_error(density_pct < 0 ? create_flash2_cpu(options, &attn)
                                 : create_block_sparse_cpu(options, &attn));
  Timed t;
  if (density_pct >= 0) {
    testing::RandomLayoutSpec l;
    l.block_q = l.block_k = static_cast<int32_t>(s.block);
    l.density = density_pct / 100.0;
    l.keep_diagonal = true;
    l.seed = 42;
    layout = testing::random_layout(l, s.n, s.n);
    params.block_layout = layout.layout;
    t.density = block_layout_density(layout.layout, s.n, s.n);
  }
  throw_if_error(attn->supports(params));
  std::vector<char> ws(attn->workspace_size(params));
  const auto call = [&] {
    throw_if_error(attn->forward(params, Workspace{ws.data(), ws.size()}, nullptr));
  };
  call();
  std::vector<double> wall, cpu;
  for (int r = 0; r < s.reps; ++r) {
    const double cpu0 = process_cpu_ms();
    wall.push_back(wall_ms(call));
    cpu.push_back(process_cpu_ms() - cpu0);
  }
  t.wall_ms = median(wall);
  t.cpu_ms = median(cpu);
  t.label = attn->describe().substr(0, attn->describe().find(';'));
  return t;
}

}  // namespace

int block_sparse_routine(const std::vector<std::string>& args) {
  SparseSettings s;
  ArgParser parser(
      "block-sparse",
      R"(Block-sparse attention on the CPU (random BSR layouts, the diagonal block kept, seed 42) at
densities 100 / 50 / 10 / 5% against dense flash2 on the same problem (Hq = Hkv, f32), in one
run: medians of --reps calls after a warm-up, wall clock and process CPU time per call (all
threads; the steadier figure on a shared machine), and dense/sparse ratios of both next to the
ideal 1/density (was qwen3vl-sparse-bench-cpu, a Google Benchmark binary; the figures in
docs/performance.md used --n 16384).)");
  parser.add_int("--n", &s.n, 1, int64_t(1) << 20, "queries = keys");
  parser.add_int("--heads", &s.heads, 1, 256, "Hq = Hkv");
  parser.add_int("--head-dim", &s.head_dim, 1, 256, "head dim");
  parser.add_int("--block", &s.block, 16, 128, "layout block_q = block_k");
  parser.add_int("--threads", &s.threads, 1, 1024, "CPU threads");
  parser.add_int("--reps", &s.reps, 1, 10000, "timed calls per case");
  parser.add_switch("--causal", &s.causal, "causal mask");
  return run_routine(parser, args, [&](Report& report) {
    testing::ProblemSpec spec;
    spec.seq_q = spec.seq_k = s.n;
    spec.heads = spec.kv_heads = s.heads;
    spec.head_dim = s.head_dim;
    spec.mask = s.causal ? MaskKind::kCausal : MaskKind::kNone;
    testing::Problem problem(spec);
    const std::vector<int> densities = {100, 50, 10, 5};
    Progress progress("block-sparse", 1 + densities.size());
    progress.start("dense flash2");
    const Timed dense = time_case(s, &problem, -1);
    progress.erase();
    std::printf(
        "N %lld, H %lld, D %lld, block %lld, %d threads, %s, median of %d: dense flash2 "
        "%.1f ms wall, %.1f ms CPU\n",
        static_cast<long long>(s.n), static_cast<long long>(s.heads),
        static_cast<long long>(s.head_dim), static_cast<long long>(s.block), s.threads,
        s.causal ? "causal" : "non-causal", s.reps, dense.wall_ms, dense.cpu_ms);
    report.add({{"case", "dense"},
                {"density", 1.0},
                {"wall_ms", dense.wall_ms},
                {"cpu_ms", dense.cpu_ms},
                {"kernel", dense.label}});
    for (int pct : densities) {
      progress.start("block_sparse, density " + std::to_string(pct) + "%");
      const Timed t = time_case(s, &problem, pct);
      progress.erase();
      const std::string name = "layout_density_" + std::to_string(pct) + "%";
      std::printf(
          "  %-20s density %.4f (ideal %5.2fx) %9.1f ms wall (dense/sparse %5.2fx) %9.1f "
          "ms CPU (%5.2fx)\n",
          name.c_str(), t.density, 1.0 / t.density, t.wall_ms, dense.wall_ms / t.wall_ms, t.cpu_ms,
          dense.cpu_ms / t.cpu_ms);
      std::fflush(stdout);
      report.add({{"case", name},
                  {"density", t.density},
                  {"wall_ms", t.wall_ms},
                  {"cpu_ms", t.cpu_ms},
                  {"dense_over_sparse_wall", dense.wall_ms / t.wall_ms},
                  {"dense_over_sparse_cpu", dense.cpu_ms / t.cpu_ms},
                  {"kernel", t.label}});
    }
    return 0;
  });
}

}  // namespace qwen3vl::bench
