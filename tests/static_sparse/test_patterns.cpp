// Static sparse patterns: every builder against a per-element re-statement of its definition
// (research specs 2.2, DeepSpeed sparsity_config.py), compared token by token with materialize();
// hand-worked DeepSpeed grids; the BSR conversions; the seeded random blocks; typed knob errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl {
namespace {

// ---- The definitions, one (key-block row R, key block J) pair at a time ----------------------

bool contains(const std::vector<int32_t>& v, int64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Start of the global range holding block x, or -1 (single indices are ranges of one block).
int64_t global_start(const GlobalBlocks& g, int64_t x, int64_t nb) {
  int64_t found = -1;
  for (size_t i = 0; i < g.global_block_indices.size(); ++i) {
    const int64_t s = g.global_block_indices[i];
    const int64_t e = g.global_block_end_indices.empty() ? s + 1 : g.global_block_end_indices[i];
    if (s < nb && x >= s && x < e && (found < 0 || s < found)) found = s;
  }
  return found;
}

// Variable's window start of block x: the listed sizes in turn, then the last size repeating.
int64_t variable_window_start(const std::vector<int32_t>& sizes, int64_t x) {
  int64_t start = 0;
  size_t k = 0;
  while (true) {
    const int64_t size = sizes[std::min(k, sizes.size() - 1)];
    if (x < start + size) return start;
    start += size;
    ++k;
  }
}

bool fixed_allowed(const StaticSparseConfig& c, int64_t head, int64_t r, int64_t j, int64_t nb) {
  const FixedPattern& f = c.fixed;
  const int64_t l = f.num_local_blocks, g = f.num_global_blocks;
  const bool uni = c.unidirectional;
  if (r / l == j / l && (!uni || j <= r)) return true;
  const int64_t first = l - (1 + head % f.num_different_global_patterns) * g;
  const int64_t full_end = nb - nb % l;
  const int64_t last_start = std::max<int64_t>(0, std::min(full_end + first, nb - g));
  // Start of a global group holding block x whose rows reach row `row`, or -1.
  const auto group_start = [&](int64_t x) {
    if (x < full_end && x % l >= first && x % l < first + g) return x - x % l + first;
    if (full_end < nb && x >= last_start && x < last_start + g) return last_start;
    return int64_t{-1};
  };
  const auto column_reaches = [&](int64_t x, int64_t row) {
    // x may be in both a full window's group and the short window's group: either counts.
    if (x < full_end && x % l >= first && x % l < first + g && (!uni || row >= x - x % l + first))
      return true;
    return full_end < nb && x >= last_start && x < last_start + g && (!uni || row >= last_start);
  };
  if (column_reaches(j, r)) return true;
  return f.horizontal_global_attention && group_start(r) >= 0;
}

bool expected_allowed(const StaticSparseConfig& c, int64_t head, int64_t r, int64_t j, int64_t nb) {
  const bool uni = c.unidirectional;
  const int64_t dist = r > j ? r - j : j - r;
  switch (c.pattern) {
    case SparsePattern::kDense: return true;
    case SparsePattern::kSlidingWindow: {
      const int64_t w = c.sliding_window.num_sliding_window_blocks / 2;
      return uni ? (j <= r && r - j <= w) : dist <= w;
    }
    case SparsePattern::kDilated: {
      const DilatedPattern& d = c.dilated;
      if (uni && j > r) return false;
      return dist <= d.local_blocks ||
             (dist % d.dilation == 0 && (d.span_blocks == 0 || dist <= d.span_blocks));
    }
    case SparsePattern::kLongformer: {
      const LongformerPattern& p = c.longformer;
      const bool any = dist <= p.num_sliding_window_blocks / 2 ||
                       global_start(p.global, r, nb) >= 0 || global_start(p.global, j, nb) >= 0;
      return any && (!uni || j <= r);
    }
    case SparsePattern::kBigBird: {
      const BigBirdPattern& p = c.bigbird;
      const int64_t layout = c.different_layout_per_head ? head : 0;
      const bool any =
          contains(random_blocks(c.seed, layout, r, uni ? r + 1 : nb, p.num_random_blocks), j) ||
          dist <= p.num_sliding_window_blocks / 2 || r < p.num_global_blocks ||
          j < p.num_global_blocks;
      return any && (!uni || j <= r);
    }
    case SparsePattern::kFixed: return fixed_allowed(c, head, r, j, nb);
    case SparsePattern::kVariable: {
      const VariablePattern& p = c.variable;
      const int64_t layout = c.different_layout_per_head ? head : 0;
      if (contains(random_blocks(c.seed, layout, r, nb, p.num_random_blocks), j)) return true;
      if (variable_window_start(p.local_window_blocks, r) ==
              variable_window_start(p.local_window_blocks, j) &&
          (!uni || j <= r))
        return true;
      if (p.horizontal_global_attention && global_start(p.global, r, nb) >= 0) return true;
      // A global column from its range's first row on (unidirectional): any range holding j.
      for (size_t i = 0; i < p.global.global_block_indices.size(); ++i) {
        GlobalBlocks one;
        one.global_block_indices = {p.global.global_block_indices[i]};
        if (!p.global.global_block_end_indices.empty())
          one.global_block_end_indices = {p.global.global_block_end_indices[i]};
        const int64_t s = global_start(one, j, nb);
        if (s >= 0 && (!uni || r >= s)) return true;
      }
      return false;
    }
  }
  return false;
}

// ---- Checking a built layout token by token --------------------------------------------------

void expect_pattern(const StaticSparseConfig& c, int64_t q_len, int64_t k_len, int64_t kv_heads) {
  SCOPED_TRACE(c.to_string() + " Lq " + std::to_string(q_len) + " Lk " + std::to_string(k_len) +
               " Hkv " + std::to_string(kv_heads));
  BlockLayoutData d;
  const Status s = build_static_sparse_layout(c, q_len, k_len, kv_heads, &d);
  ASSERT_TRUE(s.ok()) << s.to_string();
  const BlockLayout view = d.view();
  const Status valid = validate_block_layout(view, 1, kv_heads, q_len, k_len);
  ASSERT_TRUE(valid.ok()) << valid.to_string();
  ASSERT_EQ(view.layouts(), c.different_layout_per_head ? kv_heads : 1);
  const int64_t b = c.block;
  const int64_t nb = (k_len + b - 1) / b;
  const int64_t shift = (k_len - q_len) / b;  // bottom-right: query block I is key block I + shift
  for (int64_t l = 0; l < view.layouts(); ++l) {
    const std::vector<uint8_t> mask = materialize(view, l, q_len, k_len);
    std::vector<uint8_t> blocks(static_cast<size_t>(nb * nb));  // the definition, once per block
    for (int64_t r = 0; r < nb; ++r)
      for (int64_t j = 0; j < nb; ++j) blocks[r * nb + j] = expected_allowed(c, l, r, j, nb);
    int64_t wrong = 0;
    for (int64_t i = 0; i < q_len; ++i)
      for (int64_t j = 0; j < k_len; ++j) {
        const bool want = blocks[(i / b + shift) * nb + j / b] != 0;
        if (want != (mask[static_cast<size_t>(i * k_len + j)] != 0) && wrong++ < 5)
          ADD_FAILURE() << "layout " << l << " query " << i << " key " << j << ": want " << want;
      }
    EXPECT_EQ(wrong, 0) << "layout " << l;
  }
}

// Shapes: odd lengths (a partial last block), Lk > Lq aligned bottom-right, tiny grids (fewer
// blocks than the windows), one block.
struct Shape {
  int64_t q_len, k_len;
  int32_t block;
};
const Shape kShapes[] = {{100, 100, 16}, {257, 257, 32}, {40, 104, 16}, {130, 386, 64},
                         {1, 1, 16},     {33, 33, 16},   {500, 500, 16}};

void expect_on_every_shape(StaticSparseConfig c, int64_t kv_heads = 3) {
  for (const Shape& s : kShapes)
    for (bool uni : {false, true}) {
      c.block = s.block;
      c.unidirectional = uni;
      if (validate(c).ok()) expect_pattern(c, s.q_len, s.k_len, kv_heads);
    }
}

TEST(StaticPatterns, DenseListsEveryBlock) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kDense;
  expect_on_every_shape(c);
}

TEST(StaticPatterns, SlidingWindow) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kSlidingWindow;
  for (int32_t s : {1, 2, 3, 6, 9}) {
    c.sliding_window.num_sliding_window_blocks = s;
    expect_on_every_shape(c);
  }
}

TEST(StaticPatterns, Dilated) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kDilated;
  const DilatedPattern knobs[] = {{1, 4, 0}, {0, 2, 0}, {2, 3, 10}, {3, 4, 4}};
  for (const DilatedPattern& d : knobs) {
    c.dilated = d;
    expect_on_every_shape(c);
  }
}

TEST(StaticPatterns, Longformer) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kLongformer;
  expect_on_every_shape(c);
  c.longformer.num_sliding_window_blocks = 5;
  c.longformer.global.global_block_indices = {0, 3, 40};  // 40 is past most grids: skipped
  expect_on_every_shape(c);
  c.longformer.global.global_block_indices = {1, 6};
  c.longformer.global.global_block_end_indices = {3, 100};  // the second range is clipped
  expect_on_every_shape(c);
}

TEST(StaticPatterns, BigBird) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kBigBird;
  for (uint64_t seed : {0u, 7u}) {
    c.seed = seed;
    c.bigbird = {1, 3, 1};
    expect_on_every_shape(c);
    c.bigbird = {3, 5, 2};
    c.different_layout_per_head = true;
    expect_on_every_shape(c);
    c.different_layout_per_head = false;
  }
}

TEST(StaticPatterns, FixedIncludingShortFinalWindowAndHeadPatterns) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kFixed;
  const FixedPattern knobs[] = {{4, 1, false, 1}, {4, 2, false, 1}, {4, 1, true, 1},
                                {6, 2, false, 3}, {4, 1, true, 4},  {3, 3, false, 1}};
  for (const FixedPattern& f : knobs) {
    c.fixed = f;
    c.different_layout_per_head = f.num_different_global_patterns > 1;
    expect_on_every_shape(c, /*kv_heads=*/5);  // 5 heads over up to 4 patterns: they wrap
  }
}

TEST(StaticPatterns, VariableRandomFromAllBlocksEvenUnidirectional) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kVariable;
  expect_on_every_shape(c);
  c.variable.num_random_blocks = 2;
  c.variable.local_window_blocks = {1, 3, 2};
  c.variable.global.global_block_indices = {0, 5};
  expect_on_every_shape(c);
  c.variable.global.global_block_end_indices = {2, 8};
  c.different_layout_per_head = true;
  c.seed = 3;
  expect_on_every_shape(c);
  c.variable.horizontal_global_attention = true;  // skipped by the unidirectional pass (invalid)
  expect_on_every_shape(c);

  // The trap: unidirectional rows still draw from every block, so some land in the future.
  c = StaticSparseConfig();
  c.pattern = SparsePattern::kVariable;
  c.unidirectional = true;
  c.block = 16;
  c.variable.num_random_blocks = 4;
  BlockLayoutData d;
  ASSERT_TRUE(build_static_sparse_layout(c, 16 * 64, 16 * 64, 1, &d).ok());
  int64_t future = 0;
  for (int64_t r = 0; r < d.row_blocks; ++r)
    for (int32_t e = d.indptr[r]; e < d.indptr[r + 1]; ++e) future += d.indices[e] > r;
  EXPECT_GT(future, 0);
}

// ---- DeepSpeed grids worked by hand (rows are key-block rows R, columns J) -------------------

std::vector<std::string> block_rows(const StaticSparseConfig& c, int64_t nb) {
  BlockLayoutData d;
  const Status s = build_static_sparse_layout(c, nb * c.block, nb * c.block, 1, &d);
  EXPECT_TRUE(s.ok()) << s.to_string();
  std::vector<std::string> rows(static_cast<size_t>(nb), std::string(static_cast<size_t>(nb), '0'));
  for (int64_t r = 0; r < nb; ++r)
    for (int32_t e = d.indptr[r]; e < d.indptr[r + 1]; ++e) rows[r][d.indices[e]] = '1';
  return rows;
}

TEST(StaticPatterns, FixedMatchesHandWorkedGrid) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kFixed;
  c.block = 16;
  c.fixed = {2, 1, false, 1};  // windows [0,2) [2,4) [4,5); global column 1 of each window
  EXPECT_EQ(block_rows(c, 5),
            (std::vector<std::string>{"11011", "11011", "01111", "01111", "01011"}));
  c.unidirectional = true;
  EXPECT_EQ(block_rows(c, 5),
            (std::vector<std::string>{"10000", "11000", "01100", "01110", "01011"}));
}

TEST(StaticPatterns, VariableAndBigBirdMatchHandWorkedGrids) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kVariable;
  c.block = 16;
  c.variable.local_window_blocks = {1, 2};  // windows [0,1) [1,3) [3,5) [5,7): 2 repeats
  EXPECT_EQ(block_rows(c, 7), (std::vector<std::string>{"1000000", "1110000", "1110000", "1001100",
                                                        "1001100", "1000011", "1000011"}));
  c = StaticSparseConfig();
  c.pattern = SparsePattern::kBigBird;
  c.block = 16;
  c.bigbird = {0, 3, 1};
  c.unidirectional = true;  // global row 0 and column 0, window +-1, then tril
  EXPECT_EQ(block_rows(c, 4), (std::vector<std::string>{"1000", "1100", "1110", "1011"}));
}

// ---- Seeds, per-head layouts -----------------------------------------------------------------

TEST(StaticPatterns, RandomBlocksAreDistinctSortedInRangeAndSeeded) {
  std::vector<int64_t> hits(50, 0);
  for (int64_t row = 0; row < 4000; ++row) {
    const std::vector<int32_t> r = random_blocks(11, 2, row, 50, 5);
    ASSERT_EQ(r.size(), 5u);
    ASSERT_TRUE(std::is_sorted(r.begin(), r.end()));
    ASSERT_TRUE(std::adjacent_find(r.begin(), r.end()) == r.end());
    for (int32_t j : r) {
      ASSERT_TRUE(j >= 0 && j < 50);
      ++hits[j];
    }
    ASSERT_EQ(r, random_blocks(11, 2, row, 50, 5));  // a pure function of its arguments
  }
  // Uniform: 400 expected hits per block; 5 sigma is about 100.
  for (int64_t h : hits) EXPECT_NEAR(h, 400, 100);
  EXPECT_NE(random_blocks(11, 2, 0, 1000, 8), random_blocks(12, 2, 0, 1000, 8));
  EXPECT_NE(random_blocks(11, 2, 0, 1000, 8), random_blocks(11, 3, 0, 1000, 8));
  EXPECT_NE(random_blocks(11, 2, 0, 1000, 8), random_blocks(11, 2, 1, 1000, 8));
  EXPECT_EQ(random_blocks(1, 0, 0, 3, 5), (std::vector<int32_t>{0, 1, 2}));  // all, not more
  EXPECT_TRUE(random_blocks(1, 0, 0, 3, 0).empty());
}

TEST(StaticPatterns, SeedsReproduceAndPerHeadLayoutsDiffer) {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kBigBird;
  c.block = 32;
  c.bigbird.num_random_blocks = 3;
  c.different_layout_per_head = true;
  BlockLayoutData a, b, other;
  ASSERT_TRUE(build_static_sparse_layout(c, 1000, 1000, 4, &a).ok());
  ASSERT_TRUE(build_static_sparse_layout(c, 1000, 1000, 4, &b).ok());
  EXPECT_EQ(a.indptr, b.indptr);
  EXPECT_EQ(a.indices, b.indices);
  c.seed = 99;
  ASSERT_TRUE(build_static_sparse_layout(c, 1000, 1000, 4, &other).ok());
  EXPECT_NE(a.indices, other.indices);
  const BlockLayout v = a.view();
  EXPECT_NE(materialize(v, 0, 1000, 1000), materialize(v, 1, 1000, 1000));

  // Fixed: head h uses global pattern h % 2.
  StaticSparseConfig f;
  f.pattern = SparsePattern::kFixed;
  f.block = 16;
  f.fixed = {4, 2, false, 2};
  f.different_layout_per_head = true;
  BlockLayoutData d;
  ASSERT_TRUE(build_static_sparse_layout(f, 256, 256, 3, &d).ok());
  const BlockLayout fv = d.view();
  EXPECT_NE(materialize(fv, 0, 256, 256), materialize(fv, 1, 256, 256));
  EXPECT_EQ(materialize(fv, 0, 256, 256), materialize(fv, 2, 256, 256));
}

// ---- The BSR conversions ---------------------------------------------------------------------

TEST(BlockLayoutData, FromBlockMaskRoundTripsThroughMaterialize) {
  std::mt19937 rng(5);
  const int64_t layouts = 3, nbq = 7, nbk = 9;
  const int32_t bq = 32, bk = 16;
  std::vector<uint8_t> mask(static_cast<size_t>(layouts * nbq * nbk));
  for (auto& m : mask) m = rng() % 3 == 0;
  mask[0] = 1;
  std::fill(mask.begin() + nbk, mask.begin() + 2 * nbk, 0);  // an empty row block
  BlockLayoutData d;
  const Status s = from_block_mask(mask, layouts, nbq, nbk, bq, bk, &d);
  ASSERT_TRUE(s.ok()) << s.to_string();
  const int64_t q_len = nbq * bq - 5, k_len = nbk * bk - 3;  // partial last blocks
  for (int64_t l = 0; l < layouts; ++l) {
    const std::vector<uint8_t> tokens = materialize(d.view(), l, q_len, k_len);
    int64_t listed = 0;
    for (int64_t i = 0; i < q_len; ++i)
      for (int64_t j = 0; j < k_len; ++j)
        ASSERT_EQ(tokens[static_cast<size_t>(i * k_len + j)],
                  mask[static_cast<size_t>((l * nbq + i / bq) * nbk + j / bk)])
            << l << " " << i << " " << j;
    for (int64_t x = 0; x < nbq * nbk; ++x) listed += mask[static_cast<size_t>(l * nbq * nbk + x)];
    EXPECT_EQ(d.blocks(l), listed);
  }
  EXPECT_EQ(from_block_mask(mask, layouts, nbq, nbk + 1, bq, bk, &d).code(),
            StatusCode::kShapeMismatch);
  EXPECT_EQ(from_block_mask(mask, layouts, nbq, nbk, 24, bk, &d).code(),
            StatusCode::kInvalidArgument);  // block_q not a multiple of 16
}

// ---- Knob errors -------------------------------------------------------------------------------

void expect_error(const StaticSparseConfig& c, StatusCode code, const std::string& names) {
  const Status s = validate(c);
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(names), std::string::npos) << s.message();
  BlockLayoutData d;
  EXPECT_EQ(build_static_sparse_layout(c, 64, 64, 1, &d).code(), code);
}

TEST(StaticPatterns, BadKnobsGiveTypedErrors) {
  using SC = StaticSparseConfig;
  SC c;
  c.block = 24;
  expect_error(c, StatusCode::kInvalidArgument, "block = 24");
  c = SC();
  c.sliding_window.num_sliding_window_blocks = 0;
  expect_error(c, StatusCode::kInvalidArgument, "num_sliding_window_blocks = 0");
  c = SC();
  c.pattern = SparsePattern::kDilated;
  c.dilated.dilation = 0;
  expect_error(c, StatusCode::kInvalidArgument, "dilated.dilation = 0");
  c = SC();
  c.pattern = SparsePattern::kFixed;
  c.fixed.num_local_blocks = 6;
  c.fixed.num_global_blocks = 4;
  expect_error(c, StatusCode::kInvalidArgument, "fixed.num_local_blocks = 6");
  c.fixed = FixedPattern();
  c.fixed.horizontal_global_attention = true;
  c.unidirectional = true;
  expect_error(c, StatusCode::kInvalidArgument, "horizontal_global_attention");
  c = SC();
  c.pattern = SparsePattern::kFixed;
  c.fixed.num_different_global_patterns = 2;  // without different_layout_per_head
  expect_error(c, StatusCode::kInvalidArgument, "different_layout_per_head");
  c.different_layout_per_head = true;
  c.fixed.num_different_global_patterns = 5;  // more than 4 / 1
  expect_error(c, StatusCode::kInvalidArgument, "num_different_global_patterns = 5");
  c = SC();
  c.pattern = SparsePattern::kVariable;
  c.variable.local_window_blocks = {};
  expect_error(c, StatusCode::kInvalidArgument, "local_window_blocks");
  c.variable.local_window_blocks = {2};
  c.variable.global.global_block_end_indices = {0};
  expect_error(c, StatusCode::kInvalidArgument, "global_block_end_indices[0] = 0");
  c = SC();
  c.pattern = SparsePattern::kLongformer;
  c.longformer.global.global_block_indices = {0, 1};
  c.longformer.global.global_block_end_indices = {4};
  expect_error(c, StatusCode::kInvalidArgument, "global_block_end_indices has 1");
  c = SC();
  c.pattern = SparsePattern::kBigBird;
  c.bigbird.num_random_blocks = -1;
  expect_error(c, StatusCode::kInvalidArgument, "bigbird.num_random_blocks = -1");

  BlockLayoutData d;  // query blocks must align with key blocks
  const Status s = build_static_sparse_layout(SC(), 64, 100, 1, &d);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("max_k = 100"), std::string::npos) << s.message();
  EXPECT_EQ(build_static_sparse_layout(SC(), 128, 64, 1, &d).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace qwen3vl
