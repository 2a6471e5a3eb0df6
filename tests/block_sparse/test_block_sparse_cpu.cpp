// Block-sparse attention on the CPU (flash2 walking a BSR layout) and flash2 with query positions,
// against the float64 reference on every ISA this machine runs.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "support/block_layouts.hpp"
#include "support/block_sparse_cases.hpp"
#include "support/cpu_variants.hpp"

namespace qwen3vl {
namespace {

using testing::expect_matches_reference;
using testing::HostLayout;
using testing::LayoutCase;
using testing::LayoutProblem;
using testing::Problem;
using testing::ProblemSpec;
using testing::RandomLayoutSpec;
using testing::runnable_isas;

// The block-sparse variant on every ISA, as a testing::LayoutCheck.
void block_sparse_matches_reference(Problem& p, const std::string& label) {
  expect_matches_reference(&create_block_sparse_cpu, p, label);
}

// Every block size pair for q and k, odd N (333 x 517, 245 x 161), D 64/72/128, GQA 8/2, the
// three layout counts (1, Hkv, B x Hkv), masks none / causal / window, f32 and bf16, random
// subsets with some row blocks empty.
TEST(BlockSparseCpu, RandomLayoutsMatchTheFloat64Reference) {
  testing::LayoutSweep w;
  w.q_blocks = w.k_blocks = {16, 32, 64, 128};
  w.lengths = {{245, 161}, {333, 517}};  // odd sizes, Lq < Lk and Lq > Lk
  w.batches = {1, 1, 2};                 // two sequences where each has its own layout
  w.masks = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kSlidingWindow};
  w.dtypes = {DType::kF32, DType::kF32, DType::kF32, DType::kBF16};
  w.seed = 7000;
  testing::check_random_layouts(w, &block_sparse_matches_reference);
}

// Rows of an empty row block see no key: output 0 and LSE -inf on every ISA, never NaN.
TEST(BlockSparseCpu, EmptyRowBlocksGiveZeroAndMinusInfLse) {
  for (CpuIsa isa : runnable_isas()) {
    LayoutProblem p = testing::empty_row_blocks_problem();
    testing::make_cpu(&create_block_sparse_cpu, isa)->run(p.problem.params);
    testing::expect_empty_row_blocks_zero(p.problem, to_string(isa));
  }
}

// A layout listing every block computes exactly what dense flash2 does: bit for bit where both
// walk the keys from 0 in the same steps (no mask, causal), to 1e-6 under a window (whose tasks
// start their key walk at different keys).
TEST(BlockSparseCpu, FullLayoutEqualsDenseFlash2) {
  uint64_t seed = 7100;
  for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal, MaskKind::kSlidingWindow})
    for (int32_t block : {16, 64, 128}) {
      // small: this test runs each kernel twice per ISA (the ASan build is slow)
      const ProblemSpec s = testing::full_layout_spec(mask, 133, 217, 4, ++seed);
      LayoutProblem sparse(testing::full_layout(block, block, 1, s.seq_q, s.seq_k), s);
      Problem dense(s);
      for (CpuIsa isa : runnable_isas()) {
        testing::make_cpu(&create_block_sparse_cpu, isa)->run(sparse.problem.params);
        testing::make_cpu(&create_flash2_cpu, isa)->run(dense.params);
        testing::expect_same_as_dense(
            sparse.problem, dense, /*with_lse=*/true,
            std::string(to_string(isa)) + " " + s.to_string() + " block " + std::to_string(block));
      }
    }
}

// Gathered query rows (q_positions): flash2 and standard alone, and block-sparse with a layout on
// top, for causal (both kinds) and window masks.
TEST(BlockSparseCpu, QueryPositionsMatchTheReference) {
  uint64_t seed = 7200;
  for (MaskKind mask :
       {MaskKind::kCausal, MaskKind::kCausalTopLeft, MaskKind::kSlidingWindow, MaskKind::kNone})
    for (bool with_layout : {false, true}) {
      const LayoutCase c = testing::query_positions_case(mask, with_layout, 70, 301, 4, ++seed);
      LayoutProblem p = testing::query_positions_problem(c, with_layout);
      const std::string label = c.spec.to_string();
      if (with_layout) {
        expect_matches_reference(&create_block_sparse_cpu, p.problem,
                                 label + " q_positions + layout");
      } else {
        expect_matches_reference(&create_flash2_cpu, p.problem, label + " q_positions");
        expect_matches_reference(&create_standard_cpu, p.problem, label + " q_positions standard");
      }
    }
}

// Packed sequences of different lengths (one without queries, one without keys) with one layout
// per (sequence, KV head), plus q_positions on the packed rows.
TEST(BlockSparseCpu, VarlenWithPerSequenceLayouts) {
  testing::check_varlen_layouts(testing::varlen_case(DType::kF32, 7300),
                                &block_sparse_matches_reference);
}

// Token-level masks inside visited blocks: additive mask, key padding and softcap with a layout.
TEST(BlockSparseCpu, AdditiveMaskKeyPaddingAndSoftcapInsideBlocks) {
  const LayoutCase c = testing::token_masks_case(7400);
  LayoutProblem p(c);
  block_sparse_matches_reference(p.problem, c.label());
}

// A rank-1 layout (one pattern for every head) is the same as a [1, ...] one.
TEST(BlockSparseCpu, RankOneLayout) {
  const LayoutCase c = testing::rank_one_case(64, 7500);
  LayoutProblem p(c, /*flat=*/true);
  ASSERT_EQ(p.layout.layout.indptr.rank, 1);
  block_sparse_matches_reference(p.problem, c.label());
}

// The standard variant takes query positions but not layouts: it says so with kUnsupported.
TEST(BlockSparseCpu, StandardRefusesLayouts) {
  ProblemSpec s;
  Problem p(s);
  const HostLayout layout = testing::full_layout(16, 16, 1, s.seq_q, s.seq_k);
  p.params.block_layout = layout.layout;
  const Status st = testing::make_cpu(&create_standard_cpu, CpuIsa::kScalar)->supports(p.params);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported) << st.to_string();
  EXPECT_NE(st.message().find("block_layout"), std::string::npos) << st.message();
}

TEST(BlockSparseCpu, DescribeAndVariant) {
  const auto attn = testing::make_cpu(&create_block_sparse_cpu, runnable_isas().back());
  EXPECT_EQ(attn->variant(), Variant::kBlockSparse);
  EXPECT_EQ(attn->device(), Device::kCPU);
  EXPECT_NE(attn->describe().find("block_sparse"), std::string::npos) << attn->describe();
}

TEST(BlockSparseCpu, DensityCountsListedBlocks) {
  const HostLayout one(64, 32, {{{0, 1, 2}, {1}}});  // 4 of 2 x 3 blocks (N 100 x 90)
  EXPECT_DOUBLE_EQ(block_layout_density(one.layout, 100, 90), 4.0 / 6.0);
  const HostLayout two(64, 32, {{{0}, {}}, {{0, 1, 2}, {0, 1, 2}}});
  EXPECT_DOUBLE_EQ(block_layout_density(two.layout, 100, 90), 7.0 / 12.0);
  EXPECT_DOUBLE_EQ(block_layout_density(BlockLayout{}, 100, 90), 0.0);
  RandomLayoutSpec l;
  l.density = 0.1;
  l.seed = 3;
  const HostLayout random = testing::random_layout(l, 16384, 16384);
  EXPECT_NEAR(block_layout_density(random.layout, 16384, 16384), 0.1, 0.01);
}

// The workspace does not grow with N for dense attention; with a layout only by its longest run
// list (here at most 3 intervals).
TEST(BlockSparseCpu, WorkspaceDoesNotGrowWithN) {
  ProblemSpec small, large;
  small.seq_q = small.seq_k = 400;  // past the longest tile, so both take the same plan
  large.seq_q = large.seq_k = 3000;
  Problem a(small), b(large);
  const auto attn = testing::make_cpu(&create_flash2_cpu, runnable_isas().back());
  EXPECT_EQ(attn->workspace_size(a.params), attn->workspace_size(b.params));
  RandomLayoutSpec l;
  l.block_q = l.block_k = 16;
  l.density = 1.0;
  const HostLayout full = testing::random_layout(l, 3000, 3000);
  const HostLayout striped(16, 16, {std::vector<std::vector<int32_t>>(188, {0, 2, 4})});
  b.params.block_layout = full.layout;
  const size_t with_full = attn->workspace_size(b.params);
  b.params.block_layout = striped.layout;
  const size_t with_striped = attn->workspace_size(b.params);
  EXPECT_EQ(with_full, attn->workspace_size(a.params));
  EXPECT_LE(with_full, with_striped);
  EXPECT_LE(with_striped, attn->workspace_size(a.params) + 4096);
}

// --- bad layouts: typed errors naming the argument ------------------------------------------

void expect_error(const AttentionParams& params, StatusCode code, const std::string& mentions,
                  const std::string& label) {
  const auto attn = testing::make_cpu(&create_block_sparse_cpu, CpuIsa::kScalar);
  const Status st = attn->supports(params);
  EXPECT_EQ(st.code(), code) << label << ": " << st.to_string();
  EXPECT_NE(st.message().find(mentions), std::string::npos) << label << ": " << st.message();
  EXPECT_FALSE(attn->forward(params, Workspace{}, nullptr).ok()) << label;
}

TEST(BlockSparseCpu, BadLayoutsGiveTypedErrors) {
  // 100 queries / 90 keys, Hkv 2, batch 1: 4 row blocks of 32, 3 column blocks of 32.
  ProblemSpec s;
  s.seq_q = 100;
  s.seq_k = 90;
  s.heads = 4;
  s.kv_heads = 2;
  Problem p(s);
  const testing::LayoutColumns good = {{{0}, {0, 1}, {2}, {0, 2}}};
  const auto with = [&](const HostLayout& layout) {
    AttentionParams q = p.params;
    q.block_layout = layout.layout;
    return q;
  };
  {
    const HostLayout ok(32, 32, good);
    const auto attn = testing::make_cpu(&create_block_sparse_cpu, CpuIsa::kScalar);
    ASSERT_TRUE(attn->supports(with(ok)).ok());
  }
  expect_error(p.params, StatusCode::kInvalidArgument, "block_layout is absent", "no layout");
  {
    HostLayout bad(32, 32, good);
    bad.indices.data<int32_t>()[0] = 3;  // column block 3 of 3
    expect_error(with(bad), StatusCode::kInvalidArgument, "block_layout.indices[0, 0] = 3",
                 "index out of range");
    bad.indices.data<int32_t>()[0] = -1;
    expect_error(with(bad), StatusCode::kInvalidArgument, "allowed 0..2", "negative index");
  }
  {
    const HostLayout bad(32, 32, {{{0}, {1, 0}, {2}, {0, 2}}});
    expect_error(with(bad), StatusCode::kInvalidArgument, "strictly increasing", "unsorted");
  }
  {
    const HostLayout bad(32, 32, {{{0}, {1, 1}, {2}, {0, 2}}});
    expect_error(with(bad), StatusCode::kInvalidArgument, "strictly increasing", "duplicate");
  }
  {
    const HostLayout bad(32, 32, {{{0}, {0, 1}, {2}}});  // 3 row blocks for 4
    expect_error(with(bad), StatusCode::kShapeMismatch, "block_layout.indptr.shape",
                 "indptr length");
  }
  {
    const HostLayout bad(32, 32, {good[0], good[0], good[0]});  // 3 layouts: neither 1 nor 2
    expect_error(with(bad), StatusCode::kShapeMismatch, "block_layout.indptr.shape[0] = 3",
                 "layout count");
  }
  for (int32_t size : {0, 8, 24, 144}) {
    const HostLayout bad_q(size, 32, good), bad_k(32, size, good);
    expect_error(with(bad_q), StatusCode::kInvalidArgument,
                 "block_layout.block_q = " + std::to_string(size), "block_q");
    expect_error(with(bad_k), StatusCode::kInvalidArgument,
                 "block_layout.block_k = " + std::to_string(size), "block_k");
  }
  {
    HostLayout bad(32, 32, good);
    bad.indptr.data<int32_t>()[4] = 7;  // 6 indices exist
    expect_error(with(bad), StatusCode::kInvalidArgument, "block_layout.indptr[0, 4] = 7",
                 "indptr beyond indices");
    bad.indptr.data<int32_t>()[4] = 6;
    bad.indptr.data<int32_t>()[0] = 1;
    expect_error(with(bad), StatusCode::kInvalidArgument, "block_layout.indptr[0, 0] = 1",
                 "indptr[0] != 0");
    bad.indptr.data<int32_t>()[0] = 0;
    bad.indptr.data<int32_t>()[2] = 0;  // decreasing
    expect_error(with(bad), StatusCode::kInvalidArgument, "block_layout.indptr[0, 2] = 0",
                 "decreasing indptr");
  }
  {
    HostLayout bad(32, 32, good);
    bad.layout.indices = BlockLayout{}.indices;
    expect_error(with(bad), StatusCode::kNullPointer, "block_layout.indices is absent",
                 "no indices");
  }
  {
    HostLayout bad(32, 32, good);
    Tensor wide(DType::kF32, {1, 5});
    bad.layout.indptr = wide.view();
    expect_error(with(bad), StatusCode::kInvalidArgument, "block_layout.indptr.dtype", "dtype");
  }
}

}  // namespace
}  // namespace qwen3vl
