// The eviction policy of the tiered KV store: one ranking function, two policies. The planner
// (ResidencyTable::plan, residency.hpp) owns the mechanism (which units may move, where to, how
// far to prefetch); a policy only orders the eviction candidates, so adding one is an enumerator
// and a case here, not a class.
#pragma once

#include <cstdint>
#include <limits>

namespace qwen3vl {
namespace lifecycle {

enum class EvictionPolicy : uint8_t {
  kLru,             // least recently used first: the baseline
  kScheduleDriven,  // farthest next use in the access plan first (never used again before all):
                    // Belady's rule over the engine's known schedule, as FlexGen does
};

inline const char* to_string(EvictionPolicy policy) {
  switch (policy) {
    case EvictionPolicy::kLru: return "lru";
    case EvictionPolicy::kScheduleDriven: return "schedule-driven";
  }
  return "unknown policy";
}

// A unit's next use: the index of the first access-plan entry that reads it, or kNeverUsed.
inline constexpr int64_t kNeverUsed = std::numeric_limits<int64_t>::max();

// Candidates are evicted in decreasing rank (ties: the lower unit index first, so plans are
// deterministic).
struct EvictionRank {
  int64_t primary = 0;
  int64_t secondary = 0;
  bool operator<(const EvictionRank& o) const {
    return primary != o.primary ? primary < o.primary : secondary < o.secondary;
  }
};

// `next_use`: as above; `last_use`: the tick of the unit's last pin or admission.
EvictionRank eviction_rank(EvictionPolicy policy, int64_t next_use, int64_t last_use);

}  // namespace lifecycle
}  // namespace qwen3vl
