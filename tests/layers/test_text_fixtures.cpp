// Qwen3VLTextAttention against transformers' Qwen3VLTextAttention (eager, float64 on the CPU) with
// tiny random weights: output and attention weights, for f32 / f16 / bf16 storage, every CPU ISA
// this machine runs and both CPU attention variants.
#include <gtest/gtest.h>

#include <string>

#include "layer_support.hpp"

namespace qwen3vl {
namespace {

using TextCase = testing::TextFixtureCase;

struct Run {
  DType dtype;
  Variant variant;
  CpuIsa isa;
};

class TextFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(TextFixture, MatchesTransformers) {
  const TextCase c(GetParam());
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (!cpu_isa_compiled(isa) || !cpu_supports(CpuInfo::current(), isa)) continue;
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16})
      for (Variant variant : {Variant::kStandard, Variant::kFlash2}) {
        SCOPED_TRACE(std::string(to_string(isa)) + " " + to_string(dtype) + " " +
                     to_string(variant));
        layers::TextAttentionConfig config = c.config;
        config.options.dtype = dtype;
        config.options.variant = variant;
        config.options.need_weights = variant == Variant::kStandard;
        config.options.cpu.isa = isa;
        config.options.cpu.num_threads = 2;
        const auto layer = layers::Qwen3VLTextAttention::create(config, c.weights(), 3);
        const Tensor x = testing::converted(c.hidden, dtype);
        auto [output, attn_weights, cache] = (*layer)(x, {}, c.positions);
        EXPECT_EQ(cache, nullptr);
        const double tol = testing::tolerance(dtype);
        EXPECT_LT(testing::rel_error(output, c.ref_out), tol);
        if (config.options.need_weights) {
          ASSERT_EQ(attn_weights.numel(), c.ref_weights.numel());
          EXPECT_LT(testing::max_abs_error(attn_weights, c.ref_weights),
                    dtype == DType::kF32 ? 1e-5 : 1e-2);
        } else {
          EXPECT_EQ(attn_weights.numel(), 0);
        }
      }
  }
}

// Transformers' own float32 run stays as close to float64 as ours must (the fixture is sound).
TEST_P(TextFixture, TransformersFp32Baseline) {
  const TextCase c(GetParam());
  const Tensor f32 = testing::LayerFixtures::get().tensor(c.name + "/f32/output");
  EXPECT_LT(testing::rel_error(f32, c.ref_out), 1e-5);
  EXPECT_GT(testing::rel_error(f32, c.ref_out), 0.0);  // a real second run, not a copy
}

// The exact-angle split table (the default) and transformers' fp32 full table agree at these
// positions, and both match transformers.
TEST_P(TextFixture, TableRecipes) {
  const TextCase c(GetParam());
  layers::TextAttentionConfig config = c.config;
  config.rope_recipe = rope::AngleRecipe::kTransformersFp32;
  config.rope_table = rope::TableLayout::kFull;
  const auto layer = layers::Qwen3VLTextAttention::create(config, c.weights());
  EXPECT_LT(testing::rel_error((*layer)(c.hidden, {}, c.positions).output, c.ref_out), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Layers, TextFixture, ::testing::Values("text_d32", "text_d128"));

// Text-only tokens (t = h = w): [B, L] positions equal [3, B, L] positions with equal rows, and
// absent positions equal 0..L-1: M-RoPE reduces to 1-D RoPE.
TEST(TextLayer, TextPositionsReduceToOneAxis) {
  const TextCase c("text_d32");
  const auto layer = layers::Qwen3VLTextAttention::create(c.config, c.weights());
  const int64_t B = c.hidden.size(0), L = c.hidden.size(1);
  Tensor pos2(DType::kI32, {B, L}), pos3(DType::kI32, {3, B, L});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i) {
      pos2.data<int32_t>()[b * L + i] = static_cast<int32_t>(i);
      for (int a = 0; a < 3; ++a)
        pos3.data<int32_t>()[(a * B + b) * L + i] = static_cast<int32_t>(i);
    }
  const Tensor a = (*layer)(c.hidden, {}, pos2).output;
  const Tensor b = (*layer)(c.hidden, {}, pos3).output;
  const Tensor d = (*layer)(c.hidden).output;
  EXPECT_EQ(std::memcmp(a.data<char>(), b.data<char>(), static_cast<size_t>(a.bytes())), 0);
  EXPECT_EQ(std::memcmp(a.data<char>(), d.data<char>(), static_cast<size_t>(a.bytes())), 0);
  // ... and differs from the fixture's vision positions (row 0 holds an image grid).
  EXPECT_GT(testing::rel_error(a, c.ref_out), 1e-3);
}

}  // namespace
}  // namespace qwen3vl
