// Choosing the CPU instruction set once: explicit request, then QWEN3VL_CPU_ISA, then CPUID.
#include "qwen3vl/cpu/isa.hpp"

#include <cstdlib>
#include <string>

namespace qwen3vl {

Status parse_cpu_isa(const std::string& text, CpuIsa* isa) {
  for (CpuIsa candidate : {CpuIsa::kAuto, CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (text == to_string(candidate)) {
      *isa = candidate;
      return Status();
    }
  return make_error(StatusCode::kInvalidArgument, "isa = '", text,
                    "': allowed auto, scalar, avx2, avx512");
}

bool cpu_isa_compiled(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return true;
#if QWEN3VL_HAVE_AVX2
    case CpuIsa::kAvx2: return true;
#endif
#if QWEN3VL_HAVE_AVX512
    case CpuIsa::kAvx512: return true;
#endif
    default: return false;
  }
}

bool cpu_supports(const CpuInfo& cpu, CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAuto:
    case CpuIsa::kScalar: return true;
    case CpuIsa::kAvx2: return cpu.has_avx2_fma() && cpu.f16c;
    case CpuIsa::kAvx512: return cpu.has_avx512() && cpu.has_avx2_fma() && cpu.f16c;
  }
  return false;
}

Status resolve_cpu_isa(CpuIsa requested, const CpuInfo& cpu, CpuIsa* chosen) {
  CpuIsa isa = requested;
  const char* source = "config";
  if (isa == CpuIsa::kAuto) {
    if (const char* env = std::getenv("QWEN3VL_CPU_ISA"); env && *env) {
      QWEN3VL_RETURN_IF_ERROR(parse_cpu_isa(env, &isa));
      source = "QWEN3VL_CPU_ISA";
    }
  }
  if (isa == CpuIsa::kAuto) {
    for (CpuIsa best : {CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kScalar})
      if (cpu_isa_compiled(best) && cpu_supports(cpu, best)) {
        *chosen = best;
        return Status();
      }
  }
  if (!cpu_isa_compiled(isa))
    return make_error(StatusCode::kUnsupported, source, " isa = ", to_string(isa),
                      ": this build has no kernels for it (compiled: scalar",
                      cpu_isa_compiled(CpuIsa::kAvx2) ? ", avx2" : "",
                      cpu_isa_compiled(CpuIsa::kAvx512) ? ", avx512" : "", ")");
  if (!cpu_supports(cpu, isa))
    return make_error(StatusCode::kUnsupported, source, " isa = ", to_string(isa), ": this CPU (",
                      cpu.brand, ") does not support it");
  *chosen = isa;
  return Status();
}

}  // namespace qwen3vl
