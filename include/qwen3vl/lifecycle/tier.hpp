// Tier: where one unit of the tiered KV store lives. A header of its own because the residency
// table, the placement policy and the stores that move bytes all name tiers, and none of them
// should have to include the others for it.
#pragma once

#include <cstdint>

namespace qwen3vl {
namespace lifecycle {

// Ordered fastest first: a lower tier is closer to the kernels.
enum class Tier : uint8_t { kDevice, kHost, kDisk };

inline constexpr int kTierCount = 3;

inline const char* to_string(Tier tier) {
  constexpr const char* kNames[kTierCount] = {"device", "host", "disk"};
  const auto i = static_cast<unsigned>(tier);
  return i < kTierCount ? kNames[i] : "unknown tier";
}

}  // namespace lifecycle
}  // namespace qwen3vl
