// RoPE math against float64 formulas: frequencies for every scaling type, the M-RoPE section maps,
// each table mode's measured angle error, the vision patch order and the position-id builder.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "qwen3vl/rope/rope.hpp"
#include "support/table_checks.hpp"

namespace qwen3vl {
namespace {

using namespace rope;

using testing::kTwoPi;

double rel(double got, double want) { return std::fabs(got - want) / std::fabs(want); }

RopeConfig config(int64_t d, double theta, RopeScalingType type = RopeScalingType::kDefault,
                  double factor = 1.0, int64_t l0 = 0) {
  RopeConfig c;
  c.head_dim = d;
  c.theta = theta;
  c.scaling.type = type;
  c.scaling.factor = factor;
  c.scaling.original_max_position = l0;
  return c;
}

std::vector<float> inv_freq(const RopeConfig& c, int64_t seq_len = 0, double* factor = nullptr) {
  RopeFrequencies f;
  throw_if_error(compute_frequencies(c, seq_len, &f));
  if (factor) *factor = f.attention_factor;
  return f.inv_freq;
}

// fp32 evaluation in transformers' operation order: the exponent 2i/d is rounded to fp32 first, so
// theta^e moves by ln(theta) * ulp(e) / 2 (~1e-6 relative at theta 5e6) from the float64 formula.
constexpr double kFp32Rel = 2e-6;

TEST(RopeScalingMath, DefaultLinearNtkAndPartial) {
  for (int64_t d : {64, 80, 128}) {
    const auto inv = inv_freq(config(d, 5e6));
    ASSERT_EQ(inv.size(), static_cast<size_t>(d / 2));
    for (int64_t i = 0; i < d / 2; ++i)
      EXPECT_LE(rel(inv[i], std::pow(5e6, -2.0 * i / d)), kFp32Rel);
    const auto lin = inv_freq(config(d, 1e6, RopeScalingType::kLinear, 4.0));
    for (int64_t i = 0; i < d / 2; ++i)
      EXPECT_LE(rel(lin[i], std::pow(1e6, -2.0 * i / d) / 4), kFp32Rel);
    const auto ntk = inv_freq(config(d, 1e4, RopeScalingType::kNtk, 8.0));
    const double theta = 1e4 * std::pow(8.0, double(d) / (d - 2));
    for (int64_t i = 0; i < d / 2; ++i)
      EXPECT_LE(rel(ntk[i], std::pow(theta, -2.0 * i / d)), kFp32Rel);
  }
  RopeConfig partial = config(256, 1e7);
  partial.rotary_dim = 64;
  const auto inv = inv_freq(partial);
  ASSERT_EQ(inv.size(), 32u);
  for (int64_t i = 0; i < 32; ++i) EXPECT_LE(rel(inv[i], std::pow(1e7, -2.0 * i / 64)), kFp32Rel);
}

TEST(RopeScalingMath, DynamicNtk) {
  const RopeConfig c = config(128, 1e6, RopeScalingType::kDynamic, 2.0, 4096);
  // Below the original length: the unscaled frequencies.
  EXPECT_EQ(inv_freq(c, 1000), inv_freq(config(128, 1e6)));
  // L = 2 L0: theta' = theta * (2 * 2 - 1)^(128 / 126) ~ 3.05e6 (the spec's example).
  const double theta = 1e6 * std::pow(3.0, 128.0 / 126.0);
  EXPECT_NEAR(theta, 3.05e6, 0.01e6);
  const auto inv = inv_freq(c, 8192);
  for (int64_t i = 0; i < 64; ++i)
    EXPECT_LE(rel(inv[i], std::pow(theta, -2.0 * i / 128)), kFp32Rel);
}

TEST(RopeScalingMath, YarnRampAndAttentionFactor) {
  const RopeConfig c = config(128, 5e6, RopeScalingType::kYarn, 2.0, 262144);
  // The spec's example: low = 29, high = 45, mscale = 1.0693.
  const auto corr = [](double rot) {
    return 128 * std::log(262144 / (rot * kTwoPi)) / (2 * std::log(5e6));
  };
  EXPECT_EQ(std::floor(corr(32)), 29);
  EXPECT_EQ(std::ceil(corr(1)), 45);
  double factor = 0;
  const auto inv = inv_freq(c, 0, &factor);
  EXPECT_NEAR(factor, 1.0693, 5e-5);
  for (int64_t i = 0; i < 64; ++i) {
    const double base = std::pow(5e6, -2.0 * i / 128);
    const double ramp = std::min(1.0, std::max(0.0, (i - 29.0) / (45.0 - 29.0)));
    const double extrapolation = 1.0 - ramp;
    const double want = base / 2 * (1 - extrapolation) + base * extrapolation;
    EXPECT_LE(rel(inv[i], want), kFp32Rel) << i;
  }
  RopeConfig m = config(64, 1e4, RopeScalingType::kYarn, 40.0, 4096);
  m.scaling.mscale = 0.707;
  m.scaling.mscale_all_dim = 1.0;
  inv_freq(m, 0, &factor);
  EXPECT_NEAR(factor, (0.1 * 0.707 * std::log(40.0) + 1) / (0.1 * std::log(40.0) + 1), 1e-12);
  m.scaling.attention_factor = 1.25;
  inv_freq(m, 0, &factor);
  EXPECT_EQ(factor, 1.25);
}

TEST(RopeScalingMath, Llama3Bands) {
  RopeConfig c = config(128, 5e5, RopeScalingType::kLlama3, 8.0, 8192);
  const auto inv = inv_freq(c);
  for (int64_t i = 0; i < 64; ++i) {
    const double base = std::pow(5e5, -2.0 * i / 128), wavelen = kTwoPi / base;
    double want = base;
    if (wavelen > 8192.0 / 1.0)
      want = base / 8;
    else if (wavelen >= 8192.0 / 4.0) {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - smooth) * base / 8 + smooth * base;
    }
    EXPECT_LE(rel(inv[i], want), 2e-6) << i;
  }
}

TEST(RopeMRope, SectionMaps) {
  std::vector<uint8_t> axis;
  ASSERT_TRUE(mrope_axis_map(MRopeLayout::kInterleaved, {24, 20, 20}, 64, &axis).ok());
  std::string pattern;
  for (uint8_t a : axis) pattern += "THW"[a];
  std::string want;
  for (int i = 0; i < 20; ++i) want += "THW";
  want += "TTTT";
  EXPECT_EQ(pattern, want);
  ASSERT_TRUE(mrope_axis_map(MRopeLayout::kChunked, {16, 24, 24}, 64, &axis).ok());
  pattern.clear();
  for (uint8_t a : axis) pattern += "THW"[a];
  EXPECT_EQ(pattern, std::string(16, 'T') + std::string(24, 'H') + std::string(24, 'W'));
  // Qwen3.5-style partial rotary: [11, 11, 10] over 32 slots.
  ASSERT_TRUE(mrope_axis_map(MRopeLayout::kInterleaved, {11, 11, 10}, 32, &axis).ok());
}

TEST(RopeTables, MeasuredAngleErrorPerMode) {
  // theta 5e6, D 128, positions up to 262143 (the target: <= 1e-6 rad).
  const std::vector<int32_t> probes = testing::far_probes(7, 1021);
  const RopeConfig c = config(128, 5e6);
  const struct {
    AngleRecipe recipe;
    TableLayout layout;
    double bound;
  } modes[] = {// include/qwen3vl/rope/table.hpp: kExact within ~6e-8 at any position, kSplit ~2e-7
               // more, transformers' fp32 angles ~1.5e-2 rad at 262143
               {AngleRecipe::kExact, TableLayout::kFull, 6e-8},
               {AngleRecipe::kExact, TableLayout::kSplit, 2.6e-7},
               {AngleRecipe::kTransformersFp32, TableLayout::kFull, 1.5e-2}};
  for (const auto& m : modes) {
    RopeTable t;
    ASSERT_TRUE(make_text_table(c, MRopeLayout::kNone, {}, 262144, m.recipe, m.layout, &t).ok());
    const testing::AngleError e = testing::angle_error(t, probes, testing::own_frequencies(t));
    std::printf(
        "[ measured ] theta 5e6 D128 p<=262143 %s/%s: max angle error %.3g rad, "
        "max |c^2+s^2-1| %.3g, table %.1f MiB\n",
        to_string(m.recipe), to_string(m.layout), e.angle, e.norm, t.bytes() / 1048576.0);
    EXPECT_LE(e.angle, m.bound) << to_string(m.recipe) << "/" << to_string(m.layout);
    EXPECT_LE(e.norm, 1e-6);
    if (m.recipe == AngleRecipe::kTransformersFp32) {
      EXPECT_GE(e.angle, 1e-3) << "the fp32 recipe is expected to drift at large positions";
    }
  }
}

TEST(RopeTables, TransformersRecipeEqualsFp32Emulation) {
  RopeTable t;
  ASSERT_TRUE(make_text_table(config(128, 1e6), MRopeLayout::kNone, {}, 70000,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &t)
                  .ok());
  for (int32_t p : {0, 3, 4095, 69999})
    for (int i = 0; i < 64; i += 7) {
      const float angle = t.spec().inv_freq[i] * static_cast<float>(p);
      EXPECT_EQ(t.cos_table()[p * 64 + i], static_cast<float>(std::cos(double{angle})));
      EXPECT_EQ(t.sin_table()[p * 64 + i], static_cast<float>(std::sin(double{angle})));
    }
}

TEST(RopeVision, MergeBlockOrderAndTable) {
  std::vector<int32_t> pos;
  ASSERT_TRUE(vision_positions({{1, 4, 6}, {2, 2, 2}}, 2, &pos).ok());
  const int64_t n = 24 + 8;
  ASSERT_EQ(pos.size(), static_cast<size_t>(2 * n));
  const std::vector<int32_t> rows = {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3};
  const std::vector<int32_t> cols = {0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 0, 1, 0, 1};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(pos[i], rows[i]) << i;
    EXPECT_EQ(pos[n + i], cols[i]) << i;
  }
  for (int i = 0; i < 4; ++i) {  // the 2-frame grid repeats its rows and columns
    EXPECT_EQ(pos[24 + i], pos[28 + i]);
    EXPECT_EQ(pos[n + 24 + i], pos[n + 28 + i]);
  }
  RopeTable t;
  ASSERT_TRUE(make_vision_table(72, 1e4, 64, AngleRecipe::kExact, TableLayout::kFull, &t).ok());
  ASSERT_EQ(t.spec().inv_freq.size(), 36u);
  for (int k = 0; k < 18; ++k) {
    EXPECT_LE(rel(t.spec().inv_freq[k], std::pow(1e4, -4.0 * k / 72)), kFp32Rel);
    EXPECT_EQ(t.spec().inv_freq[k], t.spec().inv_freq[k + 18]);
    EXPECT_EQ(t.spec().axis[k], 0);
    EXPECT_EQ(t.spec().axis[k + 18], 1);
  }
  EXPECT_EQ(vision_positions({{1, 3, 4}}, 2, &pos).code(), StatusCode::kInvalidArgument);
}

RopeIndexOutput index(RopeIndexInput in, const std::vector<int32_t>& types,
                      const std::vector<int32_t>& mask) {
  in.token_types = types.data();
  in.attention_mask = mask.empty() ? nullptr : mask.data();
  RopeIndexOutput out;
  throw_if_error(get_rope_index(in, &out));
  return out;
}

std::vector<int32_t> run(std::initializer_list<std::pair<int32_t, int>> spec) {
  std::vector<int32_t> t;
  for (auto [kind, n] : spec) t.insert(t.end(), static_cast<size_t>(n), kind);
  return t;
}

TEST(RopeIndex, WorkedExample) {
  RopeIndexInput in;
  in.seq_len = 13;
  in.image_grid_thw = {{1, 4, 6}};
  const auto out = index(in, run({{0, 4}, {1, 6}, {0, 3}}), {});
  const std::vector<int32_t> t = {0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8, 9};
  const std::vector<int32_t> h = {0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8, 9};
  const std::vector<int32_t> w = {0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(std::vector<int32_t>(out.positions.begin(), out.positions.begin() + 13), t);
  EXPECT_EQ(std::vector<int32_t>(out.positions.begin() + 13, out.positions.begin() + 26), h);
  EXPECT_EQ(std::vector<int32_t>(out.positions.begin() + 26, out.positions.end()), w);
  EXPECT_EQ(out.delta, std::vector<int32_t>{-3});
}

TEST(RopeIndex, TextOnlyLeftPaddingAndVideos) {
  RopeIndexInput in;
  in.batch = 2;
  in.seq_len = 5;
  const auto out = index(in, std::vector<int32_t>(10, 0), {0, 0, 1, 1, 1, 1, 1, 1, 1, 1});
  EXPECT_EQ(std::vector<int32_t>(out.positions.begin(), out.positions.begin() + 10),
            (std::vector<int32_t>{0, 0, 0, 1, 2, 0, 1, 2, 3, 4}));
  EXPECT_EQ(out.delta, (std::vector<int32_t>{0, 0}));
  // A Qwen3-VL video of 2 frames (grid (2, 2, 4)): one run per frame, t offset 0 in each.
  RopeIndexInput v;
  v.seq_len = 7;
  v.video_grid_thw = {{2, 2, 4}};
  const auto vo = index(v, run({{0, 1}, {2, 2}, {0, 2}, {2, 2}}), {});
  EXPECT_EQ(std::vector<int32_t>(vo.positions.begin(), vo.positions.begin() + 7),
            (std::vector<int32_t>{0, 1, 1, 3, 4, 5, 5}));
  EXPECT_EQ(std::vector<int32_t>(vo.positions.begin() + 14, vo.positions.end()),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
  // Qwen2.5-VL: frames spaced by tokens_per_second * trunc(second_per_grid_t).
  RopeIndexInput q25;
  q25.model = RopeIndexModel::kQwen25VL;
  q25.seq_len = 5;
  q25.video_grid_thw = {{3, 2, 2}};
  q25.second_per_grid_ts = {2.5};
  const auto qo = index(q25, run({{0, 2}, {2, 3}}), {});
  EXPECT_EQ(std::vector<int32_t>(qo.positions.begin(), qo.positions.begin() + 5),
            (std::vector<int32_t>{0, 1, 2, 6, 10}));
  EXPECT_EQ(qo.delta, (std::vector<int32_t>{11 - 5}));
}

TEST(RopeIndex, TypedErrors) {
  RopeIndexInput in;
  in.seq_len = 5;
  const std::vector<int32_t> types = run({{0, 1}, {1, 4}});
  in.token_types = types.data();
  RopeIndexOutput out;
  Status st = get_rope_index(in, &out);  // no image grid for the run
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(st.message().find("image_grid_thw"), std::string::npos);
  in.image_grid_thw = {{1, 4, 6}};  // 6 tokens for a run of 4
  st = get_rope_index(in, &out);
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch);
  in.image_grid_thw = {{1, 3, 4}};  // h not a multiple of the merge size
  EXPECT_EQ(get_rope_index(in, &out).code(), StatusCode::kInvalidArgument);
  in.image_grid_thw.clear();
  const std::vector<int32_t> bad = {0, 3, 0, 0, 0};
  in.token_types = bad.data();
  st = get_rope_index(in, &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("token_types[0, 1] = 3"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace qwen3vl
