// Exact per-query top-k attention on the CPU (token granular, no block layout).
#pragma once

#include <cstddef>

#include "routing_common.hpp"

namespace qwen3vl::detail {

// Workspace bytes: one score tile per thread (rows x max_k floats).
size_t exact_topk_bytes(const RoutingCall& call);
// Computes out (and lse); *density = kept / visible (query, key) pairs.
void run_exact_topk(const RoutingCall& call, void* workspace, double* density);

}  // namespace qwen3vl::detail
