// The float64 oracle against hand-computed cases and identities.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qwen3vl/reference/attention.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;

ProblemSpec spec(int64_t lq, int64_t lk, int64_t d, int64_t heads = 1, int64_t kv_heads = 1) {
  ProblemSpec s;
  s.seq_q = lq;
  s.seq_k = lk;
  s.head_dim = d;
  s.heads = heads;
  s.kv_heads = kv_heads;
  return s;
}

TEST(Reference, TwoKeysByHand) {
  // scale 1, q = 1, k = [0, ln 3] -> weights [1/4, 3/4]; v = [10, 20] -> 17.5; lse = ln 4.
  Problem p(spec(1, 2, 1));
  p.params.scale = 1.0f;
  p.q.set(0, 1.0f);
  p.k.set(0, 0.0f);
  p.k.set(1, static_cast<float>(std::log(3.0)));
  p.v.set(0, 10.0f);
  p.v.set(1, 20.0f);
  const auto r = reference::attention(p.params, true);
  EXPECT_NEAR(r.out[0], 17.5, 1e-5);
  EXPECT_NEAR(r.lse[0], std::log(4.0), 1e-6);
  EXPECT_NEAR(r.weights[0], 0.25, 1e-6);
  EXPECT_NEAR(r.weights[1], 0.75, 1e-6);
}

TEST(Reference, EqualScoresGiveTheMeanOfV) {
  Problem p(spec(3, 5, 4));
  p.params.scale = 0.0f;  // every score 0
  const auto r = reference::attention(p.params);
  for (int64_t c = 0; c < 4; ++c) {
    double mean = 0.0;
    for (int64_t j = 0; j < 5; ++j) mean += p.v.get(j * 4 + c) / 5.0;
    for (int64_t i = 0; i < 3; ++i) EXPECT_NEAR(r.out[i * 4 + c], mean, 1e-12);
  }
  EXPECT_NEAR(r.lse[0], std::log(5.0), 1e-12);
}

TEST(Reference, OneHotScorePicksOneRow) {
  Problem p(spec(1, 4, 4));
  p.params.scale = 1.0f;
  for (int64_t j = 0; j < 4; ++j)
    for (int64_t c = 0; c < 4; ++c) p.k.set(j * 4 + c, j == c ? 1.0f : 0.0f);
  for (int64_t c = 0; c < 4; ++c) p.q.set(c, c == 2 ? 100.0f : 0.0f);
  const auto r = reference::attention(p.params);
  for (int64_t c = 0; c < 4; ++c) EXPECT_NEAR(r.out[c], p.v.get(2 * 4 + c), 1e-12);
}

TEST(Reference, FirstCausalRowIsV0) {
  ProblemSpec s = spec(6, 6, 8, 2, 2);
  s.mask = MaskKind::kCausal;
  Problem p(s);
  const auto r = reference::attention(p.params);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t c = 0; c < 8; ++c) EXPECT_DOUBLE_EQ(r.out[h * 8 + c], p.v.get(h * 8 + c));
}

TEST(Reference, CausalAlignmentAndWindowsByWeights) {
  // Lq = 2, Lk = 4: bottom-right row 0 sees keys 0..2, top-left row 0 sees key 0 only.
  for (MaskKind m : {MaskKind::kCausal, MaskKind::kCausalTopLeft}) {
    ProblemSpec s = spec(2, 4, 3);
    s.mask = m;
    Problem p(s);
    const auto r = reference::attention(p.params, true);
    const int visible_row0 = m == MaskKind::kCausal ? 3 : 1;
    for (int j = 0; j < 4; ++j)
      EXPECT_EQ(r.weights[j] > 0.0, j < visible_row0) << to_string(m) << j;
  }
  ProblemSpec s = spec(5, 5, 3);
  s.mask = MaskKind::kSlidingWindow;
  s.window_left = 1;  // HF window 2: the key itself and one before
  s.window_right = 0;
  Problem p(s);
  const auto r = reference::attention(p.params, true);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_EQ(r.weights[i * 5 + j] > 0.0, j == i || j == i - 1);
}

TEST(Reference, FullyMaskedRowsAreZeroWithLseMinusInf) {
  ProblemSpec s = spec(4, 2, 3);
  s.mask = MaskKind::kCausal;  // Lq > Lk: rows 0 and 1 see nothing
  s.with_lse = true;
  Problem p(s);
  const auto r = reference::attention(p.params);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(r.lse[i], -std::numeric_limits<double>::infinity());
    for (int c = 0; c < 3; ++c) EXPECT_EQ(r.out[i * 3 + c], 0.0);
  }
  EXPECT_TRUE(std::isfinite(r.lse[2]));
  ProblemSpec pad = spec(2, 3, 3);
  pad.key_lengths = {0};
  Problem q(pad);
  const auto rq = reference::attention(q.params);
  for (double x : rq.out) EXPECT_EQ(x, 0.0);
}

TEST(Reference, GqaReadsTheHeadsGroup) {
  Problem p(spec(1, 3, 2, 4, 2));  // heads 0,1 -> kv 0; heads 2,3 -> kv 1
  p.params.scale = 0.0f;
  const auto r = reference::attention(p.params);
  for (int h = 0; h < 4; ++h)
    for (int c = 0; c < 2; ++c) {
      double mean = 0.0;
      for (int j = 0; j < 3; ++j) mean += p.v.get((j * 2 + h / 2) * 2 + c) / 3.0;
      EXPECT_NEAR(r.out[h * 2 + c], mean, 1e-12) << h;
    }
}

TEST(Reference, SoftcapAndAdditiveMask) {
  Problem p(spec(1, 2, 1));
  p.params.scale = 1.0f;
  p.params.softcap = 2.0f;
  p.q.set(0, 1.0f);
  p.k.set(0, 4.0f);
  p.k.set(1, -1.0f);
  Tensor mask(DType::kF32, {1, 1, 1, 2});
  mask.set(1, 0.5f);
  p.params.additive_mask = mask.view();
  const auto r = reference::attention(p.params, true);
  const double s0 = 2.0 * std::tanh(4.0 / 2.0), s1 = 2.0 * std::tanh(-1.0 / 2.0) + 0.5;
  const double w0 = std::exp(s0) / (std::exp(s0) + std::exp(s1));
  EXPECT_NEAR(r.weights[0], w0, 1e-7);
  EXPECT_NEAR(r.lse[0], std::log(std::exp(s0) + std::exp(s1)), 1e-6);
}

TEST(Reference, NanInMaskedOutKeysDoesNotLeak) {
  ProblemSpec s = spec(3, 6, 4);
  s.key_lengths = {4};
  Problem p(s);
  for (int64_t c = 0; c < 4; ++c) {
    p.k.set(5 * 4 + c, std::numeric_limits<float>::quiet_NaN());
    p.v.set(4 * 4 + c, std::numeric_limits<float>::quiet_NaN());
  }
  const auto r = reference::attention(p.params);
  for (double x : r.out) EXPECT_TRUE(std::isfinite(x));

  // A key hidden only by an additive -inf: NaN in its K gives a NaN score, which must weigh 0.
  Tensor mask(DType::kF32, {1, 1, 3, 6});
  for (int64_t i = 0; i < 3; ++i) mask.set(i * 6 + 1, -std::numeric_limits<float>::infinity());
  p.params.additive_mask = mask.view();
  for (int64_t c = 0; c < 4; ++c) {
    p.k.set(1 * 4 + c, std::numeric_limits<float>::quiet_NaN());
    p.v.set(1 * 4 + c, std::numeric_limits<float>::quiet_NaN());
  }
  const auto masked = reference::attention(p.params);
  for (double x : masked.out) EXPECT_TRUE(std::isfinite(x));
}

}  // namespace
}  // namespace qwen3vl
