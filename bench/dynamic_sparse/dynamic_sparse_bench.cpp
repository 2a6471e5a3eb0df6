// qwen3vl-attn-bench dynamic-sparse: dynamic sparse prefill (variants/dynamic_sparse.hpp) against
// dense CPU flash2 in the same run: total time (routing + sparse attention), routing time alone,
// the kept density, and the recall (the dense softmax mass on the kept keys, float64, averaged over
// sampled rows) with the output error of those rows against float64 dense attention.
//
// Inputs have structure, since random Q/K give flat attention and meaningless recall. Per KV head,
// in logit units (scale 1/sqrt(D)):
//   - noise: every q and k component N(0, 0.5^2)  (q.k/sqrt(D) ~ N(0, 0.06));
//   - clusters: keys come in segments of 512 tokens, each drawn from one of 16 random directions;
//     each run of 256 queries draws one direction among the segments it can see: +4 on a match;
//   - heavy columns: the first 4 keys and 16 random keys carry a direction every query has: +6;
//   - a local band: 8 sinusoid pairs of position (periods 64 .. 8192 tokens), +4 at distance 0.
// Causal masks, Hq query heads sharing Hkv KV heads (the group shares one routed layout).
//
// --device cuda (CUDA builds): block top-k on the GPU vs the CUDA flash2 object, CUDA-event times.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/timing.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "structured_problem.hpp"

namespace qwen3vl::bench {
namespace {

double time_forward(const Attention& a, const AttentionParams& p, int reps,
                    std::vector<unsigned char>* ws) {
  ws->resize(a.workspace_size(p));
  return median_ms(
      reps,
      [&] {
        throw_if_error(a.forward(p, Workspace{ws->data(), ws->size()}));
      },
      /*warmups=*/0);
}

}  // namespace

#if !QWEN3VL_BENCH_CUDA
int run_cuda(const Options&, Inputs&, const std::vector<SampledRow>&, Report*) {
  return no_cuda_error("dynamic-sparse");
}
#endif

namespace {

int run(const Options& o, Report* report) {
  Inputs in = make_inputs(o);
  const std::vector<SampledRow> rows = sample_rows(in, o);
  if (o.device == "cuda") return run_cuda(o, in, rows, report);
  CpuOptions cpu;
  cpu.num_threads = o.threads;
  std::vector<unsigned char> ws;

  std::unique_ptr<Attention> dense;
  throw_if_error(create_flash2_cpu(cpu, &dense));
  const double dense_ms = time_forward(*dense, in.params, o.reps, &ws);
  const Quality dense_q = quality(in, o, rows, [](const SampledRow&, int64_t) { return true; });
  std::vector<Row> table;
  table.push_back({"flash2 (dense)", "-", dense_ms, 0.0, 1.0, dense_q});

  std::vector<std::pair<DynamicSparseConfig, std::string>> configs;
  const auto want = [&](const char* m) { return o.methods.find(m) != std::string::npos; };
  if (want("block"))
    for (int k : {8, 32}) {
      DynamicSparseConfig c;
      c.method = DynamicSparseMethod::kBlockTopK;
      c.top_k_blocks = k;
      configs.emplace_back(c, std::to_string(k) + " blocks + 1 sink + 1 local (64x64)");
    }
  if (want("vs"))
    for (auto [vert, sl] : {std::pair<int64_t, int64_t>{1000, 6096}, {300, 600}}) {
      DynamicSparseConfig c;
      c.method = DynamicSparseMethod::kVerticalSlash;
      c.vertical = vert;
      c.slash = sl;
      configs.emplace_back(
          c, std::to_string(vert) + " columns + " + std::to_string(sl) + " diagonals");
    }
  if (want("exact"))
    for (int64_t k : {256, 2048}) {
      DynamicSparseConfig c;
      c.method = DynamicSparseMethod::kExactTopK;
      c.top_k = k;
      configs.emplace_back(c, "top " + std::to_string(k) + " keys");
    }

  for (const auto& [config, budget] : configs) {
    std::unique_ptr<DynamicSparseAttention> a;
    throw_if_error(create_dynamic_sparse_cpu(cpu, config, &a));
    Row row{to_string(config.method), budget, time_forward(*a, in.params, o.reps, &ws), 0.0,
            a->last_density(),        {}};
    if (config.method == DynamicSparseMethod::kExactTopK) {
      // The kept keys of a row: its top-k logits (float64 ranks; float32 may differ at the edge).
      row.q = quality(in, o, rows, [&](const SampledRow& r, int64_t j) {
        std::vector<double> sorted(r.prob);
        const size_t k = std::min<size_t>(sorted.size(), static_cast<size_t>(config.top_k));
        std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<>());
        return r.prob[j] >= sorted[k - 1];
      });
    } else {
      std::vector<unsigned char> scratch(a->estimate_workspace_size(in.params));
      BlockLayout layout;
      std::vector<double> ms;
      for (int r = 0; r < o.reps; ++r)
        ms.push_back(wall_ms([&] {
          throw_if_error(
              a->estimate(in.params, Workspace{scratch.data(), scratch.size()}, &layout));
        }));
      row.route_ms = median(ms);
      row.q = layout_quality(in, o, rows, layout);
    }
    table.push_back(row);
  }

  std::printf(
      "N %lld, Hq %lld / Hkv %lld, D %lld, causal, f32, %d rep(s) (median), recall over %d "
      "rows x %lld heads\ndense: %s\n\n",
      (long long)o.n, (long long)o.heads, (long long)o.kv_heads, (long long)o.dim, o.reps, o.rows,
      (long long)o.heads, dense->describe().c_str());
  print_table(table, dense_ms, report);
  return 0;
}

}  // namespace
}  // namespace qwen3vl::bench

namespace qwen3vl::bench {

int dynamic_sparse_routine(const std::vector<std::string>& args) {
  Options o;
  std::vector<std::string> methods = {"block", "vs", "exact"};
  ArgParser parser(
      "dynamic-sparse",
      R"(Dynamic sparse prefill against dense flash2 in the same run, on structured inputs (clusters,
heavy columns, a local band; causal, f32): total time (routing + sparse attention), routing time,
kept density, and the recall (dense softmax mass on the kept keys, float64, over sampled rows)
with the output error of those rows (was qwen3vl-dynamic-sparse-bench). cpu: block top-k,
vertical-slash and exact top-k, wall clock, median of --reps (no warm-up); cuda: block top-k vs
the CUDA flash2 object, CUDA events, the mean of --reps calls after a warm-up.)");
  parser.add_int("--n", &o.n, 64, int64_t(1) << 22, "queries = keys");
  parser.add_int("--heads", &o.heads, 1, 1024, "query heads");
  parser.add_int("--kv-heads", &o.kv_heads, 1, 1024, "KV heads (must divide --heads)");
  parser.add_int("--dim", &o.dim, 16, 256, "head dim");
  parser.add_int("--threads", &o.threads, 0, 1024, "CPU threads (0: physical cores)");
  parser.add_int("--reps", &o.reps, 1, 100000, "timed calls");
  parser.add_int("--rows", &o.rows, 1, 100000, "sampled rows for recall and error");
  parser.add_word_list("--methods", &methods, {"block", "vs", "exact"}, "cpu: methods to run");
  parser.add_choice("--device", &o.device, {"cpu", "cuda"}, "where it runs (cuda: block top-k)");
  return run_routine(parser, args, [&](Report& report) {
    if (o.heads % o.kv_heads != 0)
      return usage_error("dynamic-sparse",
                         make_error(StatusCode::kInvalidArgument, "--kv-heads = ", o.kv_heads,
                                    ": must divide --heads = ", o.heads));
    o.methods.clear();
    for (const std::string& m : methods) o.methods += m + ",";
    return run(o, &report);
  });
}

}  // namespace qwen3vl::bench
