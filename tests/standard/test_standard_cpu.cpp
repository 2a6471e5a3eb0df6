// Standard attention on the CPU against the float64 reference, for every ISA this machine runs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "qwen3vl/variants/standard.hpp"
#include "support/cpu_variants.hpp"
#include "support/sweep.hpp"

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;

using testing::runnable_isas;

std::unique_ptr<Attention> make(CpuIsa isa, int threads = 2) {
  return testing::make_cpu(&create_standard_cpu, isa, threads);
}

TEST(StandardCpu, MatchesTheFloat64ReferenceOnEveryIsa) {
  for (const ProblemSpec& spec : testing::attention_sweep())
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
