// merge_states on its own: an empty partial is the identity (bit for bit, NaN in its output never
// read), two empty partials give 0 and -inf, splitting the keys at every point and merging equals
// attention over all keys (float64 reference), merge order does not matter, bad arguments are
// typed errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "qwen3vl/core/merge_states.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

TEST(MergeStates, AnEmptyPartialIsTheIdentity) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    Tensor o1(dt, {5, 3, 72}), o2(dt, {5, 3, 72}), out(dt, {5, 3, 72});
    Tensor l1(DType::kF32, {5, 3}), l2(DType::kF32, {5, 3}), lo(DType::kF32, {5, 3});
    fill_uniform(o1, 1, -3.0f, 3.0f);
    fill_uniform(l1, 2, -20.0f, 20.0f);
    for (int64_t i = 0; i < o2.numel(); ++i) o2.set(i, kNan);  // never read
    for (int64_t i = 0; i < l2.numel(); ++i) l2.set(i, kNegInf);
    for (bool swap : {false, true}) {
      ASSERT_TRUE(
          (swap ? merge_states(o2, l2, o1, l1, out, lo) : merge_states(o1, l1, o2, l2, out, lo))
              .ok());
      EXPECT_EQ(0, std::memcmp(out.data<char>(), o1.data<char>(), static_cast<size_t>(o1.bytes())))
          << to_string(dt);
      EXPECT_EQ(0, std::memcmp(lo.data<char>(), l1.data<char>(), static_cast<size_t>(l1.bytes())));
    }
  }
}

TEST(MergeStates, TwoEmptyPartialsGiveZeroAndMinusInf) {
  Tensor o1(DType::kF32, {2, 2, 8}), o2(DType::kF32, {2, 2, 8}), out(DType::kF32, {2, 2, 8});
  Tensor l1(DType::kF32, {2, 2}), l2(DType::kF32, {2, 2}), lo(DType::kF32, {2, 2});
  for (int64_t i = 0; i < o1.numel(); ++i) o1.set(i, kNan), o2.set(i, kNan), out.set(i, kNan);
  for (int64_t i = 0; i < l1.numel(); ++i) l1.set(i, kNegInf), l2.set(i, kNegInf);
  ASSERT_TRUE(merge_states(o1, l1, o2, l2, out, lo).ok());
  for (int64_t i = 0; i < out.numel(); ++i) EXPECT_EQ(out.get(i), 0.0f);
  for (int64_t i = 0; i < lo.numel(); ++i) EXPECT_EQ(lo.get(i), kNegInf);
}

// Attention over keys [begin, end) of `full` (float64 reference), as an f32 partial state.
void partial(const testing::Problem& full, int64_t begin, int64_t end, Tensor* o, Tensor* lse) {
  AttentionParams p = full.params;
  p.k.data = static_cast<float*>(p.k.data) + begin * p.k.stride[1];
  p.v.data = static_cast<float*>(p.v.data) + begin * p.v.stride[1];
  p.k.shape[1] = p.v.shape[1] = end - begin;
  p.lse = TensorView();
  const reference::Result r = reference::attention(p);
  const int64_t tokens = o->size(0), heads = o->size(1), d = o->size(2);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      lse->set(t * heads + h, static_cast<float>(r.lse[static_cast<size_t>(t * heads + h)]));
      for (int64_t c = 0; c < d; ++c)
        o->set((t * heads + h) * d + c,
               static_cast<float>(r.out[static_cast<size_t>((t * heads + h) * d + c)]));
    }
}

TEST(MergeStates, SplittingTheKeysAtEveryPointEqualsTheWhole) {
  testing::ProblemSpec spec;
  spec.seq_q = 3;
  spec.seq_k = 29;
  spec.heads = spec.kv_heads = 2;
  spec.head_dim = 16;
  testing::Problem full(spec);
  const int64_t tokens = 3, heads = 2, d = 16;
  Tensor whole(DType::kF32, {tokens, heads, d}), whole_lse(DType::kF32, {tokens, heads});
  partial(full, 0, spec.seq_k, &whole, &whole_lse);
  for (int64_t cut = 0; cut <= spec.seq_k; ++cut) {
    Tensor o1(DType::kF32, {tokens, heads, d}), o2(DType::kF32, {tokens, heads, d});
    Tensor l1(DType::kF32, {tokens, heads}), l2(DType::kF32, {tokens, heads});
    partial(full, 0, cut, &o1, &l1);
    partial(full, cut, spec.seq_k, &o2, &l2);
    ASSERT_TRUE(merge_states(o1, l1, o2, l2, o1, l1).ok());  // in place
    double diff = 0, norm = 0, lse_err = 0;
    for (int64_t i = 0; i < o1.numel(); ++i) {
      diff += (o1.get(i) - whole.get(i)) * (o1.get(i) - whole.get(i));
      norm += whole.get(i) * whole.get(i);
    }
    for (int64_t i = 0; i < l1.numel(); ++i)
      lse_err = std::max(lse_err, std::fabs(double(l1.get(i)) - whole_lse.get(i)));
    EXPECT_LE(std::sqrt(diff / norm), 1e-6) << "cut " << cut;
    EXPECT_LE(lse_err, 1e-6) << "cut " << cut;
  }
}

TEST(MergeStates, OrderDoesNotMatter) {
  Tensor o[3] = {Tensor(DType::kF32, {4, 2, 8}), Tensor(DType::kF32, {4, 2, 8}),
                 Tensor(DType::kF32, {4, 2, 8})};
  Tensor l[3] = {Tensor(DType::kF32, {4, 2}), Tensor(DType::kF32, {4, 2}),
                 Tensor(DType::kF32, {4, 2})};
  for (int i = 0; i < 3; ++i) {
    fill_uniform(o[i], 10 + i);
    fill_uniform(l[i], 20 + i, -30.0f, 30.0f);
  }
  l[1].set(3, kNegInf);
  Tensor a(DType::kF32, {4, 2, 8}), la(DType::kF32, {4, 2}), b(DType::kF32, {4, 2, 8}),
      lb(DType::kF32, {4, 2});
  ASSERT_TRUE(merge_states(o[0], l[0], o[1], l[1], a, la).ok());
  ASSERT_TRUE(merge_states(a, la, o[2], l[2], a, la).ok());
  ASSERT_TRUE(merge_states(o[2], l[2], o[1], l[1], b, lb).ok());
  ASSERT_TRUE(merge_states(o[0], l[0], b, lb, b, lb).ok());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.get(i), b.get(i), 1e-6);
  for (int64_t i = 0; i < la.numel(); ++i) EXPECT_NEAR(la.get(i), lb.get(i), 1e-5);
}

TEST(MergeStates, RejectsBadArgumentsWithTypedErrors) {
  Tensor o(DType::kF32, {2, 3, 4}), l(DType::kF32, {2, 3});
  Tensor wrong(DType::kF32, {2, 4, 4}), l_i32(DType::kI32, {2, 3}), l_wrong(DType::kF32, {3, 2});
  EXPECT_EQ(merge_states(o, l, wrong, l, o, l).code(), StatusCode::kShapeMismatch);
  EXPECT_EQ(merge_states(o, l, o, l_i32, o, l).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(merge_states(o, l, o, l_wrong, o, l).code(), StatusCode::kShapeMismatch);
  EXPECT_EQ(merge_states(o, l, o, l, o, TensorView()).code(), StatusCode::kNullPointer);
  TensorView strided = o.view();
  strided.stride[2] = 2;
  EXPECT_EQ(merge_states(strided, l, o, l, o, l).code(), StatusCode::kBadStride);
  TensorView gpu = o.view();
  gpu.device = Device::kCUDA;
  EXPECT_EQ(merge_states(o, l, gpu, l, o, l).code(), StatusCode::kUnsupported);
  Tensor rank2(DType::kF32, {2, 3});
  EXPECT_EQ(merge_states(rank2, l, o, l, o, l).code(), StatusCode::kShapeMismatch);
}

}  // namespace
}  // namespace qwen3vl
