// Linear attention on the CPU against its float64 quadratic oracle: chunked == quadratic, and the
// recurrent state API (prefill, steps) == one chunked pass, on every ISA this machine runs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "linear/linear_cases.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "support/cpu_variants.hpp"
#include "support/linear_oracle.hpp"

namespace qwen3vl::testing {
namespace {

std::unique_ptr<LinearAttention> make_linear(const LinearConfig& config, CpuIsa isa) {
  std::unique_ptr<LinearAttention> a;
  throw_if_error(create_linear_cpu(cpu_options(isa), config, &a));
  return a;
}

// Runs forward() on every ISA and compares with the oracle.
void expect_matches_oracle(const LinearConfig& config, const ProblemSpec& spec, double tol) {
  Problem p(spec);
  const reference::Result ref = LinearOracle::of(config, spec.head_dim).run(p.params);
  for (CpuIsa isa : runnable_isas()) {
    make_linear(config, isa)->run(p.params);
    EXPECT_LE(relative_error(p.params, ref), tol) << to_string(isa) << " " << spec.to_string();
  }
}

TEST(LinearCpu, ChunkedMatchesQuadraticOracle) {
  for (const ProblemSpec& spec :
       chunked_cases({MaskKind::kNone, MaskKind::kCausal, MaskKind::kCausalTopLeft},
                     {1, 63, 64, 65, 333}, {64, 72, 128}))
    expect_matches_oracle(LinearConfig{}, spec, 1e-5);
}

TEST(LinearCpu, NonCausalTakesDifferentQueryAndKeyLengths) {
  for (auto [lq, lk] : {std::pair<int64_t, int64_t>{65, 130}, {200, 3}, {1, 333}}) {
    ProblemSpec spec;
    spec.seq_q = lq;
    spec.seq_k = lk;
    spec.heads = 4;
    spec.kv_heads = 1;  // MQA
    spec.head_dim = 80;
    spec.seed = static_cast<uint64_t>(lq * 7 + lk);
    expect_matches_oracle(LinearConfig{}, spec, 1e-5);
  }
}

TEST(LinearCpu, VarlenAndStridesAndChunkSizes) {
  for (int64_t chunk : {1, 17, 64, 256})
    for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal}) {
      LinearConfig config;
      config.chunk = chunk;
      ProblemSpec spec;
      spec.varlen_q = spec.varlen_k = {5, 0, 130, 64};
      spec.batch = 4;
      spec.heads = 4;
      spec.kv_heads = 2;
      spec.head_dim = 72;
      spec.mask = mask;
      spec.seed = static_cast<uint64_t>(chunk);
      expect_matches_oracle(config, spec, 1e-5);
      ProblemSpec bhsd;  // BHSD memory through strides
      bhsd.bhsd = true;
      bhsd.seq_q = bhsd.seq_k = 100;
      bhsd.mask = mask;
      bhsd.seed = static_cast<uint64_t>(chunk) + 100;
      expect_matches_oracle(config, bhsd, 1e-5);
    }
  ProblemSpec spec;  // non-causal varlen with Lq != Lk per sequence
  spec.varlen_q = {7, 66};
  spec.varlen_k = {70, 2};
  spec.batch = 2;
  expect_matches_oracle(LinearConfig{}, spec, 1e-5);
}

TEST(LinearCpu, HalfStorageWithinTwoPercent) {
  for (DType dtype : {DType::kBF16, DType::kF16})
    for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal}) {
      ProblemSpec spec;
      spec.dtype = dtype;
      spec.seq_q = spec.seq_k = 333;
      spec.head_dim = 128;
      spec.mask = mask;
      expect_matches_oracle(LinearConfig{}, spec, 2e-2);
    }
}

// Padded keys weigh nothing and their memory (NaN here) is never read; rows that see no key give 0.
TEST(LinearCpu, KeyPaddingAndRowsWithoutKeys) {
  for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal}) {
    ProblemSpec spec;
    spec.batch = 3;
    spec.seq_q = spec.seq_k = 70;
    spec.key_lengths = {70, 33, 0};
    spec.mask = mask;
    Problem p(spec);
    for (int64_t b = 1; b < 3; ++b)
      for (int64_t j = spec.key_lengths[b]; j < 70; ++j)
        for (int64_t h = 0; h < spec.kv_heads; ++h)
          for (int64_t c = 0; c < spec.head_dim; ++c) {
            p.k.set(p.k.view().offset(b, j, h, c), std::numeric_limits<float>::quiet_NaN());
            p.v.set(p.v.view().offset(b, j, h, c), std::numeric_limits<float>::infinity());
          }
    const reference::Result ref = LinearOracle(LinearConfig{}, {}).run(p.params);
    for (CpuIsa isa : runnable_isas()) {
      LinearConfig no_eps;  // eps 0: a row without keys is 0 / 0, which must still give 0
      no_eps.eps = 0.0f;
      make_linear(LinearConfig{}, isa)->run(p.params);
      EXPECT_LE(relative_error(p.params, ref), 1e-5) << to_string(isa) << " " << spec.to_string();
      make_linear(no_eps, isa)->run(p.params);
      for (int64_t i = 0; i < 70 * spec.heads * spec.head_dim; ++i)
        ASSERT_EQ(p.out.get(p.out.view().offset(2, 0, 0, 0) + i), 0.0f) << to_string(isa);
    }
  }
}

// prefill(first part) + steps of 1 and of several tokens == one prefill == the oracle.
TEST(LinearCpu, PrefillThenStepsEqualsOnePrefill) {
  for (int64_t d : {64, 72}) {
    ProblemSpec spec;
    spec.batch = 2;
    spec.seq_q = spec.seq_k = 150;
    spec.heads = 4;
    spec.kv_heads = 2;
    spec.head_dim = d;
    spec.mask = MaskKind::kCausal;
    spec.seed = static_cast<uint64_t>(d);
    Problem whole(spec), parts(spec);
    const reference::Result ref = LinearOracle(LinearConfig{}, {}).run(whole.params);
    for (CpuIsa isa : runnable_isas()) {
      const auto attn = make_linear(LinearConfig{}, isa);
      StateBuffers one(2, 2, d, d), stepped(2, 2, d, d);
      std::vector<unsigned char> ws(attn->workspace_size(whole.params));
      ASSERT_TRUE(attn->prefill(whole.params, one.view(), {ws.data(), ws.size()}).ok());
      EXPECT_LE(relative_error(whole.params, ref), 1e-5) << to_string(isa);

      const Workspace w{ws.data(), ws.size()};
      ASSERT_TRUE(attn->prefill(token_slice(parts.params, 0, 70), stepped.view(), w).ok());
      int64_t pos = 70;
      for (int64_t n : {1, 1, 1, 5, 64, 1, 7}) {  // ends at 150
        ASSERT_TRUE(attn->step(token_slice(parts.params, pos, n), stepped.view(), w).ok());
        pos += n;
      }
      ASSERT_EQ(pos, 150);
      EXPECT_LE(relative_error(parts.params, ref), 1e-5) << to_string(isa);
      EXPECT_LE(state_difference(stepped, one), 1e-5) << to_string(isa);
    }
  }
}

TEST(LinearCpu, PerformerMatchesItsOracle) {
  for (PerformerNorm norm : {PerformerNorm::kChi, PerformerNorm::kSqrtHeadDim})
    for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal})
      for (int64_t d : {64, 72}) {
        LinearConfig config;
        config.feature_map = LinearFeatureMap::kPerformer;
        config.head_dim = d;
        config.performer_seed = 7;
        config.performer_norm = norm;
        ProblemSpec spec;
        spec.seq_q = spec.seq_k = 97;
        spec.heads = 4;
        spec.kv_heads = 2;
        spec.head_dim = d;
        spec.mask = mask;
        expect_matches_oracle(config, spec, 2e-5);
      }
}

TEST(LinearCpu, PerformerProjectionIsOrthogonalInBlocksAndSeeded) {
  LinearConfig config;
  config.feature_map = LinearFeatureMap::kPerformer;
  config.performer_norm = PerformerNorm::kSqrtHeadDim;
  EXPECT_EQ(linear_feature_count(config, 128), 624);  // 128 ln 128 = 621.1, rounded up to 16
  std::vector<float> a, b, c;
  ASSERT_TRUE(make_performer_projection(config, 72, &a).ok());
  ASSERT_TRUE(make_performer_projection(config, 72, &b).ok());
  config.performer_seed = 1;
  ASSERT_TRUE(make_performer_projection(config, 72, &c).ok());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const int64_t d = 72, m = linear_feature_count(config, d);
  ASSERT_EQ(static_cast<int64_t>(a.size()), m * d);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t q = r; q < std::min(m, (r / d + 1) * d); ++q) {  // rows of the same block
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) dot += double(a[r * d + k]) * a[q * d + k];
      EXPECT_NEAR(dot, r == q ? double(d) : 0.0, 1e-3) << r << " " << q;
    }
}

// FAVOR+ estimates softmax attention: with small ||q||, ||k|| the error against the softmax
// reference falls as the features grow (averaged over seeds: a statistical check, not exact).
TEST(LinearCpu, PerformerApproximatesSoftmaxAttention) {
  auto mean_error = [](int64_t features) {
    double sum = 0;
    for (uint64_t seed = 0; seed < 4; ++seed) {
      LinearConfig config;
      config.feature_map = LinearFeatureMap::kPerformer;
      config.head_dim = 64;
      config.performer_features = features;
      config.performer_seed = seed;
      ProblemSpec spec;
      spec.seq_q = spec.seq_k = 64;
      spec.heads = spec.kv_heads = 2;
      spec.head_dim = 64;
      spec.seed = seed + 1;
      Problem p(spec);
      for (Tensor* t : {&p.q, &p.k})
        for (int64_t i = 0; i < t->numel(); ++i) t->set(i, t->get(i) * 0.5f);
      make_linear(config, CpuIsa::kScalar)->run(p.params);
      sum += relative_error(p.params, reference::attention(p.params));
    }
    return sum / 4;
  };
  const double few = mean_error(16), many = mean_error(1024);
  EXPECT_LT(many, 0.05);
  EXPECT_LT(many, 0.5 * few);
}

TEST(LinearCpu, BadInputGivesTypedErrors) {
  const auto attn = make_linear(LinearConfig{}, CpuIsa::kScalar);
  ProblemSpec spec;
  spec.mask = MaskKind::kCausal;
  auto code = [&](auto edit) {
    Problem p(spec);
    edit(p.params);
    return attn->supports(p.params).code();
  };
  EXPECT_EQ(code([](AttentionParams& p) {
              p.mask = MaskKind::kSlidingWindow;
              p.window_left = 3;
            }),
            StatusCode::kUnsupported);
  EXPECT_EQ(code([](AttentionParams& p) { p.scale = 0.5f; }), StatusCode::kUnsupported);
  EXPECT_EQ(code([](AttentionParams& p) { p.softcap = 30.0f; }), StatusCode::kUnsupported);
  EXPECT_EQ(code([](AttentionParams& p) {
              p.k.shape[1] = 15;
              p.v.shape[1] = 15;
            }),
            StatusCode::kShapeMismatch);  // causal needs Lq == Lk
  {
    ProblemSpec s = spec;
    s.with_lse = true;
    Problem p(s);
    EXPECT_EQ(attn->supports(p.params).code(), StatusCode::kUnsupported);
    s.with_lse = false;
    s.additive_mask = true;
    Problem q(s);
    EXPECT_EQ(attn->supports(q.params).code(), StatusCode::kUnsupported);
  }
  Problem p(spec);
  std::vector<unsigned char> small(16);
  EXPECT_EQ(attn->forward(p.params, {small.data(), small.size()}).code(),
            StatusCode::kWorkspaceTooSmall);
  std::vector<unsigned char> ws(attn->workspace_size(p.params));
  StateBuffers wrong(1, 2, 64, 32);
  EXPECT_EQ(attn->prefill(p.params, wrong.view(), {ws.data(), ws.size()}).code(),
            StatusCode::kShapeMismatch);
  StateBuffers right(1, 2, 64, 64);
  p.params.mask = MaskKind::kNone;
  const Status s = attn->step(p.params, right.view(), {ws.data(), ws.size()});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("causal"), std::string::npos) << s.message();

  std::unique_ptr<LinearAttention> out;
  LinearConfig bad;
  bad.chunk = 0;
  const Status c = create_linear_cpu(CpuOptions{}, bad, &out);
  EXPECT_EQ(c.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.message().find("LinearConfig.chunk = 0"), std::string::npos) << c.message();
  LinearConfig performer;
  performer.feature_map = LinearFeatureMap::kPerformer;
  performer.head_dim = 64;
  ASSERT_TRUE(create_linear_cpu(CpuOptions{}, performer, &out).ok());
  p.params.mask = MaskKind::kCausal;
  EXPECT_EQ(out->prefill(p.params, right.view(), {ws.data(), ws.size()}).code(),
            StatusCode::kUnsupported);
  ProblemSpec d72 = spec;
  d72.head_dim = 72;
  Problem q(d72);
  EXPECT_EQ(out->supports(q.params).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qwen3vl::testing
