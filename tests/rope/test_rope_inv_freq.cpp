// A checkpoint's own inv_freq (rope::InvFreq, fp32 or float64) through the tables and the layers:
// what each recipe is exact to with each, and the typed errors for a wrong one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/layers/text_attention.hpp"
#include "qwen3vl/layers/vision_attention.hpp"
#include "qwen3vl/rope/rope.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/table_checks.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

using namespace rope;

// Seeded text-layer weights ([out, in] projections, RMSNorm weights near 1).
struct Weights {
  Tensor q, k, v, o, q_norm, k_norm;
  Weights(int64_t hidden, int64_t hq, int64_t hkv, int64_t d)
      : q(DType::kF32, {hq * d, hidden}),
        k(DType::kF32, {hkv * d, hidden}),
        v(DType::kF32, {hkv * d, hidden}),
        o(DType::kF32, {hidden, hq * d}),
        q_norm(DType::kF32, {d}),
        k_norm(DType::kF32, {d}) {
    const float a = 1.0f / std::sqrt(static_cast<float>(hidden));
    fill_uniform(q, 1, -a, a);
    fill_uniform(k, 2, -a, a);
    fill_uniform(v, 3, -a, a);
    fill_uniform(o, 4, -a, a);
    fill_uniform(q_norm, 5, 0.5f, 1.5f);
    fill_uniform(k_norm, 6, 0.5f, 1.5f);
  }
  layers::TextAttentionWeights views() const {
    return {q.view(), k.view(), v.view(), o.view(), q_norm.view(), k_norm.view()};
  }
};

constexpr double kTheta = 5e6;

RopeConfig text_config() {
  RopeConfig c;
  c.head_dim = 128;
  c.theta = kTheta;
  return c;
}

// theta^(-2i/d) evaluated in float64: the frequencies the model's formula defines.
std::vector<double> float64_frequencies(double theta, int64_t dim) {
  std::vector<double> f;
  for (int64_t i = 0; i < dim / 2; ++i) f.push_back(std::pow(theta, -2.0 * i / dim));
  return f;
}

// The largest |angle error| (radians) of the table's effective cos/sin against p * want[i] in
// float64, over probe positions up to 262143.
double max_angle_error(const RopeTable& table, const std::vector<double>& want) {
  return testing::angle_error(table, testing::far_probes(11, 2039), want).angle;
}

// kExact is exact to the frequencies it is given: with float64 ones, to theta^(-2i/d) itself;
// with the fp32 ones (the default), only to those, which at 262143 is ~1e-2 rad from float64's.
TEST(RopeInvFreq, ExactRecipeIsExactToTheFrequenciesGiven) {
  const std::vector<double> f64 = float64_frequencies(kTheta, 128);
  InvFreq given;
  given.f64 = f64;
  for (TableLayout layout : {TableLayout::kSplit, TableLayout::kFull}) {
    RopeTable with_f64, with_f32;
    ASSERT_TRUE(make_text_table(text_config(), MRopeLayout::kNone, {}, 262144, AngleRecipe::kExact,
                                layout, &with_f64, given)
                    .ok());
    ASSERT_TRUE(make_text_table(text_config(), MRopeLayout::kNone, {}, 262144, AngleRecipe::kExact,
                                layout, &with_f32)
                    .ok());
    EXPECT_EQ(with_f64.spec().inv_freq_f64, f64);
    const double e64 = max_angle_error(with_f64, f64), e32 = max_angle_error(with_f32, f64);
    const double e32_own = max_angle_error(with_f32, testing::own_frequencies(with_f32));
    std::printf(
        "[ inv_freq ] exact/%s vs float64 frequencies: %.3g rad with float64 given, %.3g "
        "with fp32 (%.3g vs the fp32 frequencies themselves)\n",
        to_string(layout), e64, e32, e32_own);
    // docs/api.md: kExact within ~6e-8 of the frequencies given, kSplit ~2e-7 more; fp32
    // frequencies ~1e-2 rad from float64 ones at 262143.
    const double bound = layout == TableLayout::kFull ? 6e-8 : 2.6e-7;
    EXPECT_LE(e64, bound) << to_string(layout);
    EXPECT_LE(e32_own, bound) << to_string(layout);
    EXPECT_GE(e32, 1e-3) << "fp32 frequencies drift from float64 ones at large positions";
    EXPECT_LE(e32, 1.2e-2);
  }
}

// fp32 frequencies given equal the computed ones when they are the same numbers (bit for bit), and
// replace them when they differ.
TEST(RopeInvFreq, Fp32FrequenciesReplaceTheComputedOnes) {
  RopeFrequencies computed;
  ASSERT_TRUE(compute_frequencies(text_config(), 0, &computed).ok());
  InvFreq same;
  same.f32 = computed.inv_freq;
  RopeTable a, b, c;
  ASSERT_TRUE(make_text_table(text_config(), MRopeLayout::kNone, {}, 4096,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &a)
                  .ok());
  ASSERT_TRUE(make_text_table(text_config(), MRopeLayout::kNone, {}, 4096,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &b, same)
                  .ok());
  EXPECT_EQ(a.cos_table(), b.cos_table());
  InvFreq other = same;
  other.f32[19] = std::nextafter(other.f32[19], 1.0f);
  ASSERT_TRUE(make_text_table(text_config(), MRopeLayout::kNone, {}, 4096,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &c, other)
                  .ok());
  EXPECT_EQ(c.spec().inv_freq, other.f32);
  EXPECT_NE(a.cos_table(), c.cos_table());
  // The attention factor still comes from the config (YaRN).
  RopeConfig yarn = text_config();
  yarn.scaling.type = RopeScalingType::kYarn;
  yarn.scaling.factor = 2.0;
  yarn.scaling.original_max_position = 262144;
  RopeFrequencies f;
  ASSERT_TRUE(compute_frequencies(yarn, 0, same, &f).ok());
  EXPECT_EQ(f.inv_freq, same.f32);
  EXPECT_NEAR(f.attention_factor, 0.1 * std::log(2.0) + 1.0, 1e-15);
}

TEST(RopeInvFreq, BadFrequenciesAreTypedErrors) {
  const auto text = [](const InvFreq& given) {
    RopeTable t;
    return make_text_table(text_config(), MRopeLayout::kNone, {}, 64, AngleRecipe::kExact,
                           TableLayout::kSplit, &t, given);
  };
  InvFreq short_f32;
  short_f32.f32.assign(63, 0.5f);
  Status s = text(short_f32);
  EXPECT_EQ(s.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(s.message().find("inv_freq.size() = 63"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("64"), std::string::npos) << s.message();

  InvFreq both;
  both.f32.assign(64, 0.5f);
  both.f64.assign(64, 0.5);
  s = text(both);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("both set"), std::string::npos) << s.message();

  InvFreq nan;
  nan.f64.assign(64, 0.5);
  nan.f64[7] = std::numeric_limits<double>::quiet_NaN();
  s = text(nan);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("inv_freq[7]"), std::string::npos) << s.message();

  InvFreq negative;
  negative.f32.assign(64, 0.5f);
  negative.f32[3] = -1.0f;
  EXPECT_EQ(text(negative).code(), StatusCode::kInvalidArgument);

  // A spec whose fp32 inv_freq is not the rounding of its float64 frequencies.
  RopeTableSpec spec;
  spec.inv_freq_f64 = float64_frequencies(kTheta, 128);
  spec.inv_freq.assign(64, 0.25f);
  spec.max_position = 16;
  RopeTable t;
  s = RopeTable::create(spec, &t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("fp32 rounding"), std::string::npos) << s.message();
  spec.inv_freq.clear();
  ASSERT_TRUE(RopeTable::create(spec, &t).ok());
  EXPECT_EQ(t.spec().inv_freq.size(), 64u);
  EXPECT_TRUE(RopeTable::create(t.spec(), &t).ok());  // a table's own spec round-trips

  RopeTable v;
  InvFreq vision;
  vision.f32.assign(17, 0.5f);
  s = make_vision_table(72, 1e4, 64, AngleRecipe::kExact, TableLayout::kFull, &v, vision);
  EXPECT_EQ(s.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(s.message().find("head_dim / 4 = 18"), std::string::npos) << s.message();
}

TEST(RopeInvFreq, VisionTableTakesTheCheckpointFrequencies) {
  RopeTable computed, given_f32, given_f64;
  ASSERT_TRUE(
      make_vision_table(72, 1e4, 64, AngleRecipe::kTransformersFp32, TableLayout::kFull, &computed)
          .ok());
  InvFreq f32, f64;
  f32.f32.assign(computed.spec().inv_freq.begin(), computed.spec().inv_freq.begin() + 18);
  ASSERT_TRUE(make_vision_table(72, 1e4, 64, AngleRecipe::kTransformersFp32, TableLayout::kFull,
                                &given_f32, f32)
                  .ok());
  EXPECT_EQ(computed.cos_table(), given_f32.cos_table());
  EXPECT_EQ(computed.spec().axis, given_f32.spec().axis);
  f64.f64 = float64_frequencies(1e4, 36);
  ASSERT_TRUE(
      make_vision_table(72, 1e4, 64, AngleRecipe::kExact, TableLayout::kFull, &given_f64, f64)
          .ok());
  ASSERT_EQ(given_f64.spec().inv_freq_f64.size(), 36u);
  EXPECT_EQ(given_f64.spec().inv_freq_f64[5], f64.f64[5]);
  EXPECT_EQ(given_f64.spec().inv_freq_f64[18 + 5], f64.f64[5]);
}

// The text layer: rope_inv_freq reaches its table. The computed frequencies passed in change
// nothing; one slot 1 ulp off changes the output at position 262143; a wrong size is a typed error.
TEST(RopeInvFreq, TextLayerUsesTheCheckpointFrequencies) {
  const int64_t hidden = 256, hq = 2, hkv = 1, d = 128, L = 3;
  const Weights w(hidden, hq, hkv, d);
  layers::TextAttentionConfig config;
  config.hidden_size = hidden;
  config.num_heads = hq;
  config.num_kv_heads = hkv;
  config.head_dim = d;
  config.options.cpu.num_threads = 1;
  Tensor x(DType::kF32, {1, L, hidden});
  fill_uniform(x, 5);
  Tensor pos(DType::kI32, {1, L});
  for (int64_t i = 0; i < L; ++i) pos.data<int32_t>()[i] = static_cast<int32_t>(262141 + i);
  const auto run = [&](const layers::TextAttentionConfig& c) {
    return (*layers::Qwen3VLTextAttention::create(c, w.views()))(x.view(), {}, pos.view()).output;
  };
  const Tensor base = run(config);

  RopeFrequencies computed;
  ASSERT_TRUE(compute_frequencies(text_config(), config.max_position, &computed).ok());
  layers::TextAttentionConfig same = config;
  same.rope_inv_freq.f32 = computed.inv_freq;
  const Tensor a = run(same);
  EXPECT_EQ(std::memcmp(a.data<char>(), base.data<char>(), static_cast<size_t>(a.bytes())), 0);

  layers::TextAttentionConfig off = same;
  off.rope_inv_freq.f32[19] = std::nextafter(off.rope_inv_freq.f32[19], 1.0f);
  const Tensor b = run(off);
  EXPECT_NE(std::memcmp(b.data<char>(), base.data<char>(), static_cast<size_t>(b.bytes())), 0);

  layers::TextAttentionConfig wrong = config;
  wrong.rope_inv_freq.f64.assign(63, 1e-3);
  std::unique_ptr<layers::Qwen3VLTextAttention> layer;
  const Status s = layers::Qwen3VLTextAttention::try_create(wrong, w.views(), 0, &layer);
  EXPECT_EQ(s.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(s.message().find("inv_freq"), std::string::npos) << s.message();
}

// The vision layer: rope_inv_freq reaches its table (theta's own frequencies change nothing, one
// slot changed changes the output), and a wrong size is a typed error.
TEST(RopeInvFreq, VisionLayerUsesTheCheckpointFrequencies) {
  const int64_t hidden = 144, n = 16;  // 2 heads of 72: 18 frequencies
  Tensor qkv_w(DType::kF32, {3 * hidden, hidden}), qkv_b(DType::kF32, {3 * hidden}),
      proj_w(DType::kF32, {hidden, hidden}), proj_b(DType::kF32, {hidden});
  fill_uniform(qkv_w, 1, -0.1f, 0.1f);
  fill_uniform(qkv_b, 2, -0.1f, 0.1f);
  fill_uniform(proj_w, 3, -0.1f, 0.1f);
  fill_uniform(proj_b, 4, -0.1f, 0.1f);
  const layers::VisionAttentionWeights w{qkv_w.view(), qkv_b.view(), proj_w.view(), proj_b.view()};
  layers::VisionAttentionConfig config;
  config.hidden_size = hidden;
  config.num_heads = 2;
  config.options.cpu.num_threads = 1;
  Tensor x(DType::kF32, {n, hidden}), cu(DType::kI32, {2}), pos(DType::kI32, {2, n});
  fill_uniform(x, 5);
  cu.data<int32_t>()[0] = 0;
  cu.data<int32_t>()[1] = static_cast<int32_t>(n);
  for (int64_t i = 0; i < n; ++i) {
    pos.data<int32_t>()[i] = static_cast<int32_t>(40 + i / 4);      // rows
    pos.data<int32_t>()[n + i] = static_cast<int32_t>(50 + i % 4);  // columns
  }
  const auto run = [&](const layers::VisionAttentionConfig& c) {
    return (*layers::Qwen3VLVisionAttention::create(c, w))(x.view(), pos.view(), cu.view());
  };
  const Tensor base = run(config);
  layers::VisionAttentionConfig same = config;
  same.rope_inv_freq.f32 = rope::detail::default_inv_freq(config.rope_theta, 36);
  const Tensor a = run(same);
  EXPECT_EQ(std::memcmp(a.data<char>(), base.data<char>(), static_cast<size_t>(a.bytes())), 0);
  layers::VisionAttentionConfig off = same;
  off.rope_inv_freq.f32[1] *= 1.5f;
  const Tensor b = run(off);
  EXPECT_NE(std::memcmp(b.data<char>(), base.data<char>(), static_cast<size_t>(b.bytes())), 0);

  layers::VisionAttentionConfig wrong = config;
  wrong.rope_inv_freq.f32.assign(36, 0.5f);
  std::unique_ptr<layers::Qwen3VLVisionAttention> layer;
  const Status s = layers::Qwen3VLVisionAttention::try_create(wrong, w, 0, &layer);
  EXPECT_EQ(s.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(s.message().find("head_dim / 4 = 18"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace qwen3vl
