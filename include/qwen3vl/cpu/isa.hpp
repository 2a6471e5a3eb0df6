// CPU instruction sets with their own kernel builds, and how one is chosen at run time.
#pragma once

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"

namespace qwen3vl {

enum class CpuIsa : uint8_t { kAuto, kScalar, kAvx2, kAvx512 };

inline const char* to_string(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAuto: return "auto";
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "?";
}

// Parses "auto", "scalar", "avx2", "avx512".
Status parse_cpu_isa(const std::string& text, CpuIsa* isa);

// Whether this build contains kernels for `isa`.
bool cpu_isa_compiled(CpuIsa isa);

// Whether the CPU described by `cpu` can run kernels built for `isa`.
bool cpu_supports(const CpuInfo& cpu, CpuIsa isa);

// The ISA to run: `requested` if it is not kAuto; else QWEN3VL_CPU_ISA from the environment if set;
// else the best the CPU supports. Asking for an ISA the CPU lacks is an error, never a fallback.
Status resolve_cpu_isa(CpuIsa requested, const CpuInfo& cpu, CpuIsa* chosen);

}  // namespace qwen3vl
