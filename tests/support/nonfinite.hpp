// The non-finite rule, checked the same way for every variant and device: an Inf or NaN in a K or
// V row that no query row sees never reaches an output (nor an LSE); one that a row sees (in that
// row's q, or in a K/V row it attends to) makes that row's output non-finite.
//
// A case plants a value in whole rows (every head, every element) of q, K or V. The expected
// result is the float64 oracle of the same problem with those rows zeroed: rows that do not see a
// planted row must equal it (their LSE too); rows that see one must be non-finite in every output
// element, with a NaN LSE when the value sits in q or K (V does not enter the LSE, which must then
// still equal the oracle's).
#pragma once

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "qwen3vl/reference/attention.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

enum class PlantIn { kQ, kK, kV };

inline const char* to_string(PlantIn w) {
  return w == PlantIn::kQ ? "q" : w == PlantIn::kK ? "k" : "v";
}

// Rows of sequence `b` (query rows for q, key rows for K and V) that get `value`.
struct Planted {
  PlantIn where = PlantIn::kV;
  int64_t b = 0;
  std::vector<int64_t> rows;
};

// Writes x into every head and element of sequence b's row `row` of `t` (whose unstrided view is
// `view`: BSHD or packed varlen storage).
inline void set_row(Tensor& t, const TensorView& view, bool varlen, int64_t b, int64_t start,
                    int64_t row, float x) {
  const int64_t heads = view.shape[view.rank - 2], d = view.shape[view.rank - 1];
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t off = row_offset(view, varlen, b, start, row, h);
    for (int64_t c = 0; c < d; ++c) t.set(off + c, x);
  }
}

// Writes x into the planted rows of a Problem's q, k or v.
inline void set_planted(Problem& p, const Planted& at, float x) {
  const SequenceSpan span = sequence_span(p.params, at.b);
  Tensor& t = at.where == PlantIn::kQ ? p.q : at.where == PlantIn::kK ? p.k : p.v;
  const int64_t start = at.where == PlantIn::kQ ? span.q_start : span.k_start;
  for (int64_t r : at.rows) set_row(t, t.view(), p.params.varlen(), at.b, start, r, x);
}

// Does query row i of sequence b, head h see key j? The reference's definition: structural masks,
// key padding and the block layout (reference::key_visible), and an additive -inf.
using SeesKey = std::function<bool(int64_t b, int64_t h, int64_t i, int64_t j)>;

inline SeesKey reference_sees(const AttentionParams& p) {
  return [p](int64_t b, int64_t h, int64_t i, int64_t j) {
    const SequenceSpan span = sequence_span(p, b);
    if (!reference::key_visible(p, b, h, i, j, span.q_len, span.k_len, span.q_start)) return false;
    return !p.additive_mask.present() ||
           load_float(p.additive_mask, additive_mask_offset(p.additive_mask, b, h, i, j)) >
               -std::numeric_limits<float>::infinity();
  };
}

// Checks `params` (the variant's output and LSE, already computed) against `zeroed`, the oracle
// of the problem with the planted rows zeroed. Returns how many rows saw a planted row (callers
// assert the case was not vacuous).
inline int64_t expect_nonfinite_rule(const AttentionParams& params, const reference::Result& zeroed,
                                     const Planted& planted, const SeesKey& sees, double tol,
                                     const std::string& label) {
  AttentionShape s;
  throw_if_error(validate(params, &s));
  const bool with_lse = params.lse.present() && !zeroed.lse.empty();
  double diff = 0.0, norm = 0.0, lse_err = 0.0;
  int64_t seeing = 0, hidden = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(params, b);
    for (int64_t i = 0; i < span.q_len; ++i)
      for (int64_t h = 0; h < s.heads; ++h) {
        const int64_t t = params.varlen() ? span.q_start + i : b * s.max_q + i;
        const size_t ref_row = static_cast<size_t>(t * s.heads + h);
        bool sees_planted = false;
        if (planted.b == b)
          for (int64_t r : planted.rows) {
            if (planted.where == PlantIn::kQ) {  // a q row matters only if it sees some key
              if (r != i) continue;
              for (int64_t j = 0; j < span.k_len && !sees_planted; ++j) sees_planted = sees(b, h, i, j);
            } else {
              sees_planted = sees_planted || sees(b, h, i, r);
            }
          }
        const int64_t off = row_offset(params.out, params.varlen(), b, span.q_start, i, h);
        const float got_lse =
            with_lse ? params.lse.ptr<const float>()[params.varlen() ? params.lse.offset(h, span.q_start + i)
                                                                     : params.lse.offset(b, h, i)]
                     : 0.0f;
        const double want_lse = with_lse ? zeroed.lse[ref_row] : 0.0;
        if (sees_planted) {
          ++seeing;
          int64_t finite = 0;
          for (int64_t c = 0; c < s.head_dim; ++c) finite += std::isfinite(load_float(params.out, off + c));
          EXPECT_EQ(finite, 0) << label << ": b " << b << " row " << i << " head " << h
                               << " sees the planted value but has finite outputs";
          if (with_lse && planted.where != PlantIn::kV)
            EXPECT_TRUE(std::isnan(got_lse)) << label << ": b " << b << " row " << i << " head " << h
                                             << " lse " << got_lse;
          if (planted.where != PlantIn::kV) continue;
        } else {
          ++hidden;
          for (int64_t c = 0; c < s.head_dim; ++c) {
            const double got = load_float(params.out, off + c);
            const double want = zeroed.out[ref_row * static_cast<size_t>(s.head_dim) + c];
            if (!std::isfinite(got)) {
              ADD_FAILURE() << label << ": b " << b << " row " << i << " head " << h
                            << " does not see the planted value but output " << c << " is " << got;
              return seeing;
            }
            diff += (got - want) * (got - want);
            norm += want * want;
          }
        }
        if (with_lse) {
          if (std::isinf(want_lse) || !std::isfinite(got_lse)) {
            EXPECT_EQ(static_cast<double>(got_lse), want_lse)
                << label << ": b " << b << " row " << i << " head " << h << " lse";
          } else {
            lse_err = std::fabs(got_lse - want_lse) > lse_err ? std::fabs(got_lse - want_lse) : lse_err;
          }
        }
      }
  }
  EXPECT_GT(hidden, 0) << label << ": every row sees the planted value";
  const double rel = norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  EXPECT_LE(rel, tol) << label << ": rows that do not see the planted value";
  EXPECT_LE(lse_err, tol > 1e-4 ? 2e-2 : 1e-5) << label << ": lse";
  return seeing;
}

// The values planted by the tests.
inline std::vector<float> nonfinite_values() {
  return {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
          std::numeric_limits<float>::quiet_NaN()};
}

inline std::string value_name(float x) {
  return std::isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf";
}

}  // namespace qwen3vl::testing
