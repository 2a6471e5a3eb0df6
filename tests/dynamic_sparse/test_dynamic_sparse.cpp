// Dynamic sparse prefill (variants/dynamic_sparse.hpp): every router with a keep-everything budget
// equals dense attention; block top-k and vertical-slash find planted patterns; routed layouts
// respect the masks; the routed forward equals the float64 reference run with the routed layout;
// exact top-k equals a float64 top-k oracle; bad knobs are typed errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "support/cpu_variants.hpp"
#include "support/problem.hpp"
#include "support/sweep.hpp"

namespace qwen3vl::testing {
namespace {

DynamicSparseConfig method_config(DynamicSparseMethod m) {
  DynamicSparseConfig c;
  c.method = m;
  return c;
}

// Budgets that keep every visible key (the counts, not the fraction).
DynamicSparseConfig keep_all(DynamicSparseMethod m) {
  DynamicSparseConfig c = method_config(m);
  c.top_k_blocks = 1 << 20;
  c.vertical = c.slash = int64_t{1} << 40;
  c.top_k = int64_t{1} << 40;
  return c;
}

std::unique_ptr<DynamicSparseAttention> make(const DynamicSparseConfig& c,
                                             CpuIsa isa = CpuIsa::kAuto, int threads = 2) {
  std::unique_ptr<DynamicSparseAttention> a;
  throw_if_error(create_dynamic_sparse_cpu(cpu_options(isa, threads), c, &a));
  return a;
}

// The routed layout of `a` for p (host memory in `scratch`).
BlockLayout estimate(const DynamicSparseAttention& a, const AttentionParams& p,
                     std::vector<unsigned char>* scratch) {
  scratch->assign(a.estimate_workspace_size(p), 0);
  BlockLayout layout;
  throw_if_error(a.estimate(p, Workspace{scratch->data(), scratch->size()}, &layout));
  AttentionShape s;
  throw_if_error(validate(p, &s));
  throw_if_error(validate_block_layout(layout, s.batch, s.kv_heads, s.max_q, s.max_k));
  return layout;
}

std::set<int32_t> listed(const BlockLayout& bl, int64_t l, int64_t row) {
  const int32_t* ptr = bl.row_ptr(l);
  return std::set<int32_t>(bl.col_ptr(l) + ptr[row], bl.col_ptr(l) + ptr[row + 1]);
}

// ---- knobs -------------------------------------------------------------------------------------

TEST(DynamicSparse, BadKnobsAreTypedErrors) {
  const auto expect_bad = [](DynamicSparseConfig c, const char* field) {
    std::unique_ptr<Attention> a;
    const Status s = create_dynamic_sparse_cpu(CpuOptions{}, c, &a);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  DynamicSparseConfig c = method_config(DynamicSparseMethod::kBlockTopK);
  c.block_q = 40;
  expect_bad(c, "block_q = 40");
  c = method_config(DynamicSparseMethod::kBlockTopK);
  c.block_k = 256;
  expect_bad(c, "block_k = 256");
  c.block_k = 64;
  c.top_k_blocks = -1;
  expect_bad(c, "top_k_blocks = -1");
  c.top_k_blocks = 0;
  c.sink_blocks = c.local_blocks = 0;
  expect_bad(c, "top_k_blocks = 0");
  c = method_config(DynamicSparseMethod::kBlockTopK);
  c.keep_fraction = 1.5;
  expect_bad(c, "keep_fraction = 1.5");
  c = method_config(DynamicSparseMethod::kVerticalSlash);
  c.last_queries = 0;
  expect_bad(c, "last_queries = 0");
  c = method_config(DynamicSparseMethod::kVerticalSlash);
  c.vertical = c.slash = 0;
  expect_bad(c, "vertical / slash = 0 / 0");
  c = method_config(DynamicSparseMethod::kVerticalSlash);
  c.forced_slash = -3;
  expect_bad(c, "forced_slash");
  c = method_config(DynamicSparseMethod::kExactTopK);
  c.top_k = 0;
  expect_bad(c, "top_k = 0");
  c = method_config(static_cast<DynamicSparseMethod>(7));
  expect_bad(c, "method = 7");
}

TEST(DynamicSparse, RefusesWeightsAndGivenLayouts) {
  for (DynamicSparseMethod m : {DynamicSparseMethod::kBlockTopK, DynamicSparseMethod::kExactTopK}) {
    ProblemSpec s = problem_spec(20, 20, 2, 1, 64, MaskKind::kCausal, 3);
    s.with_weights = true;
    Problem p(s);
    EXPECT_EQ(make(method_config(m))->supports(p.params).code(), StatusCode::kUnsupported);
  }
  const auto exact = make(method_config(DynamicSparseMethod::kExactTopK));
  Problem p(problem_spec(20, 20, 2, 1, 64, MaskKind::kCausal, 3));
  BlockLayout layout;
  EXPECT_EQ(exact->estimate(p.params, Workspace{}, &layout).code(), StatusCode::kUnsupported);
  const auto block = make(method_config(DynamicSparseMethod::kBlockTopK));
  EXPECT_EQ(block->estimate(p.params, Workspace{}, &layout).code(), StatusCode::kWorkspaceTooSmall);
}

// ---- exact top-k
// ---------------------------------------------------------------------------------

// Float64 oracle: each row keeps its k largest logits (k = min(top_k, visible keys)) as an additive
// mask [B, Hq, Lq, Lk] of 0 / -inf, then the reference runs with it. Fixed-length, no soft-cap.
Tensor topk_mask(const AttentionParams& p, int64_t top_k, double fraction) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  Tensor mask(DType::kF32, {s.batch, s.heads, s.max_q, s.max_k});
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.max_q; ++i) {
        std::vector<std::pair<double, int64_t>> scores;
        for (int64_t j = 0; j < s.max_k; ++j) {
          const int64_t at = ((b * s.heads + h) * s.max_q + i) * s.max_k + j;
          mask.set(at, neg_inf);
          if (!reference::key_visible(p, b, h, i, j, s.max_q, s.max_k)) continue;
          double dot = 0.0;
          for (int64_t c = 0; c < s.head_dim; ++c)
            dot += double(load_float(p.q, p.q.offset(b, i, h, c))) *
                   load_float(p.k, p.k.offset(b, j, h / s.group_size(), c));
          scores.emplace_back(dot, j);
        }
        const int64_t n = static_cast<int64_t>(scores.size());
        const int64_t k =
            fraction > 0 ? std::min<int64_t>(n, std::ceil(fraction * n)) : std::min(n, top_k);
        std::sort(scores.begin(), scores.end(), std::greater<>());
        for (int64_t e = 0; e < k; ++e)
          mask.set(((b * s.heads + h) * s.max_q + i) * s.max_k + scores[e].second, 0.0f);
      }
  return mask;
}

TEST(DynamicSparseExactTopK, MatchesFloat64Oracle) {
  struct Case {
    ProblemSpec spec;
    int64_t top_k;
    double fraction;
  };
  const Case cases[] = {
      {problem_spec(77, 77, 4, 2, 72, MaskKind::kCausal, 11), 7, 0.0},
      {problem_spec(50, 131, 6, 3, 80, MaskKind::kNone, 12), 1, 0.0},
      {problem_spec(100, 100, 4, 1, 64, MaskKind::kCausal, 13, 2), 32, 0.0},
      {problem_spec(33, 90, 2, 2, 128, MaskKind::kSlidingWindow, 14), 5, 0.0},
      {problem_spec(129, 129, 4, 2, 64, MaskKind::kCausal, 15), 0, 0.3},
      // > 1024 visible keys, k < a quarter of them: the sampled lower bound prunes the gather
      {problem_spec(40, 1500, 2, 1, 64, MaskKind::kNone, 16), 40, 0.0},
      {problem_spec(64, 1300, 4, 2, 72, MaskKind::kCausal, 17), 100, 0.0},
      {problem_spec(30, 2000, 2, 2, 64, MaskKind::kNone, 18), 0, 0.02},
  };
  for (const Case& c : cases) {
    Problem p(c.spec);
    DynamicSparseConfig cfg = method_config(DynamicSparseMethod::kExactTopK);
    cfg.top_k = c.top_k > 0 ? c.top_k : 1;
    cfg.keep_fraction = c.fraction;
    Tensor mask = topk_mask(p.params, c.top_k, c.fraction);
    AttentionParams oracle = p.params;
    oracle.additive_mask = mask.view();
    const reference::Result ref = reference::attention(oracle);
    for (CpuIsa isa : runnable_isas()) {
      const auto a = make(cfg, isa);
      a->run(p.params);
      EXPECT_LE(relative_error(p.params, ref), 1e-5) << to_string(isa) << " " << c.spec.to_string();
      EXPECT_LE(lse_max_error(p.params, ref), 1e-5) << to_string(isa) << " " << c.spec.to_string();
      EXPECT_GT(a->last_density(), 0.0);
      EXPECT_LT(a->last_density(), 1.0);
    }
  }
}

Status exact_keep_all(const CpuOptions& o, std::unique_ptr<Attention>* out) {
  return create_dynamic_sparse_cpu(o, keep_all(DynamicSparseMethod::kExactTopK), out);
}
Status exact_keep_fraction_one(const CpuOptions& o, std::unique_ptr<Attention>* out) {
  DynamicSparseConfig c = method_config(DynamicSparseMethod::kExactTopK);
  c.keep_fraction = 1.0;
  return create_dynamic_sparse_cpu(o, c, out);
}

// k >= the visible keys is dense attention, over the whole random sweep (dtypes, masks, varlen,
// key padding, additive mask, soft-cap, strides), and equals CPU flash2.
TEST(DynamicSparseExactTopK, KeepAllEqualsDense) {
  int n = 0;
  for (ProblemSpec s : attention_sweep()) {
    s.with_weights = false;
    expect_matches_reference(n++ % 2 ? exact_keep_all : exact_keep_fraction_one, s);
  }
  Problem p(problem_spec(129, 129, 4, 2, 80, MaskKind::kCausal, 21));
  make_cpu(exact_keep_all, CpuIsa::kAuto)->run(p.params);
  std::vector<float> ours(static_cast<size_t>(p.out.numel()));
  for (int64_t e = 0; e < p.out.numel(); ++e) ours[e] = p.out.get(e);
  make_cpu(create_flash2_cpu, CpuIsa::kAuto)->run(p.params);
  double diff = 0, norm = 0;
  for (int64_t e = 0; e < p.out.numel(); ++e) {
    diff += std::pow(ours[e] - p.out.get(e), 2);
    norm += std::pow(p.out.get(e), 2);
  }
  EXPECT_LE(std::sqrt(diff / norm), 2e-5);
}

TEST(DynamicSparseExactTopK, FullyMaskedRowsGiveZero) {
  expect_fully_masked_rows_zero(exact_keep_all, 9);
  expect_hidden_nan_keys_do_not_leak(exact_keep_all);
}

// ---- block routers: estimate() --------------------------------------------------------------

// Each query block I's rows share a direction u_I that only the keys of block target(I) carry;
// with one routed block per query block (no sink, no local), block top-k must pick target(I).
TEST(DynamicSparseBlockTopK, FindsPlantedBlocks) {
  const int64_t n = 64 * 7 + 19, d = 64, blocks = 8;  // odd N: a partial last block
  for (int64_t kv_heads : {1, 2}) {
    ProblemSpec s = problem_spec(n, n, 4, kv_heads, d, MaskKind::kNone, 31);
    Problem p(s);
    const auto target = [&](int64_t row_block, int64_t kv) {
      return (row_block * 3 + 2 + kv) % blocks;
    };
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t h = 0; h < s.heads; ++h)
        for (int64_t c = 0; c < d; ++c) {
          const float x = p.q.get((i * s.heads + h) * d + c) * 0.1f;
          p.q.set((i * s.heads + h) * d + c, x + (c == i / 64 ? 4.0f : 0.0f));
        }
      for (int64_t kv = 0; kv < kv_heads; ++kv)
        for (int64_t c = 0; c < d; ++c) {
          const float x = p.k.get((i * kv_heads + kv) * d + c) * 0.1f;
          bool planted = false;
          for (int64_t r = 0; r < blocks; ++r)
            planted = planted || (target(r, kv) == i / 64 && c == r);
          p.k.set((i * kv_heads + kv) * d + c, x + (planted ? 4.0f : 0.0f));
        }
    }
    DynamicSparseConfig cfg = method_config(DynamicSparseMethod::kBlockTopK);
    cfg.top_k_blocks = 1;
    cfg.sink_blocks = cfg.local_blocks = 0;
    const auto a = make(cfg);
    std::vector<unsigned char> scratch;
    const BlockLayout layout = estimate(*a, p.params, &scratch);
    ASSERT_EQ(layout.layouts(), kv_heads);
    for (int64_t kv = 0; kv < kv_heads; ++kv)
      for (int64_t r = 0; r < blocks; ++r)
        EXPECT_EQ(listed(layout, kv, r), std::set<int32_t>{int32_t(target(r, kv))})
            << "kv " << kv << " row block " << r;
    EXPECT_NEAR(a->last_density(), 1.0 / blocks, 1e-12);
    EXPECT_NE(a->describe().find("last density 0.125"), std::string::npos) << a->describe();
  }
}

// Keys 40, 123 and 201 attract every query, and key j matches query j + 37 (one diagonal). With
// 3 columns and 1 diagonal (none forced), every query block must list exactly the key blocks of
// those columns it can see plus the blocks the diagonal crosses in its rows.
TEST(DynamicSparseVerticalSlash, FindsPlantedColumnsAndDiagonal) {
  const int64_t n = 301, d = 64, delta = 37, bq = 16, bk = 32;
  const std::vector<int64_t> heavy = {40, 123, 201};
  ProblemSpec s = problem_spec(n, n, 2, 1, d, MaskKind::kCausal, 41);
  Problem p(s);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> r(n + delta + 1, std::vector<float>(d));
  for (auto& v : r) {
    float norm = 0;
    for (float& x : v) {
      x = normal(rng);
      norm += x * x;
    }
    for (float& x : v) x /= std::sqrt(norm);
  }
  std::vector<float> u(d, 0.0f);
  u[0] = 1.0f;
  for (auto& v : r) v[0] = 0.0f;  // u is orthogonal to every r
  // Logits (scale 1/8): 10 on the diagonal and the heavy columns, N(0, 1.26^2) elsewhere.
  const float q_u = 4.0f, k_u = 20.0f, c_r = std::sqrt(80.0f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t c = 0; c < d; ++c)
        p.q.set((i * s.heads + h) * d + c, q_u * u[c] + c_r * r[i][c]);
    const bool is_heavy = std::count(heavy.begin(), heavy.end(), i) > 0;
    for (int64_t c = 0; c < d; ++c)
      p.k.set(i * d + c, is_heavy ? k_u * u[c] : c_r * r[i + delta][c]);
  }
  DynamicSparseConfig cfg = method_config(DynamicSparseMethod::kVerticalSlash);
  cfg.block_q = bq;
  cfg.block_k = bk;
  cfg.vertical = 3;
  cfg.slash = 1;
  cfg.forced_vertical = cfg.forced_slash = 0;
  const auto a = make(cfg);
  std::vector<unsigned char> scratch;
  const BlockLayout layout = estimate(*a, p.params, &scratch);
  for (int64_t row = 0; row * bq < n; ++row) {
    const int64_t r0 = row * bq, r1 = std::min(n, r0 + bq);
    std::set<int32_t> want;
    for (int64_t j : heavy)
      if (j < r1) want.insert(int32_t(j / bk));
    for (int64_t i = std::max(r0, delta); i < r1; ++i) want.insert(int32_t((i - delta) / bk));
    EXPECT_EQ(listed(layout, 0, row), want) << "row block " << row;
  }
  // MInference's forcing: the first 30 columns and the diagonal itself come back.
  cfg.forced_vertical = 30;
  cfg.forced_slash = 1;
  cfg.vertical = 4;
  cfg.slash = 2;
  const BlockLayout forced = estimate(*make(cfg), p.params, &scratch);
  for (int64_t row = 0; row * bq < n; ++row) {
    const std::set<int32_t> got = listed(forced, 0, row);
    EXPECT_TRUE(got.count(0)) << "row block " << row << ": column 0 is forced";
    EXPECT_TRUE(got.count(int32_t((row * bq + bq - 1 < n ? row * bq + bq - 1 : n - 1) / bk)))
        << "row block " << row << ": the main diagonal is forced";
  }
}

// With a keep-everything budget both routers list every visible block (density 1), and with a
// small one no block holds only keys the rows cannot see (causal, window, key padding, varlen).
TEST(DynamicSparseBlockRouters, LayoutsCoverVisibleBlocksOnly) {
  std::vector<ProblemSpec> specs = {problem_spec(200, 200, 4, 2, 72, MaskKind::kCausal, 51, 2),
                                    problem_spec(77, 150, 2, 1, 80, MaskKind::kCausal, 52),
                                    problem_spec(150, 77, 3, 3, 64, MaskKind::kNone, 53),
                                    problem_spec(130, 130, 4, 1, 64, MaskKind::kSlidingWindow, 54),
                                    problem_spec(90, 160, 2, 2, 64, MaskKind::kCausalTopLeft, 55)};
  specs[3].window_left = 40;
  specs[3].window_right = 0;
  specs[0].key_lengths = {200, 120};
  ProblemSpec varlen = problem_spec(0, 0, 4, 2, 64, MaskKind::kCausal, 56);
  varlen.varlen_q = varlen.varlen_k = {100, 0, 45};
  specs.push_back(varlen);
  for (DynamicSparseMethod m :
       {DynamicSparseMethod::kBlockTopK, DynamicSparseMethod::kVerticalSlash})
    for (const ProblemSpec& s : specs) {
      Problem p(s);
      std::vector<unsigned char> scratch;
      DynamicSparseConfig all = keep_all(m);
      all.block_q = 32;
      all.block_k = 16;
      const auto dense = make(all);
      estimate(*dense, p.params, &scratch);
      EXPECT_DOUBLE_EQ(dense->last_density(), 1.0) << to_string(m) << " " << s.to_string();

      DynamicSparseConfig few = method_config(m);
      few.block_q = 32;
      few.block_k = 16;
      few.top_k_blocks = 1;
      few.vertical = 5;
      few.slash = 5;
      const auto sparse = make(few);
      AttentionParams routed = p.params;
      routed.block_layout = estimate(*sparse, p.params, &scratch);
      EXPECT_LT(sparse->last_density(), 1.0) << to_string(m) << " " << s.to_string();
      AttentionShape shape;
      throw_if_error(validate(p.params, &shape));
      for (int64_t b = 0; b < shape.batch; ++b) {
        const SequenceSpan span = sequence_span(p.params, b);
        for (int64_t kv = 0; kv < shape.kv_heads; ++kv)
          for (int64_t row = 0; row * 32 < std::max<int64_t>(span.q_len, 1); ++row)
            for (int32_t col : listed(routed.block_layout, b * shape.kv_heads + kv, row)) {
              bool seen = false;
              for (int64_t i = row * 32; i < std::min<int64_t>(span.q_len, row * 32 + 32); ++i) {
                const KeyRange r = row_visible_keys(p.params, b, span, i);
                seen = seen || (r.begin < (col + 1) * 16 && r.end > col * 16);
              }
              EXPECT_TRUE(seen) << to_string(m) << " " << s.to_string() << " b" << b << " row "
                                << row << " col " << col;
            }
      }
    }
}

// ---- block routers: the routed forward --------------------------------------------------------

Status block_topk_keep_all(const CpuOptions& o, std::unique_ptr<Attention>* out) {
  return create_dynamic_sparse_cpu(o, keep_all(DynamicSparseMethod::kBlockTopK), out);
}
Status vertical_slash_keep_all(const CpuOptions& o, std::unique_ptr<Attention>* out) {
  DynamicSparseConfig c = method_config(DynamicSparseMethod::kVerticalSlash);
  c.keep_fraction = 1.0;
  c.block_q = 32;
  c.block_k = 48;
  return create_dynamic_sparse_cpu(o, c, out);
}

TEST(DynamicSparseBlockRouters, KeepAllEqualsDense) {
  int n = 0;
  for (ProblemSpec s : attention_sweep()) {
    s.with_weights = false;
    expect_matches_reference(n++ % 2 ? block_topk_keep_all : vertical_slash_keep_all, s);
  }
  expect_fully_masked_rows_zero(block_topk_keep_all, 9);
  expect_fully_masked_rows_zero(vertical_slash_keep_all, 9);
}

// A partial budget: forward() equals the float64 reference run with the layout estimate() gives
// (routing is deterministic), on odd shapes, GQA, causal and not.
TEST(DynamicSparseBlockRouters, ForwardEqualsReferenceWithRoutedLayout) {
  const ProblemSpec specs[] = {problem_spec(300, 300, 4, 2, 72, MaskKind::kCausal, 61),
                               problem_spec(130, 211, 6, 3, 80, MaskKind::kNone, 62),
                               problem_spec(257, 257, 2, 1, 64, MaskKind::kCausal, 63, 2)};
  for (DynamicSparseMethod m :
       {DynamicSparseMethod::kBlockTopK, DynamicSparseMethod::kVerticalSlash})
    for (const ProblemSpec& s : specs) {
      DynamicSparseConfig cfg = method_config(m);
      cfg.block_q = 32;
      cfg.block_k = 32;
      cfg.top_k_blocks = 2;
      cfg.vertical = 4;
      cfg.slash = 4;
      cfg.forced_vertical = 2;
      cfg.forced_slash = 2;
      for (CpuIsa isa : runnable_isas()) {
        Problem p(s);
        const auto a = make(cfg, isa);
        a->run(p.params);
        const double density = a->last_density();
        EXPECT_GT(density, 0.0);
        EXPECT_LT(density, 1.0) << to_string(m) << " " << s.to_string();
        std::vector<unsigned char> scratch;
        AttentionParams routed = p.params;
        routed.block_layout = estimate(*a, p.params, &scratch);
        EXPECT_EQ(a->last_density(), density);
        const reference::Result ref = reference::attention(routed);
        EXPECT_LE(relative_error(p.params, ref), 1e-5)
            << to_string(isa) << " " << to_string(m) << " " << s.to_string();
        EXPECT_LE(lse_max_error(p.params, ref), 1e-5) << to_string(isa) << " " << s.to_string();
      }
    }
}

// Routed rows of many separate key-block runs (the block-sparse kernel's scratch grows with the
// runs): workspace_size() must cover any layout the router can produce.
TEST(DynamicSparseBlockRouters, FragmentedLayoutsFitTheWorkspace) {
  Problem p(problem_spec(700, 700, 2, 1, 64, MaskKind::kNone, 71));
  DynamicSparseConfig cfg = method_config(DynamicSparseMethod::kBlockTopK);
  cfg.block_q = cfg.block_k = 16;
  cfg.top_k_blocks = 20;
  cfg.sink_blocks = cfg.local_blocks = 0;
  const auto a = make(cfg);
  a->run(p.params);
  std::vector<unsigned char> scratch;
  AttentionParams routed = p.params;
  routed.block_layout = estimate(*a, p.params, &scratch);
  int64_t most_runs = 0;
  for (int64_t row = 0; row < routed.block_layout.row_blocks(); ++row) {
    int64_t runs = 0, previous = -2;
    for (int32_t c : listed(routed.block_layout, 0, row)) runs += c != previous + 1, previous = c;
    most_runs = std::max(most_runs, runs);
  }
  EXPECT_GE(most_runs, 8);
  EXPECT_LE(relative_error(p.params, reference::attention(routed)), 1e-5);
}

}  // namespace
}  // namespace qwen3vl::testing
