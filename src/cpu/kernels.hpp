// The per-ISA kernel table. Each ISA's kernels are compiled in their own translation units, with
// their own flags and namespace (qwen3vl::cpu::<isa>); the table is the only way to reach them, so
// no code compiled for a wider ISA runs before CPUID allowed it.
#pragma once

#include <cstdint>

#include "qwen3vl/core/params.hpp"
#include "qwen3vl/cpu/isa.hpp"

namespace qwen3vl::detail {

// One (sequence, query head) of standard attention.
struct StandardHeadTask {
  const AttentionParams* params;
  AttentionShape shape;
  int64_t b;            // sequence
  int64_t h;            // query head
  SequenceSpan span;    // rows and valid keys of sequence b
  int64_t k_total;      // keys in the sequence including padding (weights row length)
  void* scratch;        // standard_scratch_floats(max_q, max_k, D) floats, 64-byte aligned
};

inline int64_t standard_scratch_floats(int64_t max_q, int64_t max_k, int64_t d) {
  return (max_q + 2 * max_k) * d + max_q * max_k;
}

struct CpuKernels {
  void (*standard_head)(const StandardHeadTask& task);
};

// The table for an ISA that resolve_cpu_isa() returned.
const CpuKernels& cpu_kernels(CpuIsa isa);

#define QWEN3VL_DECLARE_CPU_KERNELS(ns) \
  namespace cpu::ns {                   \
  void standard_head(const StandardHeadTask& task); \
  }
QWEN3VL_DECLARE_CPU_KERNELS(scalar)
QWEN3VL_DECLARE_CPU_KERNELS(avx2)
QWEN3VL_DECLARE_CPU_KERNELS(avx512)
#undef QWEN3VL_DECLARE_CPU_KERNELS

}  // namespace qwen3vl::detail
