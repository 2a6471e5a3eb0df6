// Block-sparse attention on the CPU (flash2 walking a BSR layout) and flash2 with query positions,
// against the float64 reference on every ISA this machine runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "support/block_layouts.hpp"
#include "support/cpu_variants.hpp"

namespace qwen3vl {
namespace {

using testing::HostLayout;
using testing::Problem;
using testing::ProblemSpec;
using testing::RandomLayoutSpec;
using testing::runnable_isas;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Runs `p` (layout and positions already attached) with `create` on every ISA and compares with
// the reference: output within the dtype's tolerance, LSE within 1e-5 (f32) with -inf rows exact.
void expect_matches_reference(testing::CpuFactory create, Problem& p, const std::string& label) {
  const reference::Result ref = reference::attention(p.params);
  for (CpuIsa isa : runnable_isas()) {
    const auto attn = testing::make_cpu(create, isa);
    const Status ok = attn->supports(p.params);
    ASSERT_TRUE(ok.ok()) << ok.to_string() << " " << label;
    attn->run(p.params);
    EXPECT_LE(testing::relative_error(p.params, ref), testing::tolerance(p.spec.dtype))
        << to_string(isa) << " " << label;
    if (p.spec.with_lse)
      EXPECT_LE(testing::lse_max_error(p.params, ref), p.spec.dtype == DType::kF32 ? 1e-5 : 1e-2)
          << to_string(isa) << " " << label;
  }
}

std::string describe(const ProblemSpec& s, const RandomLayoutSpec& l) {
  return s.to_string() + " layout " + std::to_string(l.block_q) + "x" + std::to_string(l.block_k) +
         " L" + std::to_string(l.layouts) + " density " + std::to_string(l.density);
}

// Sorted random key positions for gathered query rows: sequence b's rows at distinct keys.
Tensor gathered_positions(int64_t batch, int64_t rows, int64_t keys, uint64_t seed) {
  Tensor t(DType::kI32, {batch, rows});
  uint64_t state = seed;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t taken = 0;
    for (int64_t j = 0; j < keys && taken < rows; ++j) {  // selection sampling keeps order
      const uint64_t u = testing::splitmix64(&state) % static_cast<uint64_t>(keys - j);
      if (static_cast<int64_t>(u) < rows - taken)
        t.data<int32_t>()[b * rows + taken++] = static_cast<int32_t>(j);
    }
  }
  return t;
}

// Every block size pair for q and k, odd N (333 x 517, 245 x 161), D 64/72/128, GQA 8/2, the
// three layout counts (1, Hkv, B x Hkv), masks none / causal / window, f32 and bf16, random
// subsets with some row blocks empty.
TEST(BlockSparseCpu, RandomLayoutsMatchTheFloat64Reference) {
  const int32_t sizes[] = {16, 32, 64, 128};
  const int64_t dims[] = {64, 72, 128};
  const MaskKind masks[] = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kSlidingWindow};
  uint64_t seed = 7000;
  int k = 0;
  for (int32_t bq : sizes)
    for (int32_t bk : sizes) {
      ProblemSpec s;
      s.batch = k % 3 == 2 ? 2 : 1;  // two sequences where each has its own layout
      s.seq_q = k % 2 ? 333 : 245;   // odd sizes, Lq < Lk and Lq > Lk
      s.seq_k = k % 2 ? 517 : 161;
      s.heads = 8;
      s.kv_heads = 2;
      s.head_dim = dims[k % 3];
      s.mask = masks[k % 3];
      s.window_left = 90;
      s.window_right = k % 2 ? 0 : 40;
      s.dtype = k % 4 == 3 ? DType::kBF16 : DType::kF32;
      s.with_lse = true;
      s.seed = ++seed;
      RandomLayoutSpec l;
      l.block_q = bq;
      l.block_k = bk;
      l.layouts = (k % 3 == 0 ? 1 : (k % 3 == 1 ? s.kv_heads : s.batch * s.kv_heads));
      l.density = k % 2 ? 0.3 : 0.6;
      l.empty_every = 3;
      l.seed = seed;
      Problem p(s);
      const HostLayout layout = testing::random_layout(l, s.seq_q, s.seq_k);
      p.params.block_layout = layout.layout;
      expect_matches_reference(&create_block_sparse_cpu, p, describe(s, l));
      ++k;
    }
}

// Rows of an empty row block see no key: output 0 and LSE -inf on every ISA, never NaN.
TEST(BlockSparseCpu, EmptyRowBlocksGiveZeroAndMinusInfLse) {
  ProblemSpec s;
  s.seq_q = 100;
  s.seq_k = 90;
  s.heads = 4;
  s.kv_heads = 2;
  s.with_lse = true;
  const HostLayout layout(32, 16, {{{0, 3}, {}, {5}, {}}});  // row blocks 1 and 3 list nothing
  for (CpuIsa isa : runnable_isas()) {
    Problem p(s);
    p.params.block_layout = layout.layout;
    testing::make_cpu(&create_block_sparse_cpu, isa)->run(p.params);
    for (int64_t i = 0; i < s.seq_q; ++i)
      for (int64_t h = 0; h < s.heads; ++h) {
        const bool empty = (i / 32) % 2 == 1;
        const float lse = p.lse.get(h * s.seq_q + i);
        EXPECT_EQ(empty, lse == kNegInf) << to_string(isa) << " row " << i;
        EXPECT_FALSE(std::isnan(lse));
        for (int64_t c = 0; c < s.head_dim; ++c) {
          const float o = p.out.get((i * s.heads + h) * s.head_dim + c);
          ASSERT_FALSE(std::isnan(o)) << to_string(isa);
          if (empty) ASSERT_EQ(o, 0.0f) << to_string(isa) << " row " << i;
        }
      }
  }
}

// A layout listing every block computes exactly what dense flash2 does: bit for bit where both
// walk the keys from 0 in the same steps (no mask, causal), to 1e-6 under a window (whose tasks
// start their key walk at different keys).
TEST(BlockSparseCpu, FullLayoutEqualsDenseFlash2) {
  const MaskKind masks[] = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kSlidingWindow};
  uint64_t seed = 7100;
  for (MaskKind mask : masks)
    for (int32_t block : {16, 64, 128}) {
      ProblemSpec s;  // small: this test runs each kernel twice per ISA (the ASan build is slow)
      s.seq_q = 133;
      s.seq_k = 217;
      s.heads = 4;
      s.kv_heads = 2;
      s.head_dim = 72;
      s.mask = mask;
      s.window_left = 50;
      s.window_right = 7;
      s.with_lse = true;
      s.seed = ++seed;
      Problem sparse(s), dense(s);
      const HostLayout layout = testing::full_layout(block, block, 1, s.seq_q, s.seq_k);
      sparse.params.block_layout = layout.layout;
      for (CpuIsa isa : runnable_isas()) {
        testing::make_cpu(&create_block_sparse_cpu, isa)->run(sparse.params);
        testing::make_cpu(&create_flash2_cpu, isa)->run(dense.params);
        const int64_t n = dense.out.numel();
        double diff = 0.0, norm = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const double a = sparse.out.get(i), b = dense.out.get(i);
          diff += (a - b) * (a - b);
          norm += b * b;
        }
        const std::string label =
            std::string(to_string(isa)) + " " + s.to_string() + " block " + std::to_string(block);
        if (mask == MaskKind::kSlidingWindow) {
          EXPECT_LE(std::sqrt(diff / norm), 1e-6) << label;
        } else {
          EXPECT_EQ(std::memcmp(sparse.out.data<float>(), dense.out.data<float>(),
                                static_cast<size_t>(n) * sizeof(float)),
                    0)
              << label << " relative difference " << std::sqrt(diff / norm);
          EXPECT_EQ(std::memcmp(sparse.lse.data<float>(), dense.lse.data<float>(),
                                static_cast<size_t>(dense.lse.numel()) * sizeof(float)),
                    0)
              << label;
        }
      }
    }
}

// Gathered query rows (q_positions): flash2 and standard alone, and block-sparse with a layout on
// top, for causal (both kinds) and window masks.
TEST(BlockSparseCpu, QueryPositionsMatchTheReference) {
  const MaskKind masks[] = {MaskKind::kCausal, MaskKind::kCausalTopLeft, MaskKind::kSlidingWindow,
                            MaskKind::kNone};
  uint64_t seed = 7200;
  for (MaskKind mask : masks)
    for (bool with_layout : {false, true}) {
      ProblemSpec s;
      s.batch = 2;
      s.seq_q = 70;
      s.seq_k = 301;
      s.heads = 4;
      s.kv_heads = 2;
      s.head_dim = 64;
      s.mask = mask;
      s.window_left = 30;
      s.window_right = 5;
      s.dtype = with_layout ? DType::kBF16 : DType::kF32;
      s.with_lse = true;
      s.seed = ++seed;
      Problem p(s);
      const Tensor positions = gathered_positions(s.batch, s.seq_q, s.seq_k, seed);
      p.params.q_positions = positions.view();
      RandomLayoutSpec l;
      l.block_q = 32;
      l.block_k = 48;
      l.layouts = s.kv_heads;
      l.density = 0.5;
      l.seed = seed;
      const HostLayout layout = testing::random_layout(l, s.seq_q, s.seq_k);
      if (with_layout) p.params.block_layout = layout.layout;
      if (with_layout) {
        expect_matches_reference(&create_block_sparse_cpu, p,
                                 s.to_string() + " q_positions + layout");
      } else {
        expect_matches_reference(&create_flash2_cpu, p, s.to_string() + " q_positions");
        expect_matches_reference(&create_standard_cpu, p, s.to_string() + " q_positions standard");
      }
    }
}

// Packed sequences of different lengths (one without queries, one without keys) with one layout
// per (sequence, KV head), plus q_positions on the packed rows.
TEST(BlockSparseCpu, VarlenWithPerSequenceLayouts) {
  ProblemSpec s;
  s.varlen_q = {100, 0, 333, 50};
  s.varlen_k = {120, 30, 517, 0};
  s.batch = 4;
  s.heads = 8;
  s.kv_heads = 2;
  s.head_dim = 80;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  s.seed = 7300;
  RandomLayoutSpec l;
  l.block_q = 64;
  l.block_k = 32;
  l.layouts = s.batch * s.kv_heads;
  l.density = 0.4;
  l.keep_diagonal = true;
  l.seed = 7300;
  const HostLayout layout = testing::random_layout(l, 333, 517);
  {
    Problem p(s);
    p.params.block_layout = layout.layout;
    expect_matches_reference(&create_block_sparse_cpu, p, s.to_string() + " layout B x Hkv");
  }
  // Positions: each packed row at a distinct key of its own sequence, ascending.
  Problem p(s);
  p.params.block_layout = layout.layout;
  Tensor positions(DType::kI32, {483});
  int64_t row = 0;
  for (size_t b = 0; b < s.varlen_q.size(); ++b)
    for (int32_t i = 0; i < s.varlen_q[b]; ++i)
      positions.data<int32_t>()[row++] = i * s.varlen_k[b] / std::max(s.varlen_q[b], 1) + 1;
  p.params.q_positions = positions.view();
  p.params.mask = MaskKind::kSlidingWindow;
  p.params.window_left = 20;
  p.params.window_right = 3;
  expect_matches_reference(&create_block_sparse_cpu, p, s.to_string() + " window + q_positions");
}

// Token-level masks inside visited blocks: additive mask, key padding and softcap with a layout.
TEST(BlockSparseCpu, AdditiveMaskKeyPaddingAndSoftcapInsideBlocks) {
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = 77;
  s.seq_k = 200;
  s.heads = 4;
  s.kv_heads = 4;
  s.head_dim = 64;
  s.additive_mask = true;
  s.key_lengths = {200, 101};
  s.softcap = 20.0f;
  s.with_lse = true;
  s.seed = 7400;
  Problem p(s);
  RandomLayoutSpec l;
  l.block_q = 16;
  l.block_k = 64;
  l.density = 0.5;
  l.keep_diagonal = true;
  l.seed = 7400;
  const HostLayout layout = testing::random_layout(l, s.seq_q, s.seq_k);
  p.params.block_layout = layout.layout;
  expect_matches_reference(&create_block_sparse_cpu, p, describe(s, l));
}

// A rank-1 layout (one pattern for every head) is the same as a [1, ...] one.
TEST(BlockSparseCpu, RankOneLayout) {
  ProblemSpec s;
  s.seq_q = 130;
  s.seq_k = 130;
  s.heads = 4;
  s.kv_heads = 1;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  s.seed = 7500;
  Problem p(s);
  RandomLayoutSpec l;
  l.block_q = 48;
  l.block_k = 32;
  l.density = 0.5;
  l.seed = 7500;
  const HostLayout layout(l.block_q, l.block_k, testing::random_layout_columns(l, 130, 130), true);
  ASSERT_EQ(layout.layout.indptr.rank, 1);
  p.params.block_layout = layout.layout;
  expect_matches_reference(&create_block_sparse_cpu, p, describe(s, l));
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
