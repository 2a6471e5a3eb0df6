// Debug counters of the call contract's expensive steps: validate() and the variants' planning.
// Relaxed atomics, cheap enough for every build; tests read them to check that forward() checks and
// plans a problem once, and that run() with a reused plan does neither.
#pragma once

#include <atomic>
#include <cstdint>

namespace qwen3vl::detail {

inline std::atomic<uint64_t>& validation_counter() {
  static std::atomic<uint64_t> count{0};
  return count;
}
inline std::atomic<uint64_t>& plan_counter() {
  static std::atomic<uint64_t> count{0};
  return count;
}

// validate(AttentionParams) calls since the program started.
inline uint64_t validation_count() { return validation_counter().load(std::memory_order_relaxed); }
// Attention::plan() calls that made a plan (plan(), forward(), supports(), workspace_size(),
// run()).
inline uint64_t plan_count() { return plan_counter().load(std::memory_order_relaxed); }

}  // namespace qwen3vl::detail
