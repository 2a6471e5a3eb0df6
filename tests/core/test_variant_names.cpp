// Variant names: each prints what it is, and parse_variant() reads back every printed name (every
// variant, built or not: the selector's tests rely on this for the built ones).
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <set>
#include <string>

#include "qwen3vl/selector/selector.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {
namespace {

constexpr Variant kVariants[] = {
    Variant::kAuto,        Variant::kStandard,     Variant::kFlash2,
    Variant::kSm61Tiled,   Variant::kStaticSparse, Variant::kDynamicSparse,
    Variant::kBlockSparse, Variant::kLinear,       Variant::kMixtureOfHeads};

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
  for (const auto& [variant, device] :
       Selector::built())  // the list covers what the selector builds
    EXPECT_NE(std::find(std::begin(kVariants), std::end(kVariants), variant), std::end(kVariants))
        << to_string(variant);
  for (const char* unknown : {"sparse", "flashy"}) {
    Variant parsed = Variant::kAuto;
    const Status s = parse_variant(unknown, &parsed);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << unknown;
    EXPECT_NE(s.message().find("static_sparse"), std::string::npos)
        << s.message();  // lists the names
    EXPECT_EQ(parsed, Variant::kAuto) << unknown;
  }
}

}  // namespace
}  // namespace qwen3vl
