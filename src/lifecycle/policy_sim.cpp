#include "src/lifecycle/policy_sim.hpp"

#include <cmath>

#include "qwen3vl/lifecycle/residency.hpp"

namespace qwen3vl {
namespace lifecycle {

Status simulate_cyclic_trace(const CyclicTraceConfig& c, TraceCost* out) {
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer, "simulate_cyclic_trace: out = null");
  if (c.steps < 0 || c.lookahead < 1)
    return make_error(StatusCode::kInvalidArgument, "simulate_cyclic_trace: steps = ", c.steps,
                      ", lookahead = ", c.lookahead, ": allowed steps >= 0, lookahead >= 1");
  if (!(c.t_fetch > 0.0) || !(c.t_compute >= 0.0))
    return make_error(StatusCode::kInvalidArgument, "simulate_cyclic_trace: t_fetch = ", c.t_fetch,
                      ", t_compute = ", c.t_compute, ": allowed t_fetch > 0, t_compute >= 0");
  ResidencyConfig rc;
  rc.layers = c.layers;
  rc.blocks = c.blocks;
  rc.capacity = {c.device_capacity, c.host_capacity, 0};
  // Watermarks off: the comparison is between the policies' choices alone.
  rc.device_high = rc.device_low = rc.host_high = rc.host_low = 1.0;
  rc.policy = c.policy;
  ResidencyTable table;
  QWEN3VL_RETURN_IF_ERROR(ResidencyTable::create(rc, &table));
  for (int32_t l = 0; l < c.layers; ++l)
    for (int32_t b = 0; b < c.blocks; ++b) QWEN3VL_RETURN_IF_ERROR(table.admit({l, b}));

  AccessPlan access;
  access.max_prefetch_units = static_cast<int64_t>(std::floor(c.t_compute / c.t_fetch));
  access.entries.resize(static_cast<size_t>(c.lookahead));
  for (AccessEntry& e : access.entries)
    for (int32_t b = 0; b < c.blocks; ++b) e.blocks.push_back(b);

  TraceCost cost;
  const int64_t layer_runs = static_cast<int64_t>(c.steps) * c.layers;
  for (int64_t t = 0; t < layer_runs; ++t) {
    for (int32_t k = 0; k < c.lookahead; ++k)
      access.entries[static_cast<size_t>(k)].layer = static_cast<int32_t>((t + k) % c.layers);
    MovePlan plan;
    QWEN3VL_RETURN_IF_ERROR(table.plan(access, &plan));
    // Every move completes within the layer: fetches before it runs, prefetches during it.
    for (const Move& m : plan.moves) {
      QWEN3VL_RETURN_IF_ERROR(table.begin_move(m));
      QWEN3VL_RETURN_IF_ERROR(table.finish_move(m.unit));
    }
    cost.fetches += plan.fetches;
    cost.prefetches += plan.prefetches;
    cost.evictions += plan.evictions;
    cost.stall += static_cast<double>(plan.fetches) * c.t_fetch;
    cost.compute += c.t_compute;
    const AccessEntry& now = access.entries[0];
    for (int32_t b : now.blocks) QWEN3VL_RETURN_IF_ERROR(table.pin({now.layer, b}));
    for (int32_t b : now.blocks) QWEN3VL_RETURN_IF_ERROR(table.unpin({now.layer, b}));
  }
  *out = cost;
  return Status();
}

}  // namespace lifecycle
}  // namespace qwen3vl
