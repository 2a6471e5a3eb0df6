// The linear variant's per-ISA kernel table (its own, like kernels.hpp's: each ISA compiled in its
// own translation units, reached only through the table for an ISA resolve_cpu_isa() allowed).
#pragma once

#include <cstdint>

#include "qwen3vl/cpu/isa.hpp"
#include "src/core/linear_common.hpp"
#include "src/cpu/isa_table.hpp"

namespace qwen3vl::detail {

// One (sequence, KV head): every query head of the group, all chunks.
struct LinearTask {
  const AttentionParams* params;
  const LinearCall* call;
  const LinearConfig* config;
  const float* omega;  // Performer projection [F, D], else null
  int64_t b;
  int64_t kv_head;
  SequenceSpan span;
  const LinearState* state;  // null: no state (forward)
  bool continue_state;       // step(): start from *state; prefill(): from zero
  void* scratch;             // linear_scratch_floats() floats, 64-byte aligned
};

// x [C, D], phi(K) [C, F], [V | 1] [C, D + 1], phi(Q) [C, F], A [C, C], O [C, D + 1], state [F, D +
// 1].
inline int64_t linear_scratch_floats(int64_t chunk, int64_t features, int64_t d) {
  return chunk * d + 2 * chunk * features + 2 * chunk * (d + 1) + chunk * chunk +
         features * (d + 1);
}

struct LinearKernels {
  void (*run)(const LinearTask& task);
};

QWEN3VL_DECLARE_ISA_TABLE(LinearKernels)

}  // namespace qwen3vl::detail
