// qwen3vl-static-sparse-bench-cpu: the static-sparse CPU variant (variants/sparse.hpp) with each
// pattern at its default knobs (block 64) against dense flash2 on the same problem, in one run.
// Arguments: N (queries = keys) and causal (0: bidirectional pattern, no mask; 1: unidirectional
// pattern, causal mask). Counters: the layout's block density and dense_over_sparse, the dense
// time of the same (N, causal) in this run over this pattern's (read both from one run).
// Hq 4, Hkv 2, D 128, f32, 2 threads.
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/sparse.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {
namespace {

constexpr int kThreads = 2;

testing::ProblemSpec problem_spec(int64_t n, bool causal) {
  testing::ProblemSpec s;
  s.seq_q = s.seq_k = n;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 128;
  s.mask = causal ? MaskKind::kCausal : MaskKind::kNone;
  return s;
}

// Seconds per call of the dense runs, by (N, causal), for the ratio counter.
std::map<std::pair<int64_t, bool>, double>& dense_seconds() {
  static std::map<std::pair<int64_t, bool>, double> seconds;
  return seconds;
}

void run(benchmark::State& state, const Attention& attention, const AttentionParams& params) {
  std::vector<unsigned char> workspace(attention.workspace_size(params));
  for (auto _ : state) {
    const Status s = attention.forward(params, Workspace{workspace.data(), workspace.size()});
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      return;
    }
  }
}

void BM_DenseFlash2(benchmark::State& state) {
  const int64_t n = state.range(0);
  const bool causal = state.range(1) != 0;
  testing::Problem p(problem_spec(n, causal));
  CpuOptions options;
  options.num_threads = kThreads;
  std::unique_ptr<Attention> dense;
  throw_if_error(create_flash2_cpu(options, &dense));
  const auto start = std::chrono::steady_clock::now();
  run(state, *dense, p.params);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (state.iterations() > 0) dense_seconds()[{n, causal}] = seconds / state.iterations();
}

void BM_StaticSparse(benchmark::State& state, SparsePattern pattern) {
  const int64_t n = state.range(0);
  const bool causal = state.range(1) != 0;
  testing::Problem p(problem_spec(n, causal));
  StaticSparseConfig config;
  config.pattern = pattern;
  config.unidirectional = causal;
  CpuOptions options;
  options.num_threads = kThreads;
  std::unique_ptr<Attention> sparse;
  throw_if_error(create_static_sparse_cpu(options, config, &sparse));
  BlockLayoutData layout;
  throw_if_error(build_static_sparse_layout(config, n, n, 2, &layout));
  const auto start = std::chrono::steady_clock::now();
  run(state, *sparse, p.params);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  state.counters["density"] =
      static_cast<double>(layout.blocks(0)) / static_cast<double>(layout.row_blocks * layout.col_blocks);
  const auto dense = dense_seconds().find({n, causal});
  if (dense != dense_seconds().end() && state.iterations() > 0)
    state.counters["dense_over_sparse"] = dense->second / (seconds / state.iterations());
  state.SetLabel(config.to_string());
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "causal"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (int64_t n : {4096, 8192})
    for (int64_t causal : {0, 1}) b->Args({n, causal});
}

BENCHMARK(BM_DenseFlash2)->Apply(shapes);
BENCHMARK_CAPTURE(BM_StaticSparse, sliding_window, SparsePattern::kSlidingWindow)->Apply(shapes);
BENCHMARK_CAPTURE(BM_StaticSparse, longformer, SparsePattern::kLongformer)->Apply(shapes);
BENCHMARK_CAPTURE(BM_StaticSparse, bigbird, SparsePattern::kBigBird)->Apply(shapes);
BENCHMARK_CAPTURE(BM_StaticSparse, variable, SparsePattern::kVariable)->Apply(shapes);
BENCHMARK_CAPTURE(BM_StaticSparse, dilated, SparsePattern::kDilated)->Apply(shapes);
BENCHMARK_CAPTURE(BM_StaticSparse, fixed, SparsePattern::kFixed)->Apply(shapes);

}  // namespace
}  // namespace qwen3vl::bench

BENCHMARK_MAIN();
