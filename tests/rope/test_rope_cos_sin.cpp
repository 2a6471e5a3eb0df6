// rope_cos_sin against the float64 formula cos/sin(p_axis(i) * inv_i) * attention_factor, for text
// (M-RoPE, split and full tables, YaRN's factor) and vision (transformers' fp32 angles) tables;
// typed errors that leave the outputs untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/rope/rope.hpp"

namespace qwen3vl {
namespace {

using namespace rope;

// Positions [3, T] (t, h, w): the ends of the range, then seeded values inside it.
Tensor three_axis_positions(int64_t tokens, int64_t max_position) {
  Tensor p(DType::kI32, {3, tokens});
  uint32_t state = 12345;
  for (int64_t i = 0; i < 3 * tokens; ++i) {
    state = state * 1664525u + 1013904223u;
    p.data<int32_t>()[i] = static_cast<int32_t>(state % static_cast<uint32_t>(max_position));
  }
  p.data<int32_t>()[0] = 0;
  p.data<int32_t>()[tokens + 1] = static_cast<int32_t>(max_position - 1);
  return p;
}

// Largest |got - float64 formula| over cos and sin.
double worst_error(const RopeTable& table, const Tensor& pos, const Tensor& c, const Tensor& s) {
  const RopeTableSpec& spec = table.spec();
  const int64_t tokens = pos.size(pos.view().rank - 1), half = c.size(1);
  double worst = 0.0;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const int64_t axis = pos.view().rank == 2 ? spec.axis[static_cast<size_t>(i)] : 0;
      const double angle = static_cast<double>(pos.data<int32_t>()[axis * tokens + t]) *
                           static_cast<double>(spec.inv_freq[static_cast<size_t>(i)]);
      worst = std::fmax(worst,
                        std::fabs(c.get(t * half + i) - std::cos(angle) * spec.attention_factor));
      worst = std::fmax(worst,
                        std::fabs(s.get(t * half + i) - std::sin(angle) * spec.attention_factor));
    }
  return worst;
}

RopeTable text_table(TableLayout layout, RopeScalingType scaling = RopeScalingType::kDefault) {
  RopeConfig rc;
  rc.head_dim = 32;
  rc.theta = 5e6;
  rc.scaling.type = scaling;
  rc.scaling.factor = 4.0;
  rc.scaling.original_max_position = 1024;
  RopeTable t;
  throw_if_error(make_text_table(rc, MRopeLayout::kInterleaved, MRopeSection{6, 5, 5}, 5000,
                                 AngleRecipe::kExact, layout, &t));
  return t;
}

TEST(RopeCosSin, TextTablesMatchTheFloat64Formula) {
  const int64_t tokens = 37;
  const Tensor pos = three_axis_positions(tokens, 5000);
  struct Case {
    TableLayout layout;
    RopeScalingType scaling;
    // include/qwen3vl/rope/table.hpp: full, one rounding of a float64 value (~6e-8); split, the
    // fp32 angle addition (~2e-7 more); both scaled by YaRN's attention factor.
    double tolerance;
  };
  for (const Case& k : {Case{TableLayout::kFull, RopeScalingType::kDefault, 6e-8},
                        Case{TableLayout::kSplit, RopeScalingType::kDefault, 2.6e-7},
                        Case{TableLayout::kSplit, RopeScalingType::kYarn, 2.6e-7}}) {
    SCOPED_TRACE(std::string(to_string(k.layout)) + " " + to_string(k.scaling));
    const RopeTable table = text_table(k.layout, k.scaling);
    const double tolerance = k.tolerance * table.spec().attention_factor;
    if (k.scaling == RopeScalingType::kYarn) ASSERT_GT(table.spec().attention_factor, 1.0);
    Tensor c(DType::kF32, {tokens, 16}), s(DType::kF32, {tokens, 16});
    ASSERT_TRUE(rope_cos_sin(table.view(), pos, c, s).ok());
    EXPECT_LT(worst_error(table, pos, c, s), tolerance);

    // [T] positions serve every axis: equal to [3, T] with three equal rows.
    Tensor one(DType::kI32, {tokens}), same(DType::kI32, {3, tokens});
    for (int64_t t = 0; t < tokens; ++t) {
      one.data<int32_t>()[t] = pos.data<int32_t>()[t];
      for (int64_t a = 0; a < 3; ++a) same.data<int32_t>()[a * tokens + t] = one.data<int32_t>()[t];
    }
    Tensor c1(DType::kF32, {tokens, 16}), s1(DType::kF32, {tokens, 16});
    Tensor c3(DType::kF32, {tokens, 16}), s3(DType::kF32, {tokens, 16});
    ASSERT_TRUE(rope_cos_sin(table.view(), one, c1, s1).ok());
    ASSERT_TRUE(rope_cos_sin(table.view(), same, c3, s3).ok());
    for (int64_t i = 0; i < c1.numel(); ++i) {
      ASSERT_EQ(c1.get(i), c3.get(i)) << i;
      ASSERT_EQ(s1.get(i), s3.get(i)) << i;
    }
    EXPECT_LT(worst_error(table, one, c1, s1), tolerance);
  }
}

// The split table's error does not grow with the position (table.hpp: "independent of p"): at
// the far end of a 262144-position table it stays within the same ~2e-7 of the full table as at
// the near end, and both within their documented distance of the float64 formula.
TEST(RopeCosSin, SplitTableDoesNotDriftAtFarPositions) {
  RopeConfig rc;
  rc.head_dim = 32;
  rc.theta = 5e6;
  RopeTable full, split;
  for (auto [layout, table] :
       {std::make_pair(TableLayout::kFull, &full), std::make_pair(TableLayout::kSplit, &split)})
    ASSERT_TRUE(
        make_text_table(rc, MRopeLayout::kNone, {}, 262144, AngleRecipe::kExact, layout, table)
            .ok());
  const int64_t tokens = 4096;
  double near_gap = 0, far_gap = 0;
  for (const int32_t first : {0, 262144 - 4096}) {
    Tensor pos(DType::kI32, {tokens});
    for (int64_t t = 0; t < tokens; ++t) pos.data<int32_t>()[t] = first + static_cast<int32_t>(t);
    Tensor cf(DType::kF32, {tokens, 16}), sf(DType::kF32, {tokens, 16});
    Tensor cs(DType::kF32, {tokens, 16}), ss(DType::kF32, {tokens, 16});
    ASSERT_TRUE(rope_cos_sin(full.view(), pos, cf, sf).ok());
    ASSERT_TRUE(rope_cos_sin(split.view(), pos, cs, ss).ok());
    double gap = 0;
    for (int64_t i = 0; i < cf.numel(); ++i)
      gap = std::fmax(
          gap, std::fmax(std::fabs(cs.get(i) - cf.get(i)), std::fabs(ss.get(i) - sf.get(i))));
    (first == 0 ? near_gap : far_gap) = gap;
    EXPECT_LT(worst_error(full, pos, cf, sf), 6e-8) << "positions from " << first;
    EXPECT_LT(worst_error(split, pos, cs, ss), 2.6e-7) << "positions from " << first;
  }
  std::printf("[ split ] |split - full| positions 0..4095: %.3g, 258048..262143: %.3g\n", near_gap,
              far_gap);
  EXPECT_LE(near_gap, 2e-7);
  EXPECT_LE(far_gap, 2e-7);
}

// Vision: transformers' recipe (fp32 angle inv * p, its cos/sin) exactly, and the float64 formula
// within the fp32 angle's error at these small positions.
TEST(RopeCosSin, VisionTableIsTransformersFp32) {
  RopeTable table;
  ASSERT_TRUE(
      make_vision_table(16, 1e4, 64, AngleRecipe::kTransformersFp32, TableLayout::kFull, &table)
          .ok());
  const int64_t tokens = 20;
  Tensor pos(DType::kI32, {2, tokens});
  for (int64_t t = 0; t < tokens; ++t) {
    pos.data<int32_t>()[t] = static_cast<int32_t>((t * 7) % 64);            // row
    pos.data<int32_t>()[tokens + t] = static_cast<int32_t>((t * 13) % 64);  // column
  }
  // Rows with a gap between them: any row stride works.
  Tensor c_rows(DType::kF32, {tokens, 12}), s(DType::kF32, {tokens, 8});
  const TensorView c = TensorView::strided(c_rows.data<float>(), DType::kF32, {tokens, 8}, {12, 1});
  ASSERT_TRUE(rope_cos_sin(table.view(), pos, c, s).ok());
  const RopeTableSpec& spec = table.spec();
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < 8; ++i) {
      const int32_t p = pos.data<int32_t>()[spec.axis[static_cast<size_t>(i)] * tokens + t];
      const float angle = spec.inv_freq[static_cast<size_t>(i)] * static_cast<float>(p);
      ASSERT_EQ(c_rows.get(t * 12 + i), static_cast<float>(std::cos(static_cast<double>(angle))));
      ASSERT_EQ(s.get(t * 8 + i), static_cast<float>(std::sin(static_cast<double>(angle))));
      const double exact = static_cast<double>(p) * spec.inv_freq[static_cast<size_t>(i)];
      EXPECT_NEAR(c_rows.get(t * 12 + i), std::cos(exact), 1e-5);
    }
}

TEST(RopeCosSin, TypedErrorsLeaveTheOutputsAlone) {
  const RopeTable table = text_table(TableLayout::kSplit);
  Tensor pos = three_axis_positions(5, 5000);
  Tensor c(DType::kF32, {5, 16}), s(DType::kF32, {5, 16});
  for (int64_t i = 0; i < c.numel(); ++i) c.set(i, 7.0f), s.set(i, 7.0f);
  const auto expect = [&](const Status& st, StatusCode code, const std::string& text) {
    EXPECT_EQ(st.code(), code) << st.to_string();
    EXPECT_NE(st.message().find(text), std::string::npos) << st.to_string();
    for (int64_t i = 0; i < c.numel(); ++i) {
      ASSERT_EQ(c.get(i), 7.0f);
      ASSERT_EQ(s.get(i), 7.0f);
    }
  };
  pos.data<int32_t>()[2 * 5 + 4] = 5000;  // w of token 4: one past the table
  expect(rope_cos_sin(table.view(), pos, c, s), StatusCode::kInvalidArgument,
         "positions[2, 4] = 5000: allowed 0..4999");
  pos.data<int32_t>()[2 * 5 + 4] = -1;
  expect(rope_cos_sin(table.view(), pos, c, s), StatusCode::kInvalidArgument, "= -1");
  pos.data<int32_t>()[2 * 5 + 4] = 3;
  Tensor two_axes(DType::kI32, {2, 5}), f32_pos(DType::kF32, {5});
  expect(rope_cos_sin(table.view(), two_axes, c, s), StatusCode::kShapeMismatch, "positions.shape");
  expect(rope_cos_sin(table.view(), f32_pos, c, s), StatusCode::kInvalidArgument,
         "positions = f32");
  Tensor narrow(DType::kF32, {5, 8}), f16(DType::kF16, {5, 16});
  expect(rope_cos_sin(table.view(), pos, narrow, s), StatusCode::kShapeMismatch,
         "cos.shape = [5, 8]");
  expect(rope_cos_sin(table.view(), pos, c, f16), StatusCode::kInvalidArgument, "sin = f16");
  expect(rope_cos_sin(RopeTableView{}, pos, c, s), StatusCode::kNullPointer, "table");
  RopeTableView on_gpu = table.view();
  on_gpu.device = Device::kCUDA;
  expect(rope_cos_sin(on_gpu, pos, c, s), StatusCode::kUnsupported, "table.device");
  EXPECT_TRUE(rope_cos_sin(table.view(), pos, c, s).ok());
}

}  // namespace
}  // namespace qwen3vl
