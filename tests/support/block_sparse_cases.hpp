// The block-sparse cases the CPU and the CUDA suites both check: the random layout sweep, the
// one-purpose problems (empty row blocks, a full layout, gathered query rows, packed sequences,
// token masks inside blocks, a rank-1 layout) and the device-independent checks on their results.
// Each suite passes its own runner (every ISA, or both CUDA tile configurations).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "support/block_layouts.hpp"
#include "support/empty_rows.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

// Runs a problem (layout and positions attached) and checks it against the float64 reference;
// the label names the case in failure messages.
using LayoutCheck = std::function<void(Problem&, const std::string&)>;

// A problem and the random layout that goes with it.
struct LayoutCase {
  ProblemSpec spec;
  RandomLayoutSpec layout;

  std::string label() const {
    return spec.to_string() + " layout " + std::to_string(layout.block_q) + "x" +
           std::to_string(layout.block_k) + " L" + std::to_string(layout.layouts) + " density " +
           std::to_string(layout.density);
  }
};

// The longest query and key sequence of a spec (packed ones: the longest segment).
inline std::pair<int64_t, int64_t> longest_sequences(const ProblemSpec& s) {
  if (s.varlen_q.empty()) return {s.seq_q, s.seq_k};
  return {*std::max_element(s.varlen_q.begin(), s.varlen_q.end()),
          *std::max_element(s.varlen_k.begin(), s.varlen_k.end())};
}

// A problem with its layout attached, and the query positions when a test gives some: the
// tensors live as long as the problem's views of them.
struct LayoutProblem {
  HostLayout layout;
  Problem problem;
  Tensor positions;

  // `flat`: a rank-1 layout (one pattern for every head) where the case has one layout.
  explicit LayoutProblem(const LayoutCase& c, bool flat = false)
      : LayoutProblem(HostLayout(c.layout.block_q, c.layout.block_k,
                                 random_layout_columns(c.layout, longest_sequences(c.spec).first,
                                                       longest_sequences(c.spec).second),
                                 flat),
                      c.spec) {}
  LayoutProblem(HostLayout l, const ProblemSpec& s) : layout(std::move(l)), problem(s) {
    problem.params.block_layout = layout.layout;
  }

  void set_positions(Tensor t) {
    positions = std::move(t);
    problem.params.q_positions = positions.view();
  }
};

// The random sweep: every (q block, k block) pair; case k takes each per-case table's entry
// k % size, so the tables' lengths pick which combinations meet.
struct LayoutSweep {
  std::vector<int32_t> q_blocks, k_blocks;
  std::vector<std::pair<int64_t, int64_t>> lengths;  // (seq_q, seq_k)
  std::vector<int64_t> batches;
  std::vector<MaskKind> masks;
  std::vector<DType> dtypes;
  uint64_t seed = 0;
};

// D 64/72/128, GQA 8/2, the three layout counts (1, Hkv, B x Hkv), densities 0.6 / 0.3 and every
// third row block empty.
inline std::vector<LayoutCase> random_layout_cases(const LayoutSweep& w) {
  const int64_t dims[] = {64, 72, 128};
  const auto pick = [](const auto& table, size_t k) { return table[k % table.size()]; };
  std::vector<LayoutCase> cases;
  uint64_t seed = w.seed;
  size_t k = 0;
  for (int32_t bq : w.q_blocks)
    for (int32_t bk : w.k_blocks) {
      LayoutCase c;
      ProblemSpec& s = c.spec;
      s.batch = pick(w.batches, k);
      s.seq_q = pick(w.lengths, k).first;
      s.seq_k = pick(w.lengths, k).second;
      s.heads = 8;
      s.kv_heads = 2;
      s.head_dim = dims[k % 3];
      s.mask = pick(w.masks, k);
      s.window_left = 90;
      s.window_right = k % 2 ? 0 : 40;
      s.dtype = pick(w.dtypes, k);
      s.with_lse = true;
      s.seed = ++seed;
      RandomLayoutSpec& l = c.layout;
      l.block_q = bq;
      l.block_k = bk;
      l.layouts = k % 3 == 0 ? 1 : (k % 3 == 1 ? s.kv_heads : s.batch * s.kv_heads);
      l.density = k % 2 ? 0.3 : 0.6;
      l.empty_every = 3;
      l.seed = seed;
      cases.push_back(c);
      ++k;
    }
  return cases;
}

inline void check_random_layouts(const LayoutSweep& w, const LayoutCheck& check) {
  for (const LayoutCase& c : random_layout_cases(w)) {
    LayoutProblem p(c);
    check(p.problem, c.label());
  }
}

// --- empty row blocks ---------------------------------------------------------------------

// 100 queries / 90 keys, GQA 4/2, row blocks of 32 of which 1 and 3 list nothing.
inline LayoutProblem empty_row_blocks_problem() {
  const ProblemSpec s = problem_spec(100, 90, 4, 2, 64, MaskKind::kNone, /*seed=*/1);
  return LayoutProblem(HostLayout(32, 16, {{{0, 3}, {}, {5}, {}}}), s);
}

// Rows of row blocks 1 and 3 (of 32) see no key.
inline void expect_empty_row_blocks_zero(const Problem& p, const std::string& label) {
  expect_empty_rows_zero(
      p, [](int64_t, int64_t i) { return (i / 32) % 2 == 1; }, label);
}

// --- a full layout against dense attention ------------------------------------------------

// ||a - b|| / ||b|| over every element.
inline double relative_difference(const Tensor& a, const Tensor& b) {
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double x = a.get(i), y = b.get(i);
    diff += (x - y) * (x - y);
    norm += y * y;
  }
  return std::sqrt(diff / norm);
}

// GQA with D 72, a window of (50, 7) for the window mask.
inline ProblemSpec full_layout_spec(MaskKind mask, int64_t seq_q, int64_t seq_k, int64_t heads,
                                    uint64_t seed) {
  ProblemSpec s = problem_spec(seq_q, seq_k, heads, 2, 72, mask, seed);
  s.window_left = 50;
  s.window_right = 7;
  return s;
}

// A full layout equals dense attention bit for bit where both walk the same key tiles (no mask,
// causal), to 1e-6 under a window (the walks start at different keys); `with_lse`: the LSE bit
// for bit too.
inline void expect_same_as_dense(const Problem& sparse, const Problem& dense, bool with_lse,
                                 const std::string& label) {
  const double difference = relative_difference(sparse.out, dense.out);
  if (dense.spec.mask == MaskKind::kSlidingWindow) {
    EXPECT_LE(difference, 1e-6) << label;
    return;
  }
  EXPECT_EQ(std::memcmp(sparse.out.data<float>(), dense.out.data<float>(),
                        static_cast<size_t>(dense.out.numel()) * sizeof(float)),
            0)
      << label << " relative difference " << difference;
  if (with_lse) {
    EXPECT_EQ(std::memcmp(sparse.lse.data<float>(), dense.lse.data<float>(),
                          static_cast<size_t>(dense.lse.numel()) * sizeof(float)),
              0)
        << label;
  }
}

// --- query positions ----------------------------------------------------------------------

// Sorted distinct key positions for gathered query rows: each sequence's `rows` of `keys`.
inline Tensor gathered_positions(int64_t batch, int64_t rows, int64_t keys, uint64_t seed) {
  Tensor t(DType::kI32, {batch, rows});
  uint64_t state = seed;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t taken = 0;
    for (int64_t j = 0; j < keys && taken < rows; ++j) {  // selection sampling keeps the order
      const uint64_t u = splitmix64(&state) % static_cast<uint64_t>(keys - j);
      if (static_cast<int64_t>(u) < rows - taken)
        t.data<int32_t>()[b * rows + taken++] = static_cast<int32_t>(j);
    }
  }
  return t;
}

// Two sequences of gathered query rows (GQA, D 64, window (30, 5)): bf16 with a 32 x 48 layout
// per KV head, f32 without one (`with_layout` false: the caller leaves the layout off).
inline LayoutCase query_positions_case(MaskKind mask, bool with_layout, int64_t seq_q,
                                       int64_t seq_k, int64_t heads, uint64_t seed) {
  LayoutCase c;
  ProblemSpec& s = c.spec = problem_spec(seq_q, seq_k, heads, 2, 64, mask, seed, /*batch=*/2);
  s.window_left = 30;
  s.window_right = 5;
  s.dtype = with_layout ? DType::kBF16 : DType::kF32;
  c.layout.block_q = 32;
  c.layout.block_k = 48;
  c.layout.layouts = s.kv_heads;
  c.layout.density = 0.5;
  c.layout.seed = seed;
  return c;
}

// The problem of query_positions_case with its gathered rows, the layout attached or not.
inline LayoutProblem query_positions_problem(const LayoutCase& c, bool with_layout) {
  LayoutProblem p(c);
  if (!with_layout) p.problem.params.block_layout = BlockLayout{};
  p.set_positions(gathered_positions(c.spec.batch, c.spec.seq_q, c.spec.seq_k, c.spec.seed));
  return p;
}

// --- packed sequences ---------------------------------------------------------------------

// Packed sequences of different lengths (one without queries, one without keys), GQA 8/2, D 80,
// causal, with one 64 x 32 layout per (sequence, KV head) that keeps the diagonal.
inline LayoutCase varlen_case(DType dtype, uint64_t seed) {
  LayoutCase c;
  ProblemSpec& s = c.spec;
  s.varlen_q = {100, 0, 333, 50};
  s.varlen_k = {120, 30, 517, 0};
  s.batch = 4;
  s.heads = 8;
  s.kv_heads = 2;
  s.head_dim = 80;
  s.mask = MaskKind::kCausal;
  s.dtype = dtype;
  s.with_lse = true;
  s.seed = seed;
  c.layout.block_q = 64;
  c.layout.block_k = 32;
  c.layout.layouts = s.batch * s.kv_heads;
  c.layout.density = 0.4;
  c.layout.keep_diagonal = true;
  c.layout.seed = seed;
  return c;
}

// Each packed row at a distinct key of its own sequence, ascending.
inline Tensor packed_positions(const ProblemSpec& s) {
  int64_t total = 0;
  for (int32_t n : s.varlen_q) total += n;
  Tensor positions(DType::kI32, {total});
  int64_t row = 0;
  for (size_t b = 0; b < s.varlen_q.size(); ++b)
    for (int32_t i = 0; i < s.varlen_q[b]; ++i)
      positions.data<int32_t>()[row++] = i * s.varlen_k[b] / std::max(s.varlen_q[b], 1) + 1;
  return positions;
}

// The varlen case with its layouts, then the same with q_positions on the packed rows and a
// (20, 3) window.
inline void check_varlen_layouts(const LayoutCase& c, const LayoutCheck& check) {
  {
    LayoutProblem p(c);
    check(p.problem, c.spec.to_string() + " layout B x Hkv");
  }
  LayoutProblem p(c);
  p.set_positions(packed_positions(c.spec));
  p.problem.params.mask = MaskKind::kSlidingWindow;
  p.problem.params.window_left = 20;
  p.problem.params.window_right = 3;
  check(p.problem, c.spec.to_string() + " window + q_positions");
}

// --- token masks and rank-1 layouts -------------------------------------------------------

// Token-level masks inside visited blocks: additive mask, key padding and soft-cap (MHA, 77 x
// 200) with a 16 x 64 layout that keeps the diagonal.
inline LayoutCase token_masks_case(uint64_t seed) {
  LayoutCase c;
  ProblemSpec& s = c.spec = problem_spec(77, 200, 4, 4, 64, MaskKind::kNone, seed, /*batch=*/2);
  s.additive_mask = true;
  s.key_lengths = {200, 101};
  s.softcap = 20.0f;
  c.layout.block_q = 16;
  c.layout.block_k = 64;
  c.layout.density = 0.5;
  c.layout.keep_diagonal = true;
  c.layout.seed = seed;
  return c;
}

// MQA, causal 130 x 130, one 48 x 32 layout (run it flat: LayoutProblem(c, true)).
inline LayoutCase rank_one_case(int64_t head_dim, uint64_t seed) {
  LayoutCase c;
  c.spec = problem_spec(130, 130, 4, 1, head_dim, MaskKind::kCausal, seed);
  c.layout.block_q = 48;
  c.layout.block_k = 32;
  c.layout.density = 0.5;
  c.layout.seed = seed;
  return c;
}

}  // namespace qwen3vl::testing
