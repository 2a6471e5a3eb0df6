// FlashAttention-2 on the CPU against the float64 reference, for every ISA this machine runs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "qwen3vl/selector/selector.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "support/cpu_variants.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;
using testing::Problem;
using testing::ProblemSpec;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

using testing::runnable_isas;

std::unique_ptr<Attention> make(CpuIsa isa, int threads = 2) {
  return testing::make_cpu(&create_flash2_cpu, isa, threads);
}

void expect_matches_reference(const ProblemSpec& spec) {
  testing::expect_matches_reference(&create_flash2_cpu, spec);
}

TEST(Flash2Cpu, RunsAvx2AndScalarOnThisMachine) {
  const std::vector<CpuIsa> isas = runnable_isas();
  EXPECT_EQ(isas.front(), CpuIsa::kScalar);
  if (cpu_supports(CpuInfo::current(), CpuIsa::kAvx512) && cpu_isa_compiled(CpuIsa::kAvx512)) {
    EXPECT_EQ(isas.size(), 3u) << "an AVX-512 machine must also run the AVX2 build";
  }
  for (CpuIsa isa : isas) EXPECT_NE(make(isa)->describe().find(to_string(isa)), std::string::npos);
}

// The sweep: odd sizes, Lq != Lk both ways, head dims (fast paths and odd ones), MHA/GQA/MQA,
// every structural mask, every storage dtype, BHSD strides, LSE.
TEST(Flash2Cpu, SweepMatchesTheFloat64Reference) {
  const int64_t sizes[][2] = {{1, 1},     {3, 17},  {17, 3},   {63, 65},   {65, 63},
                              {129, 129}, {1, 257}, {257, 33}, {100, 200}, {31, 130}};
  const int64_t dims[] = {64, 72, 80, 96, 128, 256, 40, 33};
  const int64_t heads[][2] = {{4, 4}, {4, 2}, {3, 1}, {8, 1}, {6, 2}};
  const MaskKind masks[] = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kCausalTopLeft,
                            MaskKind::kSlidingWindow};
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  uint64_t seed = 500;
  for (size_t i = 0; i < std::size(sizes); ++i)
    for (int variant = 0; variant < 2; ++variant) {
      const size_t k = 2 * i + static_cast<size_t>(variant);
      ProblemSpec s;
      s.batch = 1 + static_cast<int64_t>(k % 2);
      s.seq_q = sizes[i][0];
      s.seq_k = sizes[i][1];
      s.head_dim = dims[k % std::size(dims)];
      s.heads = heads[k % std::size(heads)][0];
      s.kv_heads = heads[k % std::size(heads)][1];
      s.mask = masks[k % std::size(masks)];
      s.window_left = k % 3 == 0 ? 5 : 40;
      s.window_right = k % 3 == 0 ? 2 : (k % 3 == 1 ? 0 : -1);
      s.dtype = dtypes[k % std::size(dtypes)];
      s.bhsd = variant == 1;
      s.with_lse = true;
      s.seed = ++seed;
      expect_matches_reference(s);
    }
}

TEST(Flash2Cpu, EveryHeadDimUpTo256) {
  for (int64_t d : {64, 72, 80, 96, 128, 256, 1, 7, 33, 40, 200}) {
    ProblemSpec s;
    s.seq_q = 37;
    s.seq_k = 70;
    s.heads = 4;
    s.kv_heads = 1;
    s.head_dim = d;
    s.mask = MaskKind::kCausal;
    s.with_lse = true;
    s.seed = 900 + static_cast<uint64_t>(d);
    expect_matches_reference(s);
  }
}

TEST(Flash2Cpu, CausalAlignmentsWithLqShorterAndLonger) {
  for (MaskKind mask : {MaskKind::kCausal, MaskKind::kCausalTopLeft})
    for (auto [lq, lk] : {std::pair<int64_t, int64_t>{40, 150}, {150, 40}, {97, 97}}) {
      ProblemSpec s;
      s.seq_q = lq;
      s.seq_k = lk;
      s.heads = 8;
      s.kv_heads = 2;
      s.mask = mask;
      s.with_lse = true;
      s.seed = 1000 + static_cast<uint64_t>(lq);
      expect_matches_reference(s);
    }
}

TEST(Flash2Cpu, SlidingWindows) {
  const int64_t windows[][2] = {{0, 0}, {15, 0}, {3, 9}, {-1, 4}, {70, -1}, {200, 200}};
  uint64_t seed = 1100;
  for (const auto& w : windows) {
    ProblemSpec s;
    s.seq_q = 90;
    s.seq_k = 130;
    s.heads = 4;
    s.kv_heads = 2;
    s.mask = MaskKind::kSlidingWindow;
    s.window_left = w[0];
    s.window_right = w[1];
    s.with_lse = true;
    s.seed = ++seed;
    expect_matches_reference(s);
  }
}

TEST(Flash2Cpu, AdditiveMaskKeyPaddingSoftcapAndScale) {
  ProblemSpec s;
  s.batch = 3;
  s.seq_q = 29;
  s.seq_k = 150;
  s.heads = 4;
  s.kv_heads = 2;
  s.key_lengths = {150, 77, 0};
  s.additive_mask = true;
  s.with_lse = true;
  s.seed = 1200;
  expect_matches_reference(s);
  s.mask = MaskKind::kCausal;  // masks combine
  s.softcap = 5.0f;
  s.scale = 0.3f;
  s.seed = 1201;
  expect_matches_reference(s);
  s.additive_mask = false;
  s.dtype = DType::kBF16;
  s.softcap = 30.0f;
  s.seed = 1202;
  expect_matches_reference(s);
}

TEST(Flash2Cpu, HalfPrecisionBroadcastAdditiveMask) {
  // An f16 mask of shape [Hq, Lq, Lk] (broadcast over the batch) with -inf entries.
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = 33;
  s.seq_k = 70;
  s.heads = 4;
  s.kv_heads = 1;
  s.with_lse = true;
  s.seed = 1300;
  Problem p(s);
  Tensor mask(DType::kF16, {s.heads, s.seq_q, s.seq_k});
  fill_uniform(mask, 77, -3.0f, 3.0f);
  for (int64_t i = 0; i < mask.numel(); i += 5) mask.set(i, kNegInf);
  p.params.additive_mask = mask.view();
  const reference::Result ref = reference::attention(p.params);
  for (CpuIsa isa : runnable_isas()) {
    make(isa)->run(p.params);
    EXPECT_LE(testing::relative_error(p.params, ref), 1e-5) << to_string(isa);
    EXPECT_LE(testing::lse_max_error(p.params, ref), 1e-5) << to_string(isa);
  }
}

TEST(Flash2Cpu, VarlenPackedFramesWithAnEmptySegment) {
  ProblemSpec v;
  v.varlen_q = {17, 0, 130, 5, 64};
  v.varlen_k = {17, 3, 130, 9, 0};
  v.heads = 4;
  v.kv_heads = 2;
  v.head_dim = 72;
  v.mask = MaskKind::kCausal;
  v.with_lse = true;
  v.seed = 1400;
  expect_matches_reference(v);
  v.mask = MaskKind::kNone;  // vision frames: block-diagonal, no causal mask
  v.heads = v.kv_heads = 16;
  v.varlen_k = v.varlen_q;
  v.dtype = DType::kF16;
  v.seed = 1401;
  expect_matches_reference(v);
}

TEST(Flash2Cpu, FullyMaskedRowsGiveZeroAndMinusInfLse) {
  testing::expect_fully_masked_rows_zero(&create_flash2_cpu, 80);  // 77 empty rows span blocks
}

TEST(Flash2Cpu, NanInMaskedOutKeysDoesNotLeak) {
  testing::expect_hidden_nan_keys_do_not_leak(&create_flash2_cpu);
}

TEST(Flash2Cpu, ResultDoesNotDependOnThreadCount) {
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = 150;
  s.seq_k = 170;
  s.heads = 8;
  s.kv_heads = 2;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  for (CpuIsa isa : runnable_isas()) {
    Problem p1(s), p2(s), p5(s);
    make(isa, 1)->run(p1.params);
    make(isa, 2)->run(p2.params);
    make(isa, 5)->run(p5.params);
    for (int64_t i = 0; i < p1.out.numel(); ++i) {
      ASSERT_EQ(p1.out.get(i), p2.out.get(i)) << to_string(isa);
      ASSERT_EQ(p1.out.get(i), p5.out.get(i)) << to_string(isa);
    }
    for (int64_t i = 0; i < p1.lse.numel(); ++i) ASSERT_EQ(p1.lse.get(i), p5.lse.get(i));
  }
}

TEST(Flash2Cpu, WorkspaceDoesNotGrowWithSequenceLength) {
  const auto attn = make(CpuIsa::kAuto);
  AttentionParams p;
  const auto sized = [&](int64_t n) {
    p.q = p.out = TensorView::contiguous(nullptr, DType::kF32, {1, n, 32, 128});
    p.k = p.v = TensorView::contiguous(nullptr, DType::kF32, {1, n, 8, 128});
    // Never read: only sizes are asked for. Placeholders far apart, since out must not share
    // memory with q, k or v.
    const auto at = [](int i) { return reinterpret_cast<void*>(uintptr_t{1} << (40 + i)); };
    p.q.data = at(0);
    p.k.data = at(1);
    p.v.data = at(2);
    p.out.data = at(3);
    return attn->workspace_size(p);
  };
  const size_t small = sized(1024), large = sized(32768);
  EXPECT_GT(small, 0u);
  EXPECT_EQ(small, large);
  EXPECT_LT(large, size_t{8} << 20) << "a few tiles per thread, not a score matrix";
}

TEST(Flash2Cpu, TilesFollowTheL2SizeAndAllGiveTheSameResult) {
  // The plan sizes its tiles by the L2 (unknown, the i5-10210U's 256 KiB, 1 MiB, 4 MiB): more
  // rows per tile with more cache, never a different answer beyond rounding.
  ProblemSpec s;
  s.seq_q = 200;
  s.seq_k = 150;
  s.heads = 8;
  s.kv_heads = 2;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  s.seed = 1500;
  Problem p(s);
  const reference::Result ref = reference::attention(p.params);
  size_t previous = 0;
  for (int64_t l2 : {int64_t{0}, int64_t{256} << 10, int64_t{1} << 20, int64_t{4} << 20}) {
    HardwareInfo hw = HardwareInfo::current();
    hw.cpu.l2_bytes = l2;
    for (CpuIsa isa : runnable_isas()) {
      CpuOptions o;
      o.isa = isa;
      o.num_threads = 2;
      o.cpu_info = &hw.cpu;
      std::unique_ptr<Attention> attn;
      ASSERT_TRUE(create_flash2_cpu(o, &attn).ok());
      attn->run(p.params);
      EXPECT_LE(testing::relative_error(p.params, ref), 1e-5) << to_string(isa) << " L2 " << l2;
      EXPECT_LE(testing::lse_max_error(p.params, ref), 1e-5) << to_string(isa) << " L2 " << l2;
      if (isa == CpuIsa::kAvx2 && l2 > 0) {
        const size_t bytes = attn->workspace_size(p.params);
        EXPECT_GE(bytes, previous) << "L2 " << l2;
        previous = bytes;
      }
    }
  }
}

TEST(Flash2Cpu, RejectsWeightsBadWorkspaceAndDevice) {
  Problem p{ProblemSpec{}};
  const auto attn = make(CpuIsa::kAuto);
  const size_t need = attn->workspace_size(p.params);
  EXPECT_GT(need, 0u);
  std::vector<char> small(need / 2);
  EXPECT_EQ(attn->forward(p.params, Workspace{small.data(), small.size()}).code(),
            StatusCode::kWorkspaceTooSmall);
  EXPECT_EQ(attn->forward(p.params, Workspace{}).code(), StatusCode::kWorkspaceTooSmall);
  AttentionParams gpu = p.params;
  for (TensorView* t : {&gpu.q, &gpu.k, &gpu.v, &gpu.out}) t->device = Device::kCUDA;
  EXPECT_EQ(attn->supports(gpu).code(), StatusCode::kUnsupported);
  ProblemSpec w;
  w.with_weights = true;
  Problem pw(w);
  EXPECT_EQ(attn->supports(pw.params).code(), StatusCode::kUnsupported);
  EXPECT_THROW(attn->run(pw.params), Error);
  AttentionParams bad = p.params;
  bad.q.stride[3] = 3;
  EXPECT_EQ(attn->supports(bad).code(), StatusCode::kBadStride);
}

TEST(Flash2Cpu, EmptyProblemsAreNoOps) {
  ProblemSpec s;
  s.seq_q = 0;
  Problem p(s);
  EXPECT_NO_THROW(make(CpuIsa::kAuto)->run(p.params));
  ProblemSpec k0;
  k0.seq_k = 0;
  k0.with_lse = true;
  Problem pk(k0);
  make(CpuIsa::kAuto)->run(pk.params);
  for (int64_t i = 0; i < pk.out.numel(); ++i) ASSERT_EQ(pk.out.get(i), 0.0f);
  for (int64_t i = 0; i < pk.lse.numel(); ++i) ASSERT_EQ(pk.lse.get(i), kNegInf);
}

TEST(Flash2Cpu, SelectorPicksFlash2ForCpuUnlessWeightsAreWanted) {
  AttentionConfig c;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  const auto attn = Selector::create(c);
  EXPECT_EQ(attn->variant(), Variant::kFlash2);
  EXPECT_NE(attn->describe().find("flash2"), std::string::npos) << attn->describe();
  c.need_weights = true;
  EXPECT_EQ(Selector::create(c)->variant(), Variant::kStandard);
  c.need_weights = false;
  c.variant = Variant::kFlash2;
  EXPECT_EQ(Selector::create(c)->variant(), Variant::kFlash2);
  bool listed = false;
  for (const auto& [variant, device] : Selector::built())
    listed = listed || (variant == Variant::kFlash2 && device == Device::kCPU);
  EXPECT_TRUE(listed);
}

}  // namespace
}  // namespace qwen3vl
