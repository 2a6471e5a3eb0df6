// qwen3vl-attn-bench quest: Quest page selection against dense decode on one long sequence (default
// Hq 32 / Hkv 8 / D 128, f16 paged cache, block 16, one query row): time per call of both, in the
// same run, and the recall of the dense softmax mass by the selected tokens (float64), on
// structured keys (topic segments a query aligns with) and on i.i.d. uniform keys.

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cli/routines.hpp"
#include "common/progress.hpp"
#include "common/timing.hpp"
#include "quest_bench.hpp"

namespace qwen3vl::bench {
namespace {

// Deterministic N(0, 1)-ish values: the sum of 4 uniforms, centred and scaled.
struct Noise {
  uint64_t x;
  float next() {
    float s = 0;
    for (int i = 0; i < 4; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      s += static_cast<float>(x >> 40) / 16777216.0f;
    }
    return (s - 2.0f) * 1.7320508f;
  }
};

constexpr int64_t kTopics = 64;
constexpr int64_t kSegment = 48;  // tokens per topic segment (not a multiple of the page size)

float topic(int64_t t, int64_t c) {
  Noise n{static_cast<uint64_t>(t * 1000 + c) * 0x9E3779B97F4A7C15ull + 7};
  return n.next();
}
int64_t topic_of_token(int64_t j) {
  return static_cast<int64_t>((j / kSegment) * 2654435761u % kTopics);
}
int64_t topic_of_head(int64_t h) { return (h * 37 + 11) % kTopics; }

}  // namespace

// Structured keys: k = z + 0.7 u_topic(segment), a query q_h = u_topic(h) + 0.5 z: each head's
// mass sits on the scattered segments of its topic (1/64 of the tokens), heads of one KV group on
// different topics ("structured") or on their group's one topic ("grouped", the case GQA sharing
// suits). Uniform: k, q i.i.d. (attention nearly flat: the worst case for any selection).
HostQuestCache::HostQuestCache(const QuestShape& s) : shape(s) {
  config.layout = KvLayout::kPaged;
  config.kv_heads = s.kv_heads;
  config.head_dim = s.head_dim;
  config.dtype = s.dtype;
  config.block_size = s.block_size;
  config.max_blocks = (s.kv_len + s.block_size - 1) / s.block_size;
  config.num_blocks = config.max_blocks;
  config.key_bounds = true;
  k = Tensor(s.dtype, kv_storage_shape(config));
  v = Tensor(s.dtype, kv_storage_shape(config));
  bounds = Tensor(DType::kF32, kv_key_bounds_shape(config));
  throw_if_error(KvCache::create(config, k.view(), v.view(), bounds.view(), &cache));
  const int64_t chunk = 2048, d = s.head_dim, hkv = s.kv_heads;
  Tensor kc(DType::kF32, {1, chunk, hkv, d}), vc(DType::kF32, {1, chunk, hkv, d});
  Noise noise{12345};
  for (int64_t from = 0; from < s.kv_len; from += chunk) {
    const int64_t n = std::min(chunk, s.kv_len - from);
    float* kp = kc.data<float>();
    float* vp = vc.data<float>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t g = 0; g < hkv; ++g)
        for (int64_t c = 0; c < d; ++c) {
          const int64_t e = (i * hkv + g) * d + c;
          kp[e] = s.structured ? noise.next() + 0.7f * topic(topic_of_token(from + i), c)
                               : noise.next() * 0.577f;
          vp[e] = noise.next();
        }
    TensorView kv = kc.view(), vv = vc.view();
    kv.shape[1] = vv.shape[1] = n;
    throw_if_error(cache.append(kv, vv));
  }
  q = Tensor(s.dtype, {1, 1, s.heads, d});
  for (int64_t h = 0; h < s.heads; ++h)
    for (int64_t c = 0; c < d; ++c)
      q.set(h * d + c, s.structured
                           ? topic(topic_of_head(s.grouped ? h / (s.heads / s.kv_heads) : h), c) +
                                 0.5f * noise.next()
                           : noise.next() * 0.577f);
  out = Tensor(s.dtype, {1, 1, s.heads, d});
  lse = Tensor(DType::kF32, {1, s.heads, 1});
}

QuestParams HostQuestCache::params() {
  QuestParams p;
  p.decode.q = q.view();
  p.decode.kv = cache.view();
  p.decode.out = out.view();
  p.decode.lse = lse.view();
  p.key_bounds = cache.key_bounds();
  return p;
}

namespace {

// Mean and least share of each query head's dense softmax mass on its group's selected tokens.
void recall(const HostQuestCache& h, const int32_t* table, const int32_t* lens, int64_t width,
            double* mean, double* least) {
  const QuestShape& s = h.shape;
  const int64_t d = s.head_dim, group = s.heads / s.kv_heads, bs = s.block_size;
  const TensorView& kt = h.cache.k_storage();
  std::vector<char> kept(static_cast<size_t>(h.config.num_blocks));
  std::vector<double> score(static_cast<size_t>(s.kv_len));
  *mean = 0;
  *least = 1;
  for (int64_t g = 0; g < s.kv_heads; ++g) {
    std::fill(kept.begin(), kept.end(), 0);
    for (int64_t i = 0; i < (lens[g] + bs - 1) / bs; ++i)
      kept[static_cast<size_t>(table[g * width + i])] = 1;
    for (int64_t hh = g * group; hh < (g + 1) * group; ++hh) {
      double top = -INFINITY;
      for (int64_t j = 0; j < s.kv_len; ++j) {
        const int64_t blk = h.cache.block_table()[static_cast<size_t>(j / bs)];
        double dot = 0;
        for (int64_t c = 0; c < d; ++c)
          dot += static_cast<double>(h.q.get(hh * d + c)) *
                 load_float(kt, kt.offset(blk, j % bs, g) + c);
        score[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(d));
        top = std::max(top, score[static_cast<size_t>(j)]);
      }
      double all = 0, sel = 0;
      for (int64_t j = 0; j < s.kv_len; ++j) {
        const double w = std::exp(score[static_cast<size_t>(j)] - top);
        all += w;
        if (kept[static_cast<size_t>(h.cache.block_table()[static_cast<size_t>(j / bs)])]) sel += w;
      }
      *mean += sel / all / static_cast<double>(s.heads);
      *least = std::min(*least, sel / all);
    }
  }
}

// Process CPU time of one call (all threads), in ms: on a shared, overloaded VM the wall clock
// of anything longer than a time slice mostly measures the wait for the CPU.
template <class F>
double cpu_ms(F&& call) {
  timespec a{}, b{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  call();
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  return (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) * 1e-6;
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a;
  f >> a;
  return a;
}

}  // namespace
}  // namespace qwen3vl::bench

namespace qwen3vl::bench {

int quest_routine(const std::vector<std::string>& args) {
  std::vector<int64_t> lens = {16384, 65536}, budgets = {1024, 4096};
  std::string device = "cpu", data = "all";
  int threads = 0, repeats = 10;
  ArgParser parser(
      "quest",
      R"(Quest page selection against dense decode on one long sequence (Hq 32 / Hkv 8 / D 128, f16
paged cache, block 16, one query row): time per call of both in the same run, and the recall of
the dense softmax mass by the selected tokens (float64), max and sum page aggregation (was
qwen3vl-quest-bench). cpu: wall time and process CPU time, median of --repeats after 2 warm-ups;
cuda: CUDA events, median of --repeats single calls after 2 warm-ups, then the same calls
replayed from a CUDA graph ("graph:"), and whether the device kept the pages the host kept.
Data: structured (topic segments a query aligns with), grouped (one topic per KV group), uniform
(i.i.d. keys: flat attention).)");
  parser.add_choice("--device", &device, {"cpu", "cuda", "all"}, "where it runs");
  parser.add_int_list("--lens", &lens, 16, int64_t(1) << 22, "KV lengths");
  parser.add_int_list("--budgets", &budgets, 16, int64_t(1) << 22, "tokens Quest keeps");
  parser.add_int("--threads", &threads, 0, 1024, "CPU threads (0: physical cores)");
  parser.add_int("--repeats", &repeats, 1, 100000, "timed calls");
  parser.add_choice("--data", &data, {"structured", "grouped", "uniform", "all"}, "key data");
  return run_routine(parser, args, [&](Report& report) {
    const bool cpu = device == "cpu" || device == "all";
#if QWEN3VL_BENCH_CUDA
    const bool cuda = device == "cuda" || device == "all";
#else
  if (device == "cuda")
    return no_cuda_error("quest");
#endif
    CpuOptions options;
    options.num_threads = threads;
    std::printf("%-6s %-10s %6s %6s %4s %9s %9s %7s %8s %8s %s\n", "device", "data", "kv", "budget",
                "agg", "dense_ms", "quest_ms", "speedup", "recall", "min_rec", "load");
    Progress progress("quest", (data == "all" ? 3 : 1) * lens.size() * budgets.size() * 2);
    for (const std::string kind : {"structured", "grouped", "uniform"}) {
      if (data != "all" && data != kind) continue;
      for (int64_t len : lens) {
        QuestShape shape;
        shape.kv_len = len;
        shape.structured = kind != "uniform";
        shape.grouped = kind == "grouped";
        HostQuestCache host(shape);
        QuestParams params = host.params();
        for (int64_t budget : budgets)
          for (QuestAggregation agg : {QuestAggregation::kMax, QuestAggregation::kSum}) {
            progress.start(kind + ", kv_len " + std::to_string(len) + ", budget " +
                           std::to_string(budget) + ", " + to_string(agg));
            std::unique_ptr<DecodeAttention> dense, inner;
            throw_if_error(create_decode_cpu(options, &dense));
            throw_if_error(create_decode_cpu(options, &inner));
            std::unique_ptr<QuestDecode> quest;
            const QuestConfig config{budget, agg};
            throw_if_error(QuestDecode::create(config, std::move(inner), &quest));
            std::vector<char> qws(quest->workspace_size(params)),
                dws(dense->workspace_size(params.decode));
            std::vector<double> tq, td, cq, cd;
            for (int r = 0; r < (cpu ? repeats + 2 : 1); ++r) {
              double w = 0;
              cq.push_back(cpu_ms([&] {
                w = wall_ms([&] {
                  throw_if_error(quest->forward(params, Workspace{qws.data(), qws.size()}));
                });
              }));
              tq.push_back(w);
              if (cpu) {
                cd.push_back(cpu_ms([&] {
                  w = wall_ms([&] {
                    throw_if_error(
                        dense->forward(params.decode, Workspace{dws.data(), dws.size()}));
                  });
                }));
                td.push_back(w);
              }
            }
            const QuestDecode::Selection sel =
                quest->selection(params, Workspace{qws.data(), qws.size()});
            const int64_t width = quest->max_pages(params.decode.kv);
            double mean = 0, least = 0;
            recall(host, sel.table, sel.lens, width, &mean, &least);
            progress.erase();
            if (cpu) {
              for (auto* v : {&tq, &td, &cq, &cd}) v->erase(v->begin(), v->begin() + 2);
              std::printf(
                  "%-6s %-10s %6lld %6lld %4s %9.3f %9.3f %7.2f %8.4f %8.4f %s cpu-time: dense "
                  "%.3f "
                  "quest %.3f "
                  "speedup %.2f\n",
                  "cpu", kind.c_str(), static_cast<long long>(len), static_cast<long long>(budget),
                  to_string(agg), median(td), median(tq), median(td) / median(tq), mean, least,
                  load_average().c_str(), median(cd), median(cq), median(cd) / median(cq));
              report.add({{"device", "cpu"},
                          {"data", kind},
                          {"kv_len", len},
                          {"budget", budget},
                          {"aggregation", to_string(agg)},
                          {"dense_ms", median(td)},
                          {"quest_ms", median(tq)},
                          {"speedup", median(td) / median(tq)},
                          {"recall", mean},
                          {"min_recall", least},
                          {"dense_cpu_ms", median(cd)},
                          {"quest_cpu_ms", median(cq)},
                          {"cpu_speedup", median(cd) / median(cq)},
                          {"load", load_average()}});
            }
#if QWEN3VL_BENCH_CUDA
            if (cuda) {
              const std::vector<int32_t> table(sel.table, sel.table + shape.kv_heads * width);
              const std::vector<int32_t> lens_sel(sel.lens, sel.lens + shape.kv_heads);
              const CudaTimes t = run_cuda_quest(host, config, repeats, table, lens_sel);
              std::printf(
                  "%-6s %-10s %6lld %6lld %4s %9.4f %9.4f %7.2f %8.4f %8.4f %s graph: dense %.4f "
                  "quest %.4f "
                  "speedup %.2f\n",
                  "cuda", kind.c_str(), static_cast<long long>(len), static_cast<long long>(budget),
                  to_string(agg), t.dense_ms, t.quest_ms, t.dense_ms / t.quest_ms, mean, least,
                  t.same_selection ? "same-selection" : "SELECTION-DIFFERS", t.dense_graph_ms,
                  t.quest_graph_ms, t.dense_graph_ms / t.quest_graph_ms);
              const bool graphs = t.dense_graph_ms > 0 && t.quest_graph_ms > 0;
              report.add({{"device", "cuda"},
                          {"data", kind},
                          {"kv_len", len},
                          {"budget", budget},
                          {"aggregation", to_string(agg)},
                          {"dense_ms", t.dense_ms},
                          {"quest_ms", t.quest_ms},
                          {"speedup", t.dense_ms / t.quest_ms},
                          {"recall", mean},
                          {"min_recall", least},
                          {"same_selection", t.same_selection},
                          {"dense_graph_ms", measured(t.dense_graph_ms)},
                          {"quest_graph_ms", measured(t.quest_graph_ms)},
                          {"graph_speedup",
                           graphs ? Value(t.dense_graph_ms / t.quest_graph_ms) : Value()}});
            }
#endif
            std::fflush(stdout);
          }
      }
    }
    return 0;
  });
}

}  // namespace qwen3vl::bench
