// The static-sparse CPU variant against the float64 reference given the same layout (built by the
// pattern builders, which test_patterns checks against their definitions), on every ISA.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/static_sparse.hpp"
#include "support/cpu_variants.hpp"

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;
using testing::runnable_isas;

std::unique_ptr<Attention> make(const StaticSparseConfig& c, CpuIsa isa, int threads = 2) {
  std::unique_ptr<Attention> a;
  throw_if_error(create_static_sparse_cpu(testing::cpu_options(isa, threads), c, &a));
  return a;
}

// The reference of p with the pattern's layout attached (p.params itself stays without one).
reference::Result reference_with_pattern(const StaticSparseConfig& c, const Problem& p,
                                         BlockLayoutData* layout) {
  AttentionShape s;
  throw_if_error(validate(p.params, &s));
  throw_if_error(build_static_sparse_layout(c, s.max_q, s.max_k, s.kv_heads, layout));
  AttentionParams with = p.params;
  with.block_layout = layout->view();
  return reference::attention(with);
}

// Whether layout 0 leaves out a block on or below the block diagonal (every block when not
// causal); bottom-right, row block I's diagonal is column block I + NBk - NBq.
bool hides_a_visible_block(const BlockLayoutData& layout, bool causal) {
  const int64_t shift = layout.col_blocks - layout.row_blocks;
  for (int64_t r = 0; r < layout.row_blocks; ++r) {
    const int64_t visible = causal ? r + shift + 1 : layout.col_blocks;
    int64_t listed = 0;
    for (int32_t e = layout.indptr[r]; e < layout.indptr[r + 1]; ++e)
      listed += layout.indices[e] < visible;
    if (listed < visible) return true;
  }
  return false;
}

void expect_matches(const StaticSparseConfig& c, const ProblemSpec& spec) {
  const std::string label = c.to_string() + " " + spec.to_string();
  Problem p(spec);
  BlockLayoutData layout;
  const reference::Result ref = reference_with_pattern(c, p, &layout);
  // The pattern must hide some block the token masks leave visible, or this comparison proves
  // nothing about the layout walk.
  ASSERT_TRUE(hides_a_visible_block(layout, spec.mask != MaskKind::kNone)) << label;
  for (CpuIsa isa : runnable_isas()) {
    const auto attn = make(c, isa);
    const Status ok = attn->supports(p.params);
    ASSERT_TRUE(ok.ok()) << ok.to_string() << " " << label;
    attn->run(p.params);
    EXPECT_LE(testing::relative_error(p.params, ref), testing::tolerance(spec.dtype))
        << to_string(isa) << " " << label;
    if (spec.with_lse) {
      EXPECT_LE(testing::lse_max_error(p.params, ref), spec.dtype == DType::kF32 ? 1e-5 : 1e-2)
          << to_string(isa) << " " << label;
    }
  }
}

StaticSparseConfig pattern(SparsePattern kind, int32_t block, bool uni) {
  StaticSparseConfig c;
  c.pattern = kind;
  c.block = block;
  c.unidirectional = uni;
  c.seed = 17;
  c.sliding_window.num_sliding_window_blocks = 3;
  c.dilated = {1, 3, 0};
  c.longformer.global.global_block_indices = {1};
  c.bigbird = {1, 3, 1};
  c.fixed = {4, 1, !uni, 1};
  c.variable.num_random_blocks = 1;
  c.variable.local_window_blocks = {2, 3};
  return c;
}

ProblemSpec spec_for(int64_t seq_q, int64_t seq_k, int64_t heads, int64_t kv_heads, int64_t dim,
                     bool uni, uint64_t seed) {
  ProblemSpec s;
  s.seq_q = seq_q;
  s.seq_k = seq_k;
  s.heads = heads;
  s.kv_heads = kv_heads;
  s.head_dim = dim;
  s.mask = uni ? MaskKind::kCausal : MaskKind::kNone;  // unidirectional patterns want causal
  s.with_lse = true;
  s.seed = seed;
  return s;
}

TEST(StaticSparseCpu, EveryPatternMatchesTheReferenceWithItsLayout) {
  const SparsePattern kinds[] = {SparsePattern::kSlidingWindow, SparsePattern::kDilated,
                                 SparsePattern::kLongformer,    SparsePattern::kBigBird,
                                 SparsePattern::kFixed,         SparsePattern::kVariable};
  uint64_t seed = 40;
  for (SparsePattern kind : kinds)
    for (bool uni : {false, true}) {
      // N not a multiple of the block, D 72, GQA 4/2.
      expect_matches(pattern(kind, 16, uni), spec_for(201, 201, 4, 2, 72, uni, ++seed));
      // Lk > Lq aligned bottom-right (a cached prefix of 2 blocks), D 80, MQA.
      expect_matches(pattern(kind, 32, uni), spec_for(150, 214, 3, 1, 80, uni, ++seed));
    }
}

TEST(StaticSparseCpu, PerHeadLayoutsBf16AndVarlen) {
  StaticSparseConfig c = pattern(SparsePattern::kFixed, 16, false);
  c.fixed = {4, 2, true, 2};  // heads cycle over two global patterns
  c.different_layout_per_head = true;
  ProblemSpec s = spec_for(200, 200, 6, 3, 64, false, 90);
  s.dtype = DType::kBF16;
  expect_matches(c, s);

  StaticSparseConfig b = pattern(SparsePattern::kBigBird, 16, true);
  b.bigbird = {2, 3, 1};
  b.different_layout_per_head = true;
  ProblemSpec v = spec_for(0, 0, 4, 2, 64, true, 91);
  v.varlen_q = v.varlen_k = {130, 0, 257};  // self-attention per sequence, an empty one between
  expect_matches(b, v);
}

TEST(StaticSparseCpu, DescribeNamesPatternKnobsAndDensity) {
  const StaticSparseConfig c = pattern(SparsePattern::kBigBird, 32, false);
  const auto attn = make(c, CpuIsa::kAuto);
  EXPECT_EQ(attn->variant(), Variant::kStaticSparse);
  EXPECT_EQ(attn->device(), Device::kCPU);
  EXPECT_NE(attn->describe().find("bigbird(random 1, window 3, global 1, block 32"),
            std::string::npos)
      << attn->describe();
  Problem p(spec_for(320, 320, 2, 2, 64, false, 5));
  attn->run(p.params);
  BlockLayoutData layout;
  ASSERT_TRUE(build_static_sparse_layout(c, 320, 320, 2, &layout).ok());
  const double density = block_layout_density(layout.view(), 320, 320);
  EXPECT_LT(density, 1.0);
  std::ostringstream want;
  want << "density " << density << " at Lq 320 x Lk 320";
  EXPECT_NE(attn->describe().find(want.str()), std::string::npos) << attn->describe();
}

// Threads asking for layouts of more shapes than the cache keeps (evictions and rebuilds while
// others read). forward() runs afterwards, one call at a time: concurrent forward() calls on one
// CPU object are flash2's business (its per-thread workspace slots), not the layout cache's.
TEST(StaticSparseCpu, ConcurrentLayoutRequestsOnSeveralShapesShareTheCache) {
  const StaticSparseConfig c = pattern(SparsePattern::kVariable, 16, true);
  const auto attn = make(c, CpuIsa::kAuto, 1);
  std::vector<std::unique_ptr<Problem>> problems;
  for (int t = 0; t < 12; ++t)
    problems.push_back(std::make_unique<Problem>(
        spec_for(48 + 16 * t, 48 + 16 * t, 2, 1, 32, true, 60 + static_cast<uint64_t>(t))));
  std::vector<size_t> sizes(problems.size());
  for (size_t i = 0; i < problems.size(); ++i) sizes[i] = attn->workspace_size(problems[i]->params);
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = static_cast<size_t>(t + round) % 3; i < problems.size(); i += 3)
          failures[t] += !attn->supports(problems[i]->params).ok() ||
                         attn->workspace_size(problems[i]->params) != sizes[i];
    });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
  for (size_t i = 0; i < problems.size(); ++i) {
    BlockLayoutData layout;
    const reference::Result ref = reference_with_pattern(c, *problems[i], &layout);
    attn->run(problems[i]->params);
    EXPECT_LE(testing::relative_error(problems[i]->params, ref), 1e-5) << i;
  }
}

TEST(StaticSparseCpu, TypedErrors) {
  std::unique_ptr<Attention> attn;
  StaticSparseConfig bad;
  bad.block = 20;
  const Status s = create_static_sparse_cpu(CpuOptions(), bad, &attn);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("block = 20"), std::string::npos) << s.message();
  EXPECT_EQ(create_static_sparse_cpu(CpuOptions(), StaticSparseConfig(), nullptr).code(),
            StatusCode::kNullPointer);

  attn = make(pattern(SparsePattern::kSlidingWindow, 32, false), CpuIsa::kAuto);
  Problem misaligned(spec_for(40, 50, 2, 2, 64, false, 3));  // Lk - Lq = 10: not whole blocks
  const Status m = attn->supports(misaligned.params);
  EXPECT_EQ(m.code(), StatusCode::kUnsupported);
  EXPECT_NE(m.message().find("max_k = 50"), std::string::npos) << m.message();
  EXPECT_EQ(attn->workspace_size(misaligned.params), 0u);

  Problem given(spec_for(64, 64, 2, 2, 64, false, 4));
  BlockLayoutData layout;
  ASSERT_TRUE(build_static_sparse_layout(StaticSparseConfig(), 64, 64, 2, &layout).ok());
  given.params.block_layout = layout.view();
  const Status g = attn->supports(given.params);
  EXPECT_EQ(g.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(g.message().find("block_layout"), std::string::npos) << g.message();

  Problem broken(spec_for(64, 64, 2, 2, 64, false, 5));
  broken.params.k.shape[3] = 32;  // validate() runs first
  EXPECT_EQ(attn->supports(broken.params).code(), StatusCode::kShapeMismatch);
}

}  // namespace
}  // namespace qwen3vl
