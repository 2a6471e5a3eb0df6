// A cost simulation of the residency planner on a cyclic layer schedule: every decode step runs
// layers 0 .. L-1 and each layer reads all of its blocks, the access pattern under which LRU
// evicts exactly the layer needed next. Shared by the policy trace test and benchmarks.
//
// Cost model: a fetch (entry 0 needs the unit now) stalls the step for t_fetch per unit; a
// prefetch overlaps the layer's compute, so the mover can prefetch floor(t_compute / t_fetch)
// units per layer at no cost (the plan is capped at that); evictions use the other copy
// direction and cost nothing.
#pragma once

#include <cstdint>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/lifecycle/policy.hpp"

namespace qwen3vl {
namespace lifecycle {

struct CyclicTraceConfig {
  int32_t layers = 8;
  int32_t blocks = 16;           // every layer reads all of them each step
  int64_t device_capacity = 64;  // units
  int64_t host_capacity = 128;
  int32_t steps = 64;      // decode steps simulated
  int32_t lookahead = 8;   // entries in each access plan, the running layer included
  double t_fetch = 1.0;    // per unit
  double t_compute = 4.0;  // per layer
  EvictionPolicy policy = EvictionPolicy::kScheduleDriven;
};

struct TraceCost {
  double stall = 0;    // time layers waited for fetches
  double compute = 0;  // layers * steps * t_compute
  int64_t fetches = 0, prefetches = 0, evictions = 0;
  double total() const { return stall + compute; }
};

// Runs the trace through a ResidencyTable, carrying out every planned move (begin, finish) and
// pinning each layer's units while it computes. Errors: the table's, for a bad config.
[[nodiscard]] Status simulate_cyclic_trace(const CyclicTraceConfig& config, TraceCost* out);

}  // namespace lifecycle
}  // namespace qwen3vl
