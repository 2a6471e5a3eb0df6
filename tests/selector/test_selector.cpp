// The selector builds what exists, says why, and names what is not built.
#include <gtest/gtest.h>

#include "qwen3vl/selector/selector.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

bool is_built(Variant v, Device d) {
  for (const auto& [variant, device] : Selector::built())
    if (variant == v && device == d) return true;
  return false;
}

TEST(Selector, AutoPicksABuiltCpuVariantAndExplainsIt) {
  AttentionConfig c;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  const auto attn = Selector::create(c, 3);
  EXPECT_EQ(attn->device(), Device::kCPU);
  EXPECT_TRUE(is_built(attn->variant(), Device::kCPU));
  const std::string why = attn->describe();
  EXPECT_NE(why.find("layer 3"), std::string::npos) << why;
  EXPECT_NE(why.find("auto"), std::string::npos) << why;
}

TEST(Selector, WeightsRequireTheStandardVariant) {
  AttentionConfig c;
  c.need_weights = true;
  EXPECT_EQ(Selector::create(c)->variant(), Variant::kStandard);
  c.variant = Variant::kFlash2;
  std::unique_ptr<Attention> out;
  EXPECT_EQ(Selector::try_create(c, 0, &out).code(), StatusCode::kUnsupported);
}

TEST(Selector, AVariantNotBuiltIsAnErrorNamingIt) {
  AttentionConfig c;
  c.variant = Variant::kSm61Tiled;  // Pascal tiles exist only on CUDA
  ASSERT_FALSE(is_built(c.variant, c.device));
  try {
    Selector::create(c);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kNotImplemented);
    EXPECT_NE(std::string(e.what()).find("sm61_tiled"), std::string::npos) << e.what();
  }
}

TEST(Selector, BuildsEveryCpuVariantOfTheFamily) {
  for (Variant v :
       {Variant::kStandard, Variant::kFlash2, Variant::kBlockSparse, Variant::kStaticSparse,
        Variant::kDynamicSparse, Variant::kLinear, Variant::kMixtureOfHeads}) {
    ASSERT_TRUE(is_built(v, Device::kCPU)) << to_string(v);
    AttentionConfig c;
    c.variant = v;
    c.num_heads = 8;
    c.num_kv_heads = 2;
    c.head_dim = 64;
    c.mixture_of_heads.num_shared_heads = 2;
    c.mixture_of_heads.top_k = 3;
    std::unique_ptr<Attention> out;
    ASSERT_TRUE(Selector::try_create(c, 1, &out).ok()) << to_string(v);
    EXPECT_EQ(out->variant(), v);
    EXPECT_EQ(out->device(), Device::kCPU);
    EXPECT_NE(out->describe().find("requested"), std::string::npos) << out->describe();
  }
}

TEST(Selector, PassesEachVariantItsKnobs) {
  AttentionConfig c;
  c.variant = Variant::kStaticSparse;
  c.static_sparse.pattern = SparsePattern::kBigBird;
  c.static_sparse.bigbird.num_random_blocks = 2;
  std::string why = Selector::create(c)->describe();
  EXPECT_NE(why.find("bigbird"), std::string::npos) << why;

  c = AttentionConfig();
  c.variant = Variant::kDynamicSparse;
  c.dynamic_sparse.method = DynamicSparseMethod::kExactTopK;
  why = Selector::create(c)->describe();
  EXPECT_NE(why.find(to_string(DynamicSparseMethod::kExactTopK)), std::string::npos) << why;

  // Bad knobs are the variant's typed errors, passed through.
  c.dynamic_sparse.top_k = -1;
  std::unique_ptr<Attention> out;
  EXPECT_EQ(Selector::try_create(c, 0, &out).code(), StatusCode::kInvalidArgument);
  c = AttentionConfig();
  c.variant = Variant::kMixtureOfHeads;
  c.num_heads = 4;
  c.mixture_of_heads.top_k = 5;  // more routed heads than exist
  EXPECT_EQ(Selector::try_create(c, 0, &out).code(), StatusCode::kInvalidArgument);
}

TEST(Selector, RejectsBadConfigs) {
  std::unique_ptr<Attention> out;
  AttentionConfig c;
  c.head_dim = 300;
  EXPECT_EQ(Selector::try_create(c, 0, &out).code(), StatusCode::kInvalidArgument);
  c = AttentionConfig();
  c.num_heads = 6;
  c.num_kv_heads = 4;
  EXPECT_EQ(Selector::try_create(c, 0, &out).code(), StatusCode::kInvalidArgument);
  c = AttentionConfig();
  c.cpu.num_threads = -2;
  EXPECT_EQ(Selector::try_create(c, 0, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Selector::try_create(AttentionConfig(), -1, &out).code(), StatusCode::kInvalidArgument);
}

// The config's mask, when set, is the object's: a call whose params.mask differs is a typed error
// naming both (before, the config's mask was ignored and such a call ran without it).
TEST(Selector, ConfigMaskIsTheObjectsMask) {
  testing::Problem none(testing::problem_spec(9, 9, 4, 2, 32, MaskKind::kNone, 3));
  testing::Problem causal(testing::problem_spec(9, 9, 4, 2, 32, MaskKind::kCausal, 3));
  for (Variant v : {Variant::kAuto, Variant::kStandard, Variant::kFlash2}) {
    SCOPED_TRACE(to_string(v));
    AttentionConfig c;
    c.variant = v;
    c.mask = MaskKind::kCausal;
    const auto attention = Selector::create(c);
    for (const Status& s : {attention->supports(none.params),
                            attention->forward(none.params, Workspace{nullptr, 0})}) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
      EXPECT_NE(s.message().find("params.mask = none"), std::string::npos) << s.to_string();
      EXPECT_NE(s.message().find("config.mask = causal"), std::string::npos) << s.to_string();
    }
    EXPECT_NE(attention->describe().find("mask causal"), std::string::npos)
        << attention->describe();
    // The agreeing call runs and is causal.
    attention->run(causal.params);
    EXPECT_LT(testing::relative_error(causal.params, reference::attention(causal.params)), 1e-5);
  }
  // Unset (the default): each call's params.mask decides.
  AttentionConfig unset;
  ASSERT_FALSE(unset.mask.has_value());
  const auto free_mask = Selector::create(unset);
  EXPECT_TRUE(free_mask->supports(none.params).ok());
  EXPECT_TRUE(free_mask->supports(causal.params).ok());
}

}  // namespace
}  // namespace qwen3vl
