// The transformers-compatible text table against transformers at large positions (the committed
// fixture tests/fixtures/rope/rope_far_fixtures.*: Qwen3-VL's text rotary module, theta 5e6,
// sections [24, 20, 20], D 128, 256 positions up to 262143, and the inv_freq it used). A fp32 angle
// p * inv_i amplifies a 1-ulp difference in inv_i by p, so only transformers' own inv_freq, passed
// in, keeps the table within torch's cosf/sinf rounding of transformers' cos/sin at every position.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include "qwen3vl/rope/rope.hpp"
#include "support/fixtures.hpp"
#include "support/table_checks.hpp"

namespace qwen3vl {
namespace {

using namespace rope;
using testing::FixtureArray;
using testing::RopeFixtures;

const RopeFixtures& far() { return RopeFixtures::far(); }

RopeConfig qwen3_text() {
  RopeConfig c;
  c.head_dim = 128;
  c.theta = far().meta("far_qwen3")["rope"]["rope_theta"].number;
  return c;
}

// The largest |cos - transformers' cos| and |sin - ...| over the fixture's tokens and slots.
testing::FixtureDiff drift(const RopeTable& table) {
  return testing::cos_sin_vs_fixture(table, far().array("far_qwen3/positions"),
                                     far().array("far_qwen3/cos"), far().array("far_qwen3/sin"));
}

TEST(RopeFarFixtures, CoversPositionsUpTo262143) {
  const FixtureArray pos = far().array("far_qwen3/positions");
  int32_t top = 0;
  for (int32_t v : pos.i) top = std::max(top, v);
  EXPECT_EQ(top, 262143);
  EXPECT_EQ(far().array("far_qwen3/inv_freq").numel(), 64);
  EXPECT_EQ(far().manifest()["generator"]["script"].text, "scripts/fixtures/gen_rope_fixtures.py");
}

// The compatible mode, given transformers' inv_freq: within torch's cosf/sinf rounding (2 ulp) of
// transformers' cos/sin at every fixture position, 262143 included.
TEST(RopeFarFixtures, TransformersRecipeWithCheckpointInvFreqMatchesTransformers) {
  InvFreq given;
  given.f32 = far().array("far_qwen3/inv_freq").f;
  RopeTable t;
  ASSERT_TRUE(make_text_table(qwen3_text(), MRopeLayout::kInterleaved, {24, 20, 20}, 262144,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &t, given)
                  .ok());
  EXPECT_EQ(t.spec().inv_freq, given.f32);
  const testing::FixtureDiff d = drift(t);
  std::printf("[ far ] transformers-fp32 table, transformers' inv_freq: max |diff| %.3g (p %d)\n",
              d.max_abs, d.at_position);
  EXPECT_LE(d.max_abs, 6e-8);  // docs/api.md: within 6e-8 of transformers' cos/sin up to 262143

  // The same recipe over our computed inv_freq: torch's powf differs by 1 ulp in some slot, which
  // the angle multiplies by p (reported: the reason to pass the checkpoint's buffer).
  RopeTable own;
  ASSERT_TRUE(make_text_table(qwen3_text(), MRopeLayout::kInterleaved, {24, 20, 20}, 262144,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &own)
                  .ok());
  int differing = 0;
  for (size_t i = 0; i < given.f32.size(); ++i) differing += own.spec().inv_freq[i] != given.f32[i];
  const testing::FixtureDiff o = drift(own);
  std::printf(
      "[ far ] transformers-fp32 table, computed inv_freq (%d slots differ): max |diff| "
      "%.3g (p %d)\n",
      differing, o.max_abs, o.at_position);
}

// float64 frequencies rounded to fp32 give the same transformers-recipe table as their fp32 form.
TEST(RopeFarFixtures, TransformersRecipeRoundsFloat64FrequenciesLikeTorch) {
  InvFreq f32, f64;
  f32.f32 = far().array("far_qwen3/inv_freq").f;
  for (float f : f32.f32) f64.f64.push_back(static_cast<double>(f));
  RopeTable a, b;
  ASSERT_TRUE(make_text_table(qwen3_text(), MRopeLayout::kInterleaved, {24, 20, 20}, 4096,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &a, f32)
                  .ok());
  ASSERT_TRUE(make_text_table(qwen3_text(), MRopeLayout::kInterleaved, {24, 20, 20}, 4096,
                              AngleRecipe::kTransformersFp32, TableLayout::kFull, &b, f64)
                  .ok());
  EXPECT_EQ(a.cos_table(), b.cos_table());
  EXPECT_EQ(a.sin_table(), b.sin_table());
}

}  // namespace
}  // namespace qwen3vl
