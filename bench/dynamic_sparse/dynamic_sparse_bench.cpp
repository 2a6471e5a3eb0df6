// qwen3vl-dynamic-sparse-bench: dynamic sparse prefill (variants/dynamic_sparse.hpp) against dense
// CPU flash2 in the same run: total time (routing + sparse attention), routing time alone, the
// kept density, and the recall (the dense softmax mass on the kept keys, float64, averaged over
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
// Usage: qwen3vl-dynamic-sparse-bench [--n=16384] [--heads=8] [--kv-heads=2] [--dim=128]
//        [--threads=0] [--reps=1] [--rows=32] [--methods=block,vs,exact]
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

#include "common/timing.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"

namespace qwen3vl::bench {
namespace {

struct Options {
  int64_t n = 16384, heads = 8, kv_heads = 2, dim = 128;
  int threads = 0, reps = 1, rows = 32;
  std::string methods = "block,vs,exact";
};

struct Inputs {
  Tensor q, k, v, out;
  AttentionParams params;
};

void add_scaled(float* x, const std::vector<float>& dir, float amount) {
  for (size_t c = 0; c < dir.size(); ++c) x[c] += amount * dir[c];
}

std::vector<float> unit_vector(std::mt19937_64& rng, int64_t d) {
  std::normal_distribution<float> normal;
  std::vector<float> u(static_cast<size_t>(d));
  double norm = 0;
  for (float& x : u) {
    x = normal(rng);
    norm += double(x) * x;
  }
  for (float& x : u) x = static_cast<float>(x / std::sqrt(norm));
  return u;
}

Inputs make_inputs(const Options& o) {
  const int64_t n = o.n, d = o.dim, hq = o.heads, hkv = o.kv_heads, g = hq / hkv;
  Inputs in;
  in.q = Tensor(DType::kF32, {1, n, hq, d});
  in.k = Tensor(DType::kF32, {1, n, hkv, d});
  in.v = Tensor(DType::kF32, {1, n, hkv, d});
  in.out = Tensor(DType::kF32, {1, n, hq, d});
  float* q = in.q.data<float>();
  float* k = in.k.data<float>();
  float* v = in.v.data<float>();
  std::mt19937_64 rng(2024);
  std::normal_distribution<float> normal;
  for (int64_t e = 0; e < in.q.numel(); ++e) q[e] = 0.5f * normal(rng);
  for (int64_t e = 0; e < in.k.numel(); ++e) k[e] = 0.5f * normal(rng);
  for (int64_t e = 0; e < in.v.numel(); ++e) v[e] = normal(rng);
  // A dot product of amplitude a on both sides gives a logit of a^2 / sqrt(D).
  const float root = std::sqrt(std::sqrt(static_cast<float>(d)));
  const int64_t segment = 512, query_run = 256, clusters = 16;
  for (int64_t kv = 0; kv < hkv; ++kv) {
    std::vector<std::vector<float>> centers;
    for (int64_t c = 0; c < clusters; ++c) centers.push_back(unit_vector(rng, d));
    const std::vector<float> heavy_dir = unit_vector(rng, d);
    std::vector<int64_t> cluster_of(static_cast<size_t>((n + segment - 1) / segment));
    for (auto& c : cluster_of) c = static_cast<int64_t>(rng() % clusters);
    std::vector<int64_t> heavy = {0, 1, 2, 3};
    for (int i = 0; i < 16; ++i) heavy.push_back(static_cast<int64_t>(rng() % n));
    for (int64_t j = 0; j < n; ++j) add_scaled(k + (j * hkv + kv) * d, centers[cluster_of[j / segment]], 2.0f * root);
    for (int64_t j : heavy) add_scaled(k + (j * hkv + kv) * d, heavy_dir, std::sqrt(6.0f) * root);
    for (int64_t i0 = 0; i0 < n; i0 += query_run) {
      const int64_t seen_segments = i0 / segment + 1;
      const int64_t c = cluster_of[rng() % seen_segments];
      for (int64_t i = i0; i < std::min(n, i0 + query_run); ++i)
        for (int64_t h = kv * g; h < (kv + 1) * g; ++h) {
          add_scaled(q + (i * hq + h) * d, centers[c], 2.0f * root);
          add_scaled(q + (i * hq + h) * d, heavy_dir, std::sqrt(6.0f) * root);
        }
    }
    // Local band on the last 16 dims: sum_m cos(w_m (i - j)) scaled to +4 at distance 0.
    const float amp = std::sqrt(4.0f / 8.0f) * root;
    for (int64_t t = 0; t < n; ++t)
      for (int m = 0; m < 8; ++m) {
        const double w = 2.0 * M_PI / (64.0 * std::pow(2.0, m));
        const float cs = amp * static_cast<float>(std::cos(w * t)), sn = amp * static_cast<float>(std::sin(w * t));
        float* kr = k + (t * hkv + kv) * d + d - 16;
        kr[2 * m] += cs;
        kr[2 * m + 1] += sn;
        for (int64_t h = kv * g; h < (kv + 1) * g; ++h) {
          float* qr = q + (t * hq + h) * d + d - 16;
          qr[2 * m] += cs;
          qr[2 * m + 1] += sn;
        }
      }
  }
  in.params.q = in.q.view();
  in.params.k = in.k.view();
  in.params.v = in.v.view();
  in.params.out = in.out.view();
  in.params.mask = MaskKind::kCausal;
  return in;
}

// Float64 dense softmax of sampled rows, to measure what a method keeps.
struct SampledRow {
  int64_t i, h;
  std::vector<double> prob;  // over keys 0..i
  std::vector<double> out;   // dense output row
};

std::vector<SampledRow> sample_rows(const Inputs& in, const Options& o) {
  std::vector<SampledRow> rows;
  std::mt19937_64 rng(99);
  const int64_t d = o.dim, g = o.heads / o.kv_heads;
  const float* q = in.q.data<float>();
  const float* k = in.k.data<float>();
  const float* v = in.v.data<float>();
  for (int64_t h = 0; h < o.heads; ++h)
    for (int r = 0; r < o.rows; ++r) {
      SampledRow row;
      row.h = h;
      row.i = o.n / 8 + static_cast<int64_t>(rng() % static_cast<uint64_t>(o.n - o.n / 8));
      row.prob.resize(static_cast<size_t>(row.i + 1));
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= row.i; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c)
          dot += double(q[(row.i * o.heads + h) * d + c]) * k[(j * o.kv_heads + h / g) * d + c];
        row.prob[j] = dot / std::sqrt(double(d));
        mx = std::max(mx, row.prob[j]);
      }
      double sum = 0;
      for (double& p : row.prob) sum += p = std::exp(p - mx);
      row.out.assign(static_cast<size_t>(d), 0.0);
      for (int64_t j = 0; j <= row.i; ++j) {
        row.prob[j] /= sum;
        for (int64_t c = 0; c < d; ++c) row.out[c] += row.prob[j] * v[(j * o.kv_heads + h / g) * d + c];
      }
      rows.push_back(std::move(row));
    }
  return rows;
}

struct Quality {
  double recall = 0, out_error = 0;
};

// Recall and output error of the sampled rows; kept(row, j) says whether the method kept key j.
template <class Kept>
Quality quality(const Inputs& in, const Options& o, const std::vector<SampledRow>& rows, Kept kept) {
  Quality r;
  double diff = 0, norm = 0;
  for (const SampledRow& row : rows) {
    double mass = 0;
    for (int64_t j = 0; j <= row.i; ++j)
      if (kept(row, j)) mass += row.prob[j];
    r.recall += mass / static_cast<double>(rows.size());
    for (int64_t c = 0; c < o.dim; ++c) {
      const double got = in.out.data<float>()[(row.i * o.heads + row.h) * o.dim + c];
      diff += (got - row.out[c]) * (got - row.out[c]);
      norm += row.out[c] * row.out[c];
    }
  }
  r.out_error = std::sqrt(diff / norm);
  return r;
}

double time_forward(const Attention& a, const AttentionParams& p, int reps, std::vector<unsigned char>* ws) {
  ws->resize(a.workspace_size(p));
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r)
    ms.push_back(wall_ms([&] { throw_if_error(a.forward(p, Workspace{ws->data(), ws->size()})); }));
  return median(ms);
}

struct Row {
  std::string method, budget;
  double total_ms, route_ms, density;
  Quality q;
};

int run(const Options& o) {
  Inputs in = make_inputs(o);
  const std::vector<SampledRow> rows = sample_rows(in, o);
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
      configs.emplace_back(c, std::to_string(vert) + " columns + " + std::to_string(sl) + " diagonals");
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
            a->last_density(), {}};
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
          throw_if_error(a->estimate(in.params, Workspace{scratch.data(), scratch.size()}, &layout));
        }));
      row.route_ms = median(ms);
      const int64_t g = o.heads / o.kv_heads;
      row.q = quality(in, o, rows, [&](const SampledRow& r, int64_t j) {
        const int64_t l = r.h / g, rb = r.i / layout.block_q;
        const int32_t* ptr = layout.row_ptr(l);
        const int32_t* col = layout.col_ptr(l);
        return std::binary_search(col + ptr[rb], col + ptr[rb + 1], static_cast<int32_t>(j / layout.block_k));
      });
    }
    table.push_back(row);
  }

  std::printf("N %lld, Hq %lld / Hkv %lld, D %lld, causal, f32, %d rep(s) (median), recall over %d "
              "rows x %lld heads\ndense: %s\n\n",
              (long long)o.n, (long long)o.heads, (long long)o.kv_heads, (long long)o.dim, o.reps,
              o.rows, (long long)o.heads, dense->describe().c_str());
  std::printf("| method | budget | total ms | vs dense | routing ms | density | recall | out rel. err |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : table)
    std::printf("| %s | %s | %.1f | %.3f | %.1f | %.4f | %.4f | %.2e |\n", r.method.c_str(),
                r.budget.c_str(), r.total_ms, r.total_ms / dense_ms, r.route_ms, r.density,
                r.q.recall, r.q.out_error);
  return 0;
}

}  // namespace
}  // namespace qwen3vl::bench

int main(int argc, char** argv) {
  qwen3vl::bench::Options o;
  for (int a = 1; a < argc; ++a) {
    const char* s = argv[a];
    const auto value = [&](const char* flag) -> const char* {
      const size_t len = std::strlen(flag);
      return std::strncmp(s, flag, len) == 0 && s[len] == '=' ? s + len + 1 : nullptr;
    };
    if (const char* x = value("--n")) o.n = std::atoll(x);
    else if (const char* x = value("--heads")) o.heads = std::atoll(x);
    else if (const char* x = value("--kv-heads")) o.kv_heads = std::atoll(x);
    else if (const char* x = value("--dim")) o.dim = std::atoll(x);
    else if (const char* x = value("--threads")) o.threads = std::atoi(x);
    else if (const char* x = value("--reps")) o.reps = std::atoi(x);
    else if (const char* x = value("--rows")) o.rows = std::atoi(x);
    else if (const char* x = value("--methods")) o.methods = x;
    else {
      std::fprintf(stderr, "unknown flag %s (see the header of dynamic_sparse_bench.cpp)\n", s);
      return 2;
    }
  }
  if (o.n < 64 || o.dim < 16 || o.kv_heads < 1 || o.heads % o.kv_heads != 0 || o.reps < 1 || o.rows < 1) {
    std::fprintf(stderr, "need --n >= 64, --dim >= 16, --heads a multiple of --kv-heads, reps/rows >= 1\n");
    return 2;
  }
  try {
    return qwen3vl::bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
