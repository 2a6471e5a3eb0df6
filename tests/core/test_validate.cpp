// validate(): every kind of bad input gives a typed error whose message names the argument.
#include <gtest/gtest.h>

#include <string>

#include "qwen3vl/core/params.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;

void expect_error(const AttentionParams& p, StatusCode code, const std::string& mentions) {
  const Status s = validate(p);
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(mentions), std::string::npos)
      << "message '" << s.message() << "' should mention '" << mentions << "'";
}

ProblemSpec small() {
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = 5;
  s.seq_k = 7;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 8;
  return s;
}

TEST(Validate, AcceptsWellFormedProblems) {
  Problem p(small());
  AttentionShape shape;
  ASSERT_TRUE(validate(p.params, &shape).ok());
  EXPECT_EQ(shape.batch, 2);
  EXPECT_EQ(shape.group_size(), 2);
  EXPECT_FLOAT_EQ(shape.scale, 1.0f / std::sqrt(8.0f));
  ProblemSpec v = small();
  v.varlen_q = {3, 0, 4};
  v.varlen_k = {5, 2, 0};
  v.with_lse = true;
  Problem pv(v);
  ASSERT_TRUE(validate(pv.params, &shape).ok());
  EXPECT_EQ(shape.batch, 3);
  EXPECT_EQ(shape.max_q, 4);
  EXPECT_EQ(shape.max_k, 5);
}

TEST(Validate, ShapeMismatch) {
  Problem p(small());
  p.params.k.shape[0] = 3;  // batch differs from q
  expect_error(p.params, StatusCode::kShapeMismatch, "k.shape");
  Problem p2(small());
  p2.params.v.shape[1] = 6;  // v length differs from k
  expect_error(p2.params, StatusCode::kShapeMismatch, "v.shape");
  Problem p3(small());
  p3.params.out.shape[2] = 2;
  expect_error(p3.params, StatusCode::kShapeMismatch, "out.shape");
}

TEST(Validate, HeadsMustDivide) {
  ProblemSpec s = small();
  s.heads = 6;
  s.kv_heads = 4;
  Problem p(s);
  expect_error(p.params, StatusCode::kInvalidArgument, "Hkv) = 4");
}

TEST(Validate, LastStrideMustBeOne) {
  Problem p(small());
  p.params.q.stride[3] = 2;
  expect_error(p.params, StatusCode::kBadStride, "q.stride[3] = 2");
}

TEST(Validate, NullPointers) {
  Problem p(small());
  p.params.v.data = nullptr;
  expect_error(p.params, StatusCode::kNullPointer, "v.data");
  Problem p2(small());
  p2.params.out = TensorView();
  expect_error(p2.params, StatusCode::kNullPointer, "out is absent");
}

TEST(Validate, HeadDimRange) {
  for (int64_t d : {0, 257, 300}) {
    Problem p(small());
    for (TensorView* t : {&p.params.q, &p.params.k, &p.params.v, &p.params.out}) t->shape[3] = d;
    expect_error(p.params, StatusCode::kInvalidArgument, "(head_dim) = " + std::to_string(d));
  }
}

TEST(Validate, CuSeqlens) {
  ProblemSpec s = small();
  s.varlen_q = {3, 2};
  s.varlen_k = {4, 4};
  {
    Problem p(s);
    p.cu_q.data<int32_t>()[1] = 4;  // 0, 4, 5 is fine; make it decrease instead
    p.cu_q.data<int32_t>()[2] = 3;
    expect_error(p.params, StatusCode::kInvalidArgument, "must be non-decreasing");
  }
  {
    Problem p(s);
    p.cu_k.data<int32_t>()[0] = 1;
    expect_error(p.params, StatusCode::kInvalidArgument, "cu_seqlens_k[0] = 1");
  }
  {
    Problem p(s);
    p.cu_k.data<int32_t>()[2] = 100;
    expect_error(p.params, StatusCode::kInvalidArgument, "exceeds the packed token count");
  }
  {
    Problem p(s);
    p.params.cu_seqlens_k = TensorView();
    expect_error(p.params, StatusCode::kInvalidArgument, "cu_seqlens_k is absent");
  }
  {
    Problem p(s);
    p.params.max_seqlen_q = 2;  // shorter than the longest sequence (3)
    expect_error(p.params, StatusCode::kInvalidArgument, "max_seqlen_q/k = 2/0");
  }
}

TEST(Validate, MaskOfTheWrongShape) {
  ProblemSpec s = small();
  s.additive_mask = true;
  Problem p(s);
  p.params.additive_mask.shape[3] = 6;  // Lk is 7
  expect_error(p.params, StatusCode::kShapeMismatch, "additive_mask.shape");
  Problem ok(s);
  ok.params.additive_mask.shape[0] = 1;  // broadcast over the batch is allowed
  EXPECT_TRUE(validate(ok.params).ok());
}

TEST(Validate, OptionalOutputsAndScalars) {
  {
    ProblemSpec s = small();
    s.with_lse = true;
    Problem p(s);
    p.params.lse.shape[2] = 4;
    expect_error(p.params, StatusCode::kShapeMismatch, "lse.shape");
  }
  {
    Problem p(small());
    p.params.softcap = -1.0f;
    expect_error(p.params, StatusCode::kInvalidArgument, "softcap = -1");
  }
  {
    Problem p(small());
    p.params.mask = MaskKind::kSlidingWindow;
    p.params.window_left = -3;
    expect_error(p.params, StatusCode::kInvalidArgument, "window = (-3");
  }
  {
    ProblemSpec s = small();
    s.key_lengths = {3, 9};
    Problem p(s);
    expect_error(p.params, StatusCode::kInvalidArgument, "key_lengths[1] = 9");
  }
  {
    Problem p(small());
    p.params.k = TensorView::contiguous(p.k.data<void>(), DType::kF16, {2, 7, 2, 8});
    expect_error(p.params, StatusCode::kInvalidArgument, "k.dtype = f16");
  }
  {
    Problem p(small());
    p.params.scale = std::numeric_limits<float>::infinity();
    expect_error(p.params, StatusCode::kInvalidArgument, "scale = inf");
  }
  {
    Problem p(small());
    p.params.q = TensorView::contiguous(p.q.data<void>(), DType::kF32, {10, 4, 8});
    expect_error(p.params, StatusCode::kShapeMismatch, "q.rank = 3");
  }
}

TEST(MaskRanges, VisibleKeysMatchTheDefinitions) {
  // Bottom-right causal with Lq < Lk: the last query sees every key.
  EXPECT_EQ(visible_keys(MaskKind::kCausal, -1, -1, 1, 2, 5).end, 5);
  EXPECT_EQ(visible_keys(MaskKind::kCausal, -1, -1, 0, 2, 5).end, 4);
  // Lq > Lk: the first rows see nothing.
  EXPECT_EQ(visible_keys(MaskKind::kCausal, -1, -1, 0, 5, 2).size(), 0);
  EXPECT_EQ(visible_keys(MaskKind::kCausal, -1, -1, 3, 5, 2).end, 1);
  EXPECT_EQ(visible_keys(MaskKind::kCausalTopLeft, -1, -1, 0, 2, 5).end, 1);
  const KeyRange w = visible_keys(MaskKind::kSlidingWindow, 2, 0, 4, 5, 5);
  EXPECT_EQ(w.begin, 2);
  EXPECT_EQ(w.end, 5);
}

}  // namespace
}  // namespace qwen3vl
