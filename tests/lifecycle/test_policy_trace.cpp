// The policy trace: a cyclic layer schedule (8 layers x 16 blocks, the device holding half of the
// working set, the host the rest) simulated over many decode steps with the cost model of
// src/lifecycle/policy_sim.hpp. LRU evicts on a cyclic scan exactly the layer needed next; the
// schedule-driven policy keeps what is needed soonest and must stall less.
#include <gtest/gtest.h>

#include <cstdio>

#include "src/lifecycle/policy_sim.hpp"

namespace qwen3vl {
namespace lifecycle {
namespace {

TraceCost run(EvictionPolicy policy, CyclicTraceConfig c = CyclicTraceConfig{}) {
  c.policy = policy;
  TraceCost cost;
  Status st = simulate_cyclic_trace(c, &cost);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return cost;
}

void print(const char* name, const TraceCost& c) {
  std::printf("  %-16s stall %8.1f  total %8.1f  (fetches %lld, prefetches %lld, evictions %lld)\n",
              name, c.stall, c.total(), static_cast<long long>(c.fetches),
              static_cast<long long>(c.prefetches), static_cast<long long>(c.evictions));
}

TEST(PolicyTrace, ScheduleDrivenStallsLessThanLruOnACyclicSchedule) {
  CyclicTraceConfig c;  // 8 layers x 16 blocks, device 64 units, host 128, 64 steps
  std::printf(
      "cyclic trace: %d layers x %d blocks, device %lld units, %d steps, t_fetch %.1f, "
      "t_compute %.1f\n",
      c.layers, c.blocks, static_cast<long long>(c.device_capacity), c.steps, c.t_fetch,
      c.t_compute);
  TraceCost lru = run(EvictionPolicy::kLru, c);
  TraceCost sched = run(EvictionPolicy::kScheduleDriven, c);
  print("lru", lru);
  print("schedule-driven", sched);
  EXPECT_LT(sched.stall, lru.stall);
  EXPECT_EQ(sched.compute, lru.compute);
}

// Other device sizes and compute times: schedule-driven never stalls more, and strictly less
// whenever the device holds more than one layer (with exactly one, every unit is fetched anew
// under either policy) and less than all of them.
TEST(PolicyTrace, ScheduleDrivenNeverStallsMoreAcrossSizes) {
  for (int64_t device : {16, 32, 64, 96, 112, 128}) {
    for (double t_compute : {0.0, 2.0, 8.0}) {
      CyclicTraceConfig c;
      c.device_capacity = device;
      c.t_compute = t_compute;
      c.steps = 16;
      TraceCost lru = run(EvictionPolicy::kLru, c);
      TraceCost sched = run(EvictionPolicy::kScheduleDriven, c);
      std::printf("  device %3lld, t_compute %.0f: stall lru %7.1f, schedule-driven %7.1f\n",
                  static_cast<long long>(device), t_compute, lru.stall, sched.stall);
      EXPECT_LE(sched.stall, lru.stall) << "device " << device << ", t_compute " << t_compute;
      if (device > c.blocks && device < c.layers * c.blocks) {
        EXPECT_LT(sched.stall, lru.stall) << "device " << device;
      }
    }
  }
}

}  // namespace
}  // namespace lifecycle
}  // namespace qwen3vl
