// The static-sparse CUDA variant against the float64 reference given the pattern's layout (label
// gpu; skips without a device).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/variants/static_sparse.hpp"
#include "support/device_problem.hpp"

namespace qwen3vl {
namespace {

using testing::DeviceProblem;
using testing::Problem;
using testing::ProblemSpec;

#define SKIP_WITHOUT_GPU() \
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device"

std::unique_ptr<Attention> make(const StaticSparseConfig& c) {
  std::unique_ptr<Attention> a;
  throw_if_error(create_static_sparse_cuda(CudaOptions(), c, &a));
  return a;
}

// Runs `spec` twice on the device (the second call reuses the cached device layout) and compares
// with the reference under the host layout.
void expect_matches(const Attention& attn, const StaticSparseConfig& c, const ProblemSpec& spec) {
  const std::string label = c.to_string() + " " + spec.to_string();
  Problem host(spec);
  AttentionShape s;
  throw_if_error(validate(host.params, &s));
  BlockLayoutData layout;
  throw_if_error(build_static_sparse_layout(c, s.max_q, s.max_k, s.kv_heads, &layout));
  AttentionParams with = host.params;
  with.block_layout = layout.view();
  const reference::Result ref = reference::attention(with);
  ASSERT_NE(ref.out, reference::attention(host.params).out) << "pattern is dense: " << label;

  DeviceProblem dev(host);
  const Status ok = attn.supports(dev.params);
  ASSERT_TRUE(ok.ok()) << ok.to_string() << " " << label;
  DeviceBuffer workspace(attn.workspace_size(dev.params) + 1);
  for (int call = 0; call < 2; ++call) {
    const Status run = attn.forward(dev.params, Workspace{workspace.data(), workspace.bytes()});
    ASSERT_TRUE(run.ok()) << run.to_string() << " " << label;
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  dev.download();
  EXPECT_LE(testing::relative_error(host.params, ref), testing::tolerance(spec.dtype)) << label;
  EXPECT_LE(testing::lse_max_error(host.params, ref), spec.dtype == DType::kF32 ? 1e-5 : 1e-2)
      << label;
}

TEST(StaticSparseCuda, PatternsMatchTheReferenceWithTheirLayouts) {
  SKIP_WITHOUT_GPU();
  const SparsePattern kinds[] = {SparsePattern::kSlidingWindow, SparsePattern::kLongformer,
                                 SparsePattern::kBigBird,       SparsePattern::kFixed,
                                 SparsePattern::kVariable,      SparsePattern::kDilated};
  uint64_t seed = 300;
  for (SparsePattern kind : kinds)
    for (bool uni : {false, true}) {
      StaticSparseConfig c;
      c.pattern = kind;
      c.block = uni ? 32 : 64;
      c.unidirectional = uni;
      c.seed = 5;
      c.variable.num_random_blocks = 1;
      c.fixed.horizontal_global_attention = !uni;
      c.different_layout_per_head = kind == SparsePattern::kBigBird;
      ProblemSpec s;
      s.seq_q = uni ? 333 : 517;
      s.seq_k = uni ? 333 + 64 : 517;  // unidirectional: a cached prefix of 2 blocks
      s.heads = 4;
      s.kv_heads = 2;
      s.head_dim = uni ? 72 : 128;
      s.mask = uni ? MaskKind::kCausal : MaskKind::kNone;
      s.dtype = uni ? DType::kBF16 : DType::kF32;
      s.with_lse = true;
      s.seed = ++seed;
      const auto attn = make(c);
      expect_matches(*attn, c, s);
      EXPECT_NE(attn->describe().find(c.to_string()), std::string::npos) << attn->describe();
    }
}

TEST(StaticSparseCuda, VarlenAndErrors) {
  SKIP_WITHOUT_GPU();
  StaticSparseConfig c;
  c.pattern = SparsePattern::kBigBird;
  c.block = 16;
  c.unidirectional = true;
  const auto attn = make(c);
  ProblemSpec s;
  s.varlen_q = s.varlen_k = {130, 0, 257};
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  expect_matches(*attn, c, s);
  EXPECT_EQ(attn->device(), Device::kCUDA);
  EXPECT_EQ(attn->variant(), Variant::kStaticSparse);

  ProblemSpec bad;
  bad.seq_q = 40;
  bad.seq_k = 50;  // Lk - Lq not a whole number of blocks
  Problem host(bad);
  DeviceProblem dev(host);
  EXPECT_EQ(attn->supports(dev.params).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace qwen3vl
