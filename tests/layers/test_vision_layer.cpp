// Qwen3VLVisionAttention against transformers' Qwen3VLVisionAttention (eager, float64 on the CPU),
// for f32 / f16 / bf16 storage and both CPU variants; the 2-D positions the library builds equal
// transformers'; frames are independent (packed run equals each frame alone).
#include <gtest/gtest.h>

#include <string>

#include "layer_support.hpp"
#include "qwen3vl/rope/vision.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;
using testing::LayerFixtures;

struct VisionCase {
  layers::VisionAttentionConfig config;
  std::vector<rope::GridThw> grids;
  Tensor hidden, positions, cu, qkv_w, qkv_b, proj_w, proj_b, ref;

  explicit VisionCase(const std::string& n) {
    const LayerFixtures& f = LayerFixtures::get();
    const testing::Json& m = f.meta(n);
    config.hidden_size = static_cast<int64_t>(m["hidden_size"].number);
    config.num_heads = static_cast<int64_t>(m["num_heads"].number);
    config.rope_theta = m["rope_theta"].number;
    for (const testing::Json& g : m["grid_thw"].items)
      grids.push_back({static_cast<int64_t>(g[0].number), static_cast<int64_t>(g[1].number),
                       static_cast<int64_t>(g[2].number)});
    hidden = f.tensor(n + "/hidden_states");
    positions = f.tensor(n + "/positions");
    cu = f.tensor(n + "/cu_seqlens");
    qkv_w = f.tensor(n + "/qkv_weight");
    qkv_b = f.tensor(n + "/qkv_bias");
    proj_w = f.tensor(n + "/proj_weight");
    proj_b = f.tensor(n + "/proj_bias");
    ref = f.tensor(n + "/f64/output");
  }
  layers::VisionAttentionWeights weights() const {
    return {qkv_w.view(), qkv_b.view(), proj_w.view(), proj_b.view()};
  }
};

class VisionFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(VisionFixture, MatchesTransformers) {
  const VisionCase c(GetParam());
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16})
    for (Variant variant : {Variant::kStandard, Variant::kFlash2}) {
      SCOPED_TRACE(std::string(to_string(dtype)) + " " + to_string(variant));
      layers::VisionAttentionConfig config = c.config;
      config.options.dtype = dtype;
      config.options.variant = variant;
      const auto layer = layers::Qwen3VLVisionAttention::create(config, c.weights());
      const Tensor out = (*layer)(testing::converted(c.hidden, dtype), c.positions, c.cu);
      EXPECT_LT(testing::rel_error(out, c.ref), testing::tolerance(dtype));
    }
  const Tensor f32 = LayerFixtures::get().tensor(GetParam() + "/f32/output");
  EXPECT_LT(testing::rel_error(f32, c.ref), 1e-5);  // transformers' own fp32 run, for scale
}

TEST_P(VisionFixture, LibraryPositionsEqualTransformers) {
  const VisionCase c(GetParam());
  std::vector<int32_t> pos;
  ASSERT_TRUE(rope::vision_positions(c.grids, 2, &pos).ok());
  ASSERT_EQ(static_cast<int64_t>(pos.size()), c.positions.numel());
  for (size_t i = 0; i < pos.size(); ++i) ASSERT_EQ(pos[i], c.positions.data<int32_t>()[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Layers, VisionFixture, ::testing::Values("vision_d8", "vision_d16"));

// Frames never see each other: the packed call equals each frame run alone, with an empty
// segment and odd frame sizes among them.
TEST(VisionLayer, FramesAreIndependent) {
  const int64_t hidden = 80, heads = 4;
  Tensor qkv_w(DType::kF32, {3 * hidden, hidden}), qkv_b(DType::kF32, {3 * hidden});
  Tensor proj_w(DType::kF32, {hidden, hidden}), proj_b(DType::kF32, {hidden});
  fill_uniform(qkv_w, 1, -0.2f, 0.2f);
  fill_uniform(qkv_b, 2, -0.1f, 0.1f);
  fill_uniform(proj_w, 3, -0.2f, 0.2f);
  fill_uniform(proj_b, 4, -0.1f, 0.1f);
  layers::VisionAttentionConfig config;
  config.hidden_size = hidden;
  config.num_heads = heads;
  config.options.cpu.num_threads = 2;
  const auto layer = layers::Qwen3VLVisionAttention::create(
      config, {qkv_w.view(), qkv_b.view(), proj_w.view(), proj_b.view()});
  const std::vector<int32_t> frames = {17, 0, 1, 63, 3};
  int64_t n = 0;
  for (int32_t f : frames) n += f;
  Tensor x(DType::kF32, {n, hidden}), pos(DType::kI32, {2, n}), cu(DType::kI32, {6});
  fill_uniform(x, 5);
  for (int64_t i = 0; i < n; ++i) {
    pos.data<int32_t>()[i] = static_cast<int32_t>(i % 7);
    pos.data<int32_t>()[n + i] = static_cast<int32_t>(i % 11);
  }
  for (size_t f = 0; f < frames.size(); ++f)
    cu.data<int32_t>()[f + 1] = cu.data<int32_t>()[f] + frames[f];
  const Tensor packed = (*layer)(x, pos, cu);
  for (size_t f = 0; f < frames.size(); ++f) {
    const int64_t at = cu.data<int32_t>()[f], len = frames[f];
    if (len == 0) continue;
    Tensor xf(DType::kF32, {len, hidden}), pf(DType::kI32, {2, len}), cf(DType::kI32, {2});
    for (int64_t i = 0; i < len * hidden; ++i) xf.set(i, x.get(at * hidden + i));
    for (int64_t i = 0; i < len; ++i) {
      pf.data<int32_t>()[i] = pos.data<int32_t>()[at + i];
      pf.data<int32_t>()[len + i] = pos.data<int32_t>()[n + at + i];
    }
    cf.data<int32_t>()[1] = static_cast<int32_t>(len);
    const Tensor alone = (*layer)(xf, pf, cf);
    Tensor part(DType::kF32, {len, hidden});
    for (int64_t i = 0; i < len * hidden; ++i) part.set(i, packed.get(at * hidden + i));
    EXPECT_LT(testing::rel_error(part, alone), 1e-6) << "frame " << f;
  }
}

// The convenience call takes its inputs in VisionAttentionInputs' order (hidden_states, positions,
// cu_seqlens) and equals forward() with that struct.
TEST(VisionLayer, CallOrderIsTheInputsOrder) {
  const int64_t hidden = 32, heads = 2, n = 12;
  Tensor qkv_w(DType::kF32, {3 * hidden, hidden}), qkv_b(DType::kF32, {3 * hidden});
  Tensor proj_w(DType::kF32, {hidden, hidden}), proj_b(DType::kF32, {hidden});
  fill_uniform(qkv_w, 6, -0.2f, 0.2f);
  fill_uniform(qkv_b, 7, -0.1f, 0.1f);
  fill_uniform(proj_w, 8, -0.2f, 0.2f);
  fill_uniform(proj_b, 9, -0.1f, 0.1f);
  layers::VisionAttentionConfig config;
  config.hidden_size = hidden;
  config.num_heads = heads;
  const auto layer = layers::Qwen3VLVisionAttention::create(
      config, {qkv_w.view(), qkv_b.view(), proj_w.view(), proj_b.view()});
  Tensor x(DType::kF32, {n, hidden}), pos(DType::kI32, {2, n}), cu(DType::kI32, {3});
  fill_uniform(x, 10);
  for (int64_t i = 0; i < n; ++i) {
    pos.data<int32_t>()[i] = static_cast<int32_t>(i / 4);
    pos.data<int32_t>()[n + i] = static_cast<int32_t>(i % 4);
  }
  cu.data<int32_t>()[1] = 4;
  cu.data<int32_t>()[2] = static_cast<int32_t>(n);
  const layers::VisionAttentionInputs in{x.view(), pos.view(), cu.view()};
  Tensor expected(DType::kF32, {n, hidden});
  std::vector<char> ws(layer->workspace_size(in, expected.view()));
  ASSERT_TRUE(layer->forward(in, expected.view(), Workspace{ws.data(), ws.size()}).ok());
  const Tensor out = (*layer)(in.hidden_states, in.positions, in.cu_seqlens);
  EXPECT_EQ(testing::rel_error(out, expected), 0.0);
}

}  // namespace
}  // namespace qwen3vl
