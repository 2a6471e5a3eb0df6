// The per-ISA RoPE kernels (each compiled with its own flags and namespace in a generated
// translation unit), reached through isa_table<RopeCpuKernels>(isa).
#pragma once

#include <cstdint>

#include "qwen3vl/cpu/isa.hpp"
#include "qwen3vl/rope/apply.hpp"
#include "src/cpu/isa_table.hpp"

namespace qwen3vl::rope::detail {

struct RopeTask {
  const RopeApplyParams* params;
  RopeApplyShape shape;
};

struct RopeCpuKernels {
  // Rotates tokens [begin, end) (token = b * seq + i) of q and k in place.
  void (*apply_tokens)(const RopeTask& task, int64_t begin, int64_t end);
};

QWEN3VL_DECLARE_ISA_TABLE(RopeCpuKernels)

}  // namespace qwen3vl::rope::detail
