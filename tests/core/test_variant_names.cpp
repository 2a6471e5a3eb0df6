// Variant names: each prints what it is, and parse_variant() reads back every printed name.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {
namespace {

constexpr Variant kVariants[] = {Variant::kAuto,          Variant::kStandard,
                                 Variant::kFlash2,        Variant::kSm61Tiled,
                                 Variant::kStaticSparse,  Variant::kDynamicSparse,
                                 Variant::kBlockSparse,   Variant::kLinear,
                                 Variant::kMixtureOfHeads};

TEST(VariantNames, SayWhatTheyAre) {
  EXPECT_EQ(std::string(to_string(Variant::kStaticSparse)), "static_sparse");
  EXPECT_EQ(std::string(to_string(Variant::kDynamicSparse)), "dynamic_sparse");
  EXPECT_EQ(std::string(to_string(Variant::kBlockSparse)), "block_sparse");
}

TEST(VariantNames, RoundTripAndUnique) {
  std::set<std::string> seen;
  for (Variant v : kVariants) {
    const std::string name = to_string(v);
    EXPECT_TRUE(seen.insert(name).second) << name;
    Variant parsed = Variant::kAuto;
    ASSERT_TRUE(parse_variant(name, &parsed).ok()) << name;
    EXPECT_EQ(parsed, v) << name;
  }
  Variant parsed = Variant::kAuto;
  const Status s = parse_variant("sparse", &parsed);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("static_sparse"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace qwen3vl
