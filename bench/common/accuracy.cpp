#include "accuracy.hpp"

#include <cmath>
#include <limits>
#include <random>

#include "qwen3vl/reference/attention.hpp"

namespace qwen3vl::bench {
namespace {

bool all_finite(const AttentionParams& p, const AttentionShape& s) {
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(p, b);
    for (int64_t i = 0; i < span.q_len; ++i)
      for (int64_t h = 0; h < s.heads; ++h) {
        const int64_t off = row_offset(p.out, p.varlen(), b, span.q_start, i, h);
        for (int64_t c = 0; c < s.head_dim; ++c)
          if (!std::isfinite(load_float(p.out, off + c))) return false;
      }
  }
  return true;
}

}  // namespace

std::vector<RowIndex> sample_rows(const AttentionParams& p, int count, uint64_t seed) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  std::vector<int64_t> sequences;  // the non-empty ones
  for (int64_t b = 0; b < s.batch; ++b)
    if (sequence_span(p, b).q_len > 0) sequences.push_back(b);
  std::vector<RowIndex> rows;
  if (sequences.empty() || count < 1) return rows;
  std::mt19937_64 rng(seed);
  for (int n = 0; n < count; ++n) {
    const bool first = n == 0, last = n == count - 1 && count > 1;
    const int64_t b = first  ? sequences.front()
                      : last ? sequences.back()
                             : sequences[static_cast<size_t>(rng() % sequences.size())];
    const int64_t h = first ? 0 : last ? s.heads - 1 : static_cast<int64_t>(rng() % s.heads);
    const int64_t len = sequence_span(p, b).q_len;
    const int64_t i = count > 1 ? (len - 1) * n / (count - 1) : 0;  // evenly spaced positions
    rows.push_back({b, h, i});
  }
  return rows;
}

double sampled_error(const AttentionParams& p, int count, uint64_t seed,
                     const std::function<void(const RowIndex&, double*)>& want) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  if (!all_finite(p, s)) return std::numeric_limits<double>::infinity();
  std::vector<double> ref(static_cast<size_t>(s.head_dim));
  double worst = 0.0;
  for (const RowIndex& r : sample_rows(p, count, seed)) {
    want(r, ref.data());
    const SequenceSpan span = sequence_span(p, r.b);
    const int64_t off = row_offset(p.out, p.varlen(), r.b, span.q_start, r.i, r.h);
    double diff = 0.0, norm = 0.0;
    for (int64_t c = 0; c < s.head_dim; ++c) {
      const double got = load_float(p.out, off + c), w = ref[static_cast<size_t>(c)];
      diff += (got - w) * (got - w);
      norm += w * w;
    }
    const double err = norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
    worst = err > worst ? err : worst;
  }
  return worst;
}

double sampled_max_relative_error(const AttentionParams& p, int count, uint64_t seed) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  return sampled_error(p, count, seed, [&](const RowIndex& r, double* row) {
    reference::attention_row(p, s, r.b, r.h, r.i, row);
  });
}

}  // namespace qwen3vl::bench
