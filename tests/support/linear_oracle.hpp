// The float64 quadratic oracle of linear attention, shared by the CPU and CUDA linear tests and the
// benchmark CLI's accuracy check:
// o_i = sum_j (phi(q_i) . phi(k_j)) v_j / (sum_j phi(q_i) . phi(k_j) + eps) over the keys row i
// sees, with the features computed in double from the stored (rounded) inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "qwen3vl/variants/linear.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

class LinearOracle {
 public:
  // omega: the Performer projection [F, D] (make_performer_projection), empty for elu+1.
  LinearOracle(const LinearConfig& config, std::vector<float> omega)
      : config_(config), omega_(std::move(omega)) {}

  // The oracle of `config` for head_dim d (its Performer projection made here when it needs one).
  static LinearOracle of(const LinearConfig& config, int64_t d) {
    std::vector<float> omega;
    if (config.feature_map == LinearFeatureMap::kPerformer)
      throw_if_error(make_performer_projection(config, d, &omega));
    return LinearOracle(config, std::move(omega));
  }

  // One output row: query row i of sequence b, query head h (out: head_dim values). Costs
  // O(keys x features x D), so a benchmark can check sampled rows of a large problem.
  void output_row(const AttentionParams& p, int64_t b, int64_t h, int64_t i, double* out) const {
    AttentionShape s;
    throw_if_error(validate(p, &s));
    const int64_t d = s.head_dim, g = h / s.group_size();
    const SequenceSpan span = sequence_span(p, b);
    const double key_c = key_stabiliser(p, s, b, span, g);
    const std::vector<double> phi_q =
        features(row(p.q, s, b, span.q_start, i, h), s.scale, true, 0.0);
    std::vector<double> num(static_cast<size_t>(d), 0.0);
    double den = 0.0;
    const int64_t end = p.mask != MaskKind::kNone ? std::min(i + 1, span.k_len) : span.k_len;
    for (int64_t j = 0; j < end; ++j) {
      const std::vector<double> phi_k =
          features(row(p.k, s, b, span.k_start, j, g), s.scale, false, key_c);
      double w = 0.0;
      for (size_t f = 0; f < phi_q.size(); ++f) w += phi_q[f] * phi_k[f];
      const std::vector<double> v = row(p.v, s, b, span.k_start, j, g);
      for (int64_t c = 0; c < d; ++c) num[c] += w * v[c];
      den += w;
    }
    den += config_.eps;
    for (int64_t c = 0; c < d; ++c) out[c] = den > 0 ? num[c] / den : 0.0;
  }

  reference::Result run(const AttentionParams& p) const {
    AttentionShape s;
    throw_if_error(validate(p, &s));
    const int64_t d = s.head_dim;
    const bool causal = p.mask != MaskKind::kNone;
    reference::Result r;
    const int64_t rows = p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
    r.out.assign(static_cast<size_t>(rows * s.heads * d), 0.0);
    for (int64_t b = 0; b < s.batch; ++b) {
      const SequenceSpan span = sequence_span(p, b);
      for (int64_t g = 0; g < s.kv_heads; ++g) {
        std::vector<std::vector<double>> phi_k(static_cast<size_t>(span.k_len));
        const double key_c = key_stabiliser(p, s, b, span, g);
        for (int64_t j = 0; j < span.k_len; ++j)
          phi_k[j] = features(row(p.k, s, b, span.k_start, j, g), s.scale, false, key_c);
        for (int64_t h = g * s.group_size(); h < (g + 1) * s.group_size(); ++h)
          for (int64_t i = 0; i < span.q_len; ++i) {
            const std::vector<double> phi_q =
                features(row(p.q, s, b, span.q_start, i, h), s.scale, true, 0.0);
            std::vector<double> num(static_cast<size_t>(d), 0.0);
            double den = 0.0;
            const int64_t end = causal ? std::min(i + 1, span.k_len) : span.k_len;
            for (int64_t j = 0; j < end; ++j) {
              double w = 0.0;
              for (size_t f = 0; f < phi_q.size(); ++f) w += phi_q[f] * phi_k[j][f];
              const std::vector<double> v = row(p.v, s, b, span.k_start, j, g);
              for (int64_t c = 0; c < d; ++c) num[c] += w * v[c];
              den += w;
            }
            den += config_.eps;
            const int64_t t = p.varlen() ? span.q_start + i : b * s.max_q + i;
            for (int64_t c = 0; c < d; ++c)
              r.out[static_cast<size_t>((t * s.heads + h) * d + c)] = den > 0 ? num[c] / den : 0.0;
          }
      }
    }
    return r;
  }

 private:
  static std::vector<double> row(const TensorView& t, const AttentionShape& s, int64_t b,
                                 int64_t start, int64_t i, int64_t h) {
    std::vector<double> x(static_cast<size_t>(s.head_dim));
    const int64_t off = row_offset(t, s.varlen, b, start, i, h);
    for (int64_t c = 0; c < s.head_dim; ++c) x[c] = load_float(t, off + c);
    return x;
  }

  std::vector<double> projections(const std::vector<double>& x, double scale) const {
    const size_t d = x.size(), m = omega_.size() / d;
    std::vector<double> a(m, 0.0);
    for (size_t r = 0; r < m; ++r)
      for (size_t c = 0; c < d; ++c) a[r] += omega_[r * d + c] * std::sqrt(scale) * x[c];
    return a;
  }

  double key_stabiliser(const AttentionParams& p, const AttentionShape& s, int64_t b,
                        const SequenceSpan& span, int64_t g) const {
    if (omega_.empty() || span.k_len == 0) return 0.0;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < span.k_len; ++j)
      for (double a : projections(row(p.k, s, b, span.k_start, j, g), s.scale))
        mx = std::max(mx, a);
    return mx;
  }

  std::vector<double> features(const std::vector<double>& x, double scale, bool query,
                               double key_c) const {
    if (omega_.empty()) {
      std::vector<double> phi(x.size());
      for (size_t c = 0; c < x.size(); ++c) phi[c] = x[c] > 0 ? x[c] + 1.0 : std::exp(x[c]);
      return phi;
    }
    std::vector<double> a = projections(x, scale);
    double half_sq = 0.0;
    for (double v : x) half_sq += 0.5 * scale * v * v;
    const double c = query ? *std::max_element(a.begin(), a.end()) : key_c;
    const double norm = 1.0 / std::sqrt(static_cast<double>(a.size()));
    for (double& v : a) v = norm * (std::exp(v - half_sq - c) + kPerformerEpsilon);
    return a;
  }

  LinearConfig config_;
  std::vector<float> omega_;
};

}  // namespace qwen3vl::testing
