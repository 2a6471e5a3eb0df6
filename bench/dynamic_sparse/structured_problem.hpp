// The structured inputs of the dynamic-sparse routine and what it measures on them (sampled
// float64 dense rows, recall and output error), shared by its CPU and CUDA runs. See
// dynamic_sparse_bench.cpp for the input recipe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/report.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"

namespace qwen3vl::bench {

struct Options {
  int64_t n = 16384, heads = 8, kv_heads = 2, dim = 128;
  int threads = 0, reps = 1, rows = 32;
  std::string methods = "block,vs,exact";
  std::string device = "cpu";  // cpu | cuda (block top-k only)
};

struct Inputs {
  Tensor q, k, v, out;
  AttentionParams params;
};

inline void add_scaled(float* x, const std::vector<float>& dir, float amount) {
  for (size_t c = 0; c < dir.size(); ++c) x[c] += amount * dir[c];
}

inline std::vector<float> unit_vector(std::mt19937_64& rng, int64_t d) {
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

inline Inputs make_inputs(const Options& o) {
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
    for (int64_t j = 0; j < n; ++j)
      add_scaled(k + (j * hkv + kv) * d, centers[cluster_of[j / segment]], 2.0f * root);
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
        const float cs = amp * static_cast<float>(std::cos(w * t)),
                    sn = amp * static_cast<float>(std::sin(w * t));
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

inline std::vector<SampledRow> sample_rows(const Inputs& in, const Options& o) {
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
        for (int64_t c = 0; c < d; ++c)
          row.out[c] += row.prob[j] * v[(j * o.kv_heads + h / g) * d + c];
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
Quality quality(const Inputs& in, const Options& o, const std::vector<SampledRow>& rows,
                Kept kept) {
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

// Whether key j is listed for row i's block in host layout l.
inline bool layout_keeps(const BlockLayout& layout, int64_t l, int64_t i, int64_t j) {
  const int64_t rb = i / layout.block_q;
  const int32_t* ptr = layout.row_ptr(l);
  const int32_t* col = layout.col_ptr(l);
  return std::binary_search(col + ptr[rb], col + ptr[rb + 1],
                            static_cast<int32_t>(j / layout.block_k));
}

// Recall and output error of a routed method: a row keeps the keys its query group's layout lists
// (the Hq / Hkv query heads of one KV head share layout h / group).
inline Quality layout_quality(const Inputs& in, const Options& o,
                              const std::vector<SampledRow>& rows, const BlockLayout& layout) {
  const int64_t group = o.heads / o.kv_heads;
  return quality(in, o, rows, [&](const SampledRow& r, int64_t j) {
    return layout_keeps(layout, r.h / group, r.i, j);
  });
}

struct Row {
  std::string method, budget;
  double total_ms, route_ms, density;
  Quality q;
};

inline void print_table(const std::vector<Row>& table, double dense_ms, Report* report) {
  std::printf(
      "| method | budget | total ms | vs dense | routing ms | density | recall | out rel. err |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : table)
    std::printf("| %s | %s | %.2f | %.3f | %.2f | %.4f | %.4f | %.2e |\n", r.method.c_str(),
                r.budget.c_str(), r.total_ms, r.total_ms / dense_ms, r.route_ms, r.density,
                r.q.recall, r.q.out_error);
  for (const Row& r : table)
    report->add({{"method", r.method},
                 {"budget", r.budget},
                 {"total_ms", r.total_ms},
                 {"over_dense", r.total_ms / dense_ms},
                 {"route_ms", r.route_ms},
                 {"density", r.density},
                 {"recall", r.q.recall},
                 {"out_rel_err", r.q.out_error}});
}

// The CUDA run (block top-k at two budgets vs the CUDA flash2 object); returns the exit code.
int run_cuda(const Options& o, Inputs& in, const std::vector<SampledRow>& rows, Report* report);

}  // namespace qwen3vl::bench
