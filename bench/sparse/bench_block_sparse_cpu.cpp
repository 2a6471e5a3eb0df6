// qwen3vl-sparse-bench-cpu: block-sparse attention (random BSR layouts with the diagonal block
// kept) at densities 50%, 10% and 5% against dense flash2 on the same problem, in one run; a
// summary gives the dense/sparse time ratios next to the ideal 1/density. A layout listing every
// block (density 100%) shows what the layout's row-block tasks cost over flash2's own tiles.
// Ratios come from wall time and from the process's CPU time per call (all threads): on a shared
// machine the second is the steadier one.
//
// Own flags (removed before Google Benchmark sees argv):
//   --n=N         queries = keys (default 4096; the documented figures use 16384)
//   --heads=H     Hq = Hkv (default 1)
//   --head-dim=D  (default 128)
//   --block=B     layout block_q = block_k (default 64)
//   --threads=T   CPU threads (default 2)
//   --causal      causal mask (default: none)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/timing.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "support/block_layouts.hpp"
#include "support/problem.hpp"

namespace qwen3vl::bench {
namespace {

struct SparseSettings {
  int64_t n = 4096, heads = 1, head_dim = 128, block = 64;
  int threads = 2;
  bool causal = false;
};

// Takes the integer flag --name=value out of argv (0 < value <= limit); false on a bad value.
bool take_int(int* argc, char** argv, const std::string& name, int64_t limit, int64_t* value) {
  const std::string prefix = "--" + name + "=";
  int kept = 1;
  bool ok = true;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(prefix, 0) != 0) {
      argv[kept++] = argv[i];
      continue;
    }
    char* end = nullptr;
    const long long x = std::strtoll(arg.c_str() + prefix.size(), &end, 10);
    ok = ok && *end == '\0' && x > 0 && x <= limit;
    if (ok)
      *value = x;
    else
      std::fprintf(stderr, "%s: allowed 1..%lld\n", arg.c_str(), static_cast<long long>(limit));
  }
  *argc = kept;
  return ok;
}

bool take_switch(int* argc, char** argv, const std::string& name) {
  bool found = false;
  int kept = 1;
  for (int i = 1; i < *argc; ++i)
    if (argv[i] == "--" + name)
      found = true;
    else
      argv[kept++] = argv[i];
  *argc = kept;
  return found;
}

struct Samples {
  std::vector<double> wall_ms, cpu_ms;  // per call
};
std::map<std::string, Samples>& samples() {
  static std::map<std::string, Samples> all;
  return all;
}

double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

testing::Problem& problem(const SparseSettings& s) {
  static std::unique_ptr<testing::Problem> p;
  if (!p) {
    testing::ProblemSpec spec;
    spec.seq_q = spec.seq_k = s.n;
    spec.heads = spec.kv_heads = s.heads;
    spec.head_dim = s.head_dim;
    spec.mask = s.causal ? MaskKind::kCausal : MaskKind::kNone;
    p = std::make_unique<testing::Problem>(spec);
  }
  return *p;
}

// density_pct < 0 runs dense flash2 (no layout); otherwise the block-sparse variant.
void attention(benchmark::State& state, const SparseSettings& s, int density_pct,
               const std::string& name) {
  testing::Problem& p = problem(s);
  AttentionParams params = p.params;
  testing::HostLayout layout;
  CpuOptions options;
  options.num_threads = s.threads;
  std::unique_ptr<Attention> attn;
  Status st =
      density_pct < 0 ? create_flash2_cpu(options, &attn) : create_block_sparse_cpu(options, &attn);
  if (density_pct >= 0) {
    testing::RandomLayoutSpec l;
    l.block_q = l.block_k = static_cast<int32_t>(s.block);
    l.density = density_pct / 100.0;
    l.keep_diagonal = true;
    l.seed = 42;
    layout = testing::random_layout(l, s.n, s.n);
    params.block_layout = layout.layout;
  }
  std::vector<char> ws;
  if (st.ok()) st = attn->supports(params);
  if (st.ok()) ws.resize(attn->workspace_size(params));
  const auto call = [&] { st = attn->forward(params, Workspace{ws.data(), ws.size()}, nullptr); };
  if (st.ok()) call();  // warm-up: page faults, thread start
  if (!st.ok()) {
    state.SkipWithError(st.to_string().c_str());
    return;
  }
  Samples& mine = samples()[name];
  for (auto _ : state) {
    const double cpu0 = process_cpu_ms();
    const double ms = wall_ms(call);
    mine.cpu_ms.push_back(process_cpu_ms() - cpu0);
    mine.wall_ms.push_back(ms);
    state.SetIterationTime(ms / 1e3);
  }
  const double density = density_pct < 0 ? 1.0 : block_layout_density(layout.layout, s.n, s.n);
  state.counters["density"] = density;
  state.counters["FLOP"] = benchmark::Counter(4.0 * density * s.n * s.n * s.head_dim * s.heads,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(attn->describe().substr(0, attn->describe().find(';')));
}

void print_summary(const SparseSettings& s) {
  const auto& all = samples();
  const auto dense = all.find("dense");
  if (dense == all.end()) return;
  const double wall = median(dense->second.wall_ms), cpu = median(dense->second.cpu_ms);
  std::printf(
      "\nN %lld, H %lld, D %lld, block %lld, %d threads, %s: dense flash2 %.1f ms wall, "
      "%.1f ms CPU\n",
      static_cast<long long>(s.n), static_cast<long long>(s.heads),
      static_cast<long long>(s.head_dim), static_cast<long long>(s.block), s.threads,
      s.causal ? "causal" : "non-causal", wall, cpu);
  for (const auto& [name, x] : all)
    if (name != "dense")
      std::printf("  %-20s %9.1f ms wall (dense/sparse %5.2fx) %9.1f ms CPU (%5.2fx)\n",
                  name.c_str(), median(x.wall_ms), wall / median(x.wall_ms), median(x.cpu_ms),
                  cpu / median(x.cpu_ms));
}

}  // namespace
}  // namespace qwen3vl::bench

int main(int argc, char** argv) {
  using namespace qwen3vl::bench;
  SparseSettings s;
  int64_t threads = s.threads;
  const bool ok = take_int(&argc, argv, "n", 1 << 20, &s.n) &&
                  take_int(&argc, argv, "heads", 256, &s.heads) &&
                  take_int(&argc, argv, "head-dim", 256, &s.head_dim) &&
                  take_int(&argc, argv, "block", 128, &s.block) &&
                  take_int(&argc, argv, "threads", 1024, &threads);
  s.threads = static_cast<int>(threads);
  s.causal = take_switch(&argc, argv, "causal");
  if (!ok) return 2;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  for (int pct : {-1, 100, 50, 10, 5}) {
    const std::string name = pct < 0 ? "dense" : "layout_density_" + std::to_string(pct) + "%";
    benchmark::RegisterBenchmark(("block_sparse/" + name).c_str(), attention, s, pct, name)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary(s);
  return 0;
}
