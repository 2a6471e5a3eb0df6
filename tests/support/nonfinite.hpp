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

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "qwen3vl/reference/attention.hpp"
#include "support/block_layouts.hpp"
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
              for (int64_t j = 0; j < span.k_len && !sees_planted; ++j)
                sees_planted = sees(b, h, i, j);
            } else {
              sees_planted = sees_planted || sees(b, h, i, r);
            }
          }
        const int64_t off = row_offset(params.out, params.varlen(), b, span.q_start, i, h);
        const float got_lse =
            with_lse
                ? params.lse
                      .ptr<const float>()[params.varlen() ? params.lse.offset(h, span.q_start + i)
                                                          : params.lse.offset(b, h, i)]
                : 0.0f;
        const double want_lse = with_lse ? zeroed.lse[ref_row] : 0.0;
        if (sees_planted) {
          ++seeing;
          int64_t finite = 0;
          for (int64_t c = 0; c < s.head_dim; ++c)
            finite += std::isfinite(load_float(params.out, off + c));
          EXPECT_EQ(finite, 0) << label << ": b " << b << " row " << i << " head " << h
                               << " sees the planted value but has finite outputs";
          if (with_lse && planted.where != PlantIn::kV)
            EXPECT_TRUE(std::isnan(got_lse))
                << label << ": b " << b << " row " << i << " head " << h << " lse " << got_lse;
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
            lse_err =
                std::fabs(got_lse - want_lse) > lse_err ? std::fabs(got_lse - want_lse) : lse_err;
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

// What the drivers write into every output (and LSE) before each run, here and through the device
// copies (ScopedOutputPoison): finite, so a row that must come out non-finite fails when a kernel
// leaves it unwritten, and far outside what any output can be (inputs lie in [-1, 1]; an output
// averages V rows, an LSE is a few units), so an unwritten row the oracle checks fails too. A
// power of two: exact in f16 and bf16.
constexpr float kUnwritten = 16384.0f;

inline void poison_outputs(Problem& p) {
  ScopedOutputPoison finite(kUnwritten);
  poison(p.out);
  poison(p.lse);
}

// The values planted by the tests.
inline std::vector<float> nonfinite_values() {
  return {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
          std::numeric_limits<float>::quiet_NaN()};
}

inline std::string value_name(float x) { return std::isnan(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf"; }

// ---- the scenes every variant runs -------------------------------------------------------------

// A problem, the key rows planted in one of its sequences, the q rows planted for the q case, and
// anything else the scene needs (an additive mask hiding the keys from some rows).
struct Scene {
  std::string name;
  ProblemSpec spec;
  int64_t b = 0;
  std::vector<int64_t> keys, q_rows;
  std::function<void(Problem&)> prepare;
};

inline ProblemSpec spec_of(int64_t batch, int64_t lq, int64_t lk, int64_t heads, int64_t kv_heads,
                           int64_t d, MaskKind mask, DType dtype = DType::kF32) {
  ProblemSpec s = problem_spec(lq, lk, heads, kv_heads, d, mask, 7, batch);
  s.dtype = dtype;
  return s;
}

inline std::vector<Scene> nonfinite_scenes() {
  std::vector<Scene> out;
  // The report's repro: the last key of a causal problem holds the value; rows 0-30 cannot see it.
  out.push_back({"causal L32", spec_of(1, 32, 32, 2, 2, 16, MaskKind::kCausal), 0, {31}, {5}, {}});
  // Bottom-right causal, Lq < Lk, GQA: keys 40 and 44 are seen by the last rows only.
  out.push_back({"causal Lq37 Lk45",
                 spec_of(1, 37, 45, 4, 2, 20, MaskKind::kCausal),
                 0,
                 {40, 44},
                 {0, 36},
                 {}});
  ProblemSpec window = spec_of(1, 45, 45, 3, 1, 17, MaskKind::kSlidingWindow);
  window.window_left = 8;
  window.window_right = 0;
  out.push_back({"window (8, 0)", window, 0, {5, 41}, {20}, {}});
  ProblemSpec both = spec_of(1, 29, 29, 2, 1, 24, MaskKind::kSlidingWindow, DType::kBF16);
  both.window_left = 5;
  both.window_right = 3;
  out.push_back({"window (5, 3) bf16", both, 0, {14}, {3}, {}});
  // An additive mask: key 11 hidden from the even rows, key 12 from rows >= 5.
  ProblemSpec additive = spec_of(1, 19, 29, 2, 1, 24, MaskKind::kNone);
  additive.additive_mask = true;
  out.push_back({"additive -inf", additive, 0, {11, 12}, {3}, [](Problem& p) {
                   const float kNegInf = -std::numeric_limits<float>::infinity();
                   for (int64_t i = 0; i < 19; ++i) {
                     if (i % 2 == 0) p.mask.set(i * 29 + 11, kNegInf);
                     if (i >= 5) p.mask.set(i * 29 + 12, kNegInf);
                   }
                 }});
  // Key padding: sequence 0 has 20 keys; key 23 is padding (nobody sees it), key 19 only row 20.
  ProblemSpec pad = spec_of(2, 21, 26, 4, 2, 16, MaskKind::kCausal);
  pad.key_lengths = {20, 26};
  out.push_back({"key padding", pad, 0, {19, 23}, {4}, {}});
  out.push_back({"causal f16 L50",
                 spec_of(1, 50, 50, 4, 4, 64, MaskKind::kCausal, DType::kF16),
                 0,
                 {47},
                 {2},
                 {}});
  ProblemSpec varlen = spec_of(2, 0, 0, 2, 1, 32, MaskKind::kCausal);
  varlen.varlen_q = {13, 20};
  varlen.varlen_k = {13, 20};
  out.push_back({"varlen causal", varlen, 1, {18}, {7}, {}});
  return out;
}

// One way to run a variant on a host problem (an ISA, a device): computes p's outputs in place;
// false when the variant does not take the problem (that scene is skipped).
struct NonFiniteRun {
  std::string name;
  std::function<bool(Problem&)> run;
};

// The cases each run gets: every scene with Inf, -Inf and NaN in K, in V and in q.
inline int64_t nonfinite_scene_cases() {
  return static_cast<int64_t>(nonfinite_scenes().size()) * 3 * 3;
}

// Runs every scene with Inf, -Inf and NaN planted in K, in V and in q, through every run, and
// checks the rule against the oracle of the zeroed problem. `oracle` gives the oracle's params
// (the variant's own pattern attached); `with_layout` attaches a random 16 x 16 block layout
// (70% of the blocks, the diagonal kept) to each problem first. With `refused` (scene names),
// a run must take exactly the other scenes; without, it may refuse any. Returns the runs checked.
inline int64_t check_nonfinite_scenes(
    const std::string& variant, const std::vector<NonFiniteRun>& runs, bool with_layout = false,
    const std::function<AttentionParams(const AttentionParams&)>& oracle = nullptr,
    const std::optional<std::vector<std::string>>& refused = std::nullopt) {
  ScopedOutputPoison finite(kUnwritten);  // device copies of the outputs get it too
  int64_t ran = 0;
  for (const Scene& scene : nonfinite_scenes())
    for (PlantIn where : {PlantIn::kK, PlantIn::kV, PlantIn::kQ})
      for (float value : nonfinite_values()) {
        Problem p(scene.spec);
        if (scene.prepare) scene.prepare(p);
        HostLayout layout;
        if (with_layout) {
          RandomLayoutSpec l;
          l.block_q = l.block_k = 16;
          l.density = 0.7;
          l.keep_diagonal = true;
          l.seed = static_cast<uint64_t>(scene.spec.seq_q);
          AttentionShape s;
          throw_if_error(validate(p.params, &s));
          layout = random_layout(l, s.max_q, s.max_k);
          p.params.block_layout = layout.layout;
        }
        const Planted planted{where, scene.b, where == PlantIn::kQ ? scene.q_rows : scene.keys};
        set_planted(p, planted, 0.0f);
        const AttentionParams oracle_params = oracle ? oracle(p.params) : p.params;
        const reference::Result ref = reference::attention(oracle_params);
        set_planted(p, planted, value);
        for (const NonFiniteRun& r : runs) {
          const std::string label = variant + " " + r.name + " " + scene.name + " " +
                                    value_name(value) + " in " + to_string(where);
          poison_outputs(p);  // a run that writes nothing must not pass on the last run's outputs
          const bool took = r.run(p);
          if (refused) {
            const bool listed =
                std::find(refused->begin(), refused->end(), scene.name) != refused->end();
            EXPECT_EQ(took, !listed) << label
                                     << (listed ? ": takes a scene listed as refused"
                                                : ": refuses a scene it should take");
          }
          if (!took) continue;
          ++ran;
          EXPECT_GT(expect_nonfinite_rule(p.params, ref, planted, reference_sees(oracle_params),
                                          tolerance(scene.spec.dtype), label),
                    0)
              << label << ": no row sees the planted value";
        }
      }
  return ran;
}

}  // namespace qwen3vl::testing
