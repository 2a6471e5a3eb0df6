// Standard attention on the CPU against the float64 reference, for every ISA this machine runs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "qwen3vl/variants/standard.hpp"
#include "support/cpu_variants.hpp"

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;

using testing::runnable_isas;

std::unique_ptr<Attention> make(CpuIsa isa, int threads = 2) {
  return testing::make_cpu(&create_standard_cpu, isa, threads);
}

// The random sweep: odd sizes, Lq != Lk both ways, head dims 64/72/80/128, MHA/GQA/MQA, every mask.
std::vector<ProblemSpec> sweep() {
  std::vector<ProblemSpec> specs;
  const int64_t sizes[][2] = {{1, 1},     {3, 17},  {17, 3}, {63, 65},
                              {65, 63},   {129, 129}, {1, 257}, {257, 33}};
  const int64_t dims[] = {64, 72, 80, 128};
  const int64_t heads[][2] = {{4, 4}, {4, 2}, {3, 1}};
  const MaskKind masks[] = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kCausalTopLeft,
                            MaskKind::kSlidingWindow};
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  uint64_t seed = 100;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    ProblemSpec s;
    s.batch = 1 + static_cast<int64_t>(i % 2);
    s.seq_q = sizes[i][0];
    s.seq_k = sizes[i][1];
    s.head_dim = dims[i % 4];
    s.heads = heads[i % 3][0];
    s.kv_heads = heads[i % 3][1];
    s.mask = masks[i % 4];
    s.window_left = 5;
    s.window_right = i % 3 == 0 ? 2 : 0;
    s.dtype = dtypes[i % 3];
    s.with_lse = true;
    s.seed = ++seed;
    specs.push_back(s);
    ProblemSpec t = s;  // the same shape through BHSD strides with another mask and dtype
    t.bhsd = true;
    t.mask = masks[(i + 1) % 4];
    t.dtype = dtypes[(i + 1) % 3];
    t.seed = ++seed;
    specs.push_back(t);
  }
  ProblemSpec v;  // packed frames with an empty segment, GQA, causal
  v.varlen_q = {17, 0, 64, 5};
  v.varlen_k = {17, 3, 64, 9};
  v.heads = 4;
  v.kv_heads = 2;
  v.head_dim = 72;
  v.mask = MaskKind::kCausal;
  v.with_lse = true;
  v.seed = ++seed;
  specs.push_back(v);
  ProblemSpec extras;  // key padding + additive mask + softcap + explicit scale
  extras.batch = 3;
  extras.seq_q = 9;
  extras.seq_k = 31;
  extras.key_lengths = {31, 12, 0};
  extras.additive_mask = true;
  extras.softcap = 5.0f;
  extras.scale = 0.3f;
  extras.with_lse = true;
  extras.seed = ++seed;
  specs.push_back(extras);
  return specs;
}

TEST(StandardCpu, MatchesTheFloat64ReferenceOnEveryIsa) {
  for (const ProblemSpec& spec : sweep())
    testing::expect_matches_reference(&create_standard_cpu, spec);
}

TEST(StandardCpu, ReturnsTheAttentionWeights) {
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = 13;
  s.seq_k = 21;
  s.mask = MaskKind::kCausal;
  s.with_weights = true;
  s.key_lengths = {21, 15};
  Problem p(s);
  const reference::Result ref = reference::attention(p.params, true);
  make(CpuIsa::kAuto)->run(p.params);
  double worst = 0.0;
  for (int64_t i = 0; i < p.weights.numel(); ++i)
    worst = std::max(worst, std::fabs(p.weights.get(i) - ref.weights[static_cast<size_t>(i)]));
  EXPECT_LE(worst, 1e-6);
}

TEST(StandardCpu, FullyMaskedRowsGiveZeroAndMinusInfLse) {
  testing::expect_fully_masked_rows_zero(&create_standard_cpu, 8);
}

TEST(StandardCpu, NanInMaskedOutKeysDoesNotLeak) {
  testing::expect_hidden_nan_keys_do_not_leak(&create_standard_cpu);
}

TEST(StandardCpu, ResultDoesNotDependOnThreadCount) {
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = 33;
  s.seq_k = 47;
  s.heads = 8;
  s.kv_heads = 2;
  Problem p1(s), p4(s);
  make(CpuIsa::kAuto, 1)->run(p1.params);
  make(CpuIsa::kAuto, 4)->run(p4.params);
  for (int64_t i = 0; i < p1.out.numel(); ++i) ASSERT_EQ(p1.out.get(i), p4.out.get(i));
}

TEST(StandardCpu, RejectsBadWorkspaceAndDevice) {
  Problem p{ProblemSpec{}};
  const auto attn = make(CpuIsa::kAuto);
  const size_t need = attn->workspace_size(p.params);
  EXPECT_GT(need, 0u);
  std::vector<char> small(need / 2);
  EXPECT_EQ(attn->forward(p.params, Workspace{small.data(), small.size()}).code(),
            StatusCode::kWorkspaceTooSmall);
  AttentionParams gpu = p.params;
  for (TensorView* t : {&gpu.q, &gpu.k, &gpu.v, &gpu.out}) t->device = Device::kCUDA;
  EXPECT_EQ(attn->supports(gpu).code(), StatusCode::kUnsupported);
  AttentionParams bad = p.params;
  bad.q.stride[3] = 3;
  EXPECT_EQ(attn->supports(bad).code(), StatusCode::kBadStride);
  EXPECT_THROW(attn->run(bad), Error);
}

TEST(StandardCpu, EmptyProblemsAreNoOps) {
  ProblemSpec s;
  s.seq_q = 0;
  Problem p(s);
  EXPECT_NO_THROW(make(CpuIsa::kAuto)->run(p.params));
  ProblemSpec k0;
  k0.seq_k = 0;
  Problem pk(k0);
  make(CpuIsa::kAuto)->run(pk.params);
  for (int64_t i = 0; i < pk.out.numel(); ++i) EXPECT_EQ(pk.out.get(i), 0.0f);
}

}  // namespace
}  // namespace qwen3vl
