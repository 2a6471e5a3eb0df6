// The per-ISA RoPE kernels (rope_<isa>.cpp, each compiled with its own flags and namespace) and the
// table that reaches them, next to src/cpu/kernels.hpp's table for the attention kernels.
#pragma once

#include <cstdint>

#include "qwen3vl/cpu/isa.hpp"
#include "qwen3vl/rope/apply.hpp"

namespace qwen3vl::rope::detail {

struct RopeTask {
  const RopeApplyParams* params;
  RopeApplyShape shape;
};

struct RopeCpuKernels {
  // Rotates tokens [begin, end) (token = b * seq + i) of q and k in place.
  void (*apply_tokens)(const RopeTask& task, int64_t begin, int64_t end);
};

const RopeCpuKernels& rope_cpu_kernels(CpuIsa isa);

#define QWEN3VL_DECLARE_ROPE_KERNELS(ns)                               \
  namespace cpu_rope::ns {                                             \
  void apply_tokens(const RopeTask& task, int64_t begin, int64_t end); \
  }
QWEN3VL_DECLARE_ROPE_KERNELS(scalar)
QWEN3VL_DECLARE_ROPE_KERNELS(avx2)
QWEN3VL_DECLARE_ROPE_KERNELS(avx512)
#undef QWEN3VL_DECLARE_ROPE_KERNELS

}  // namespace qwen3vl::rope::detail
