// The one way to reach per-ISA code. A kernel family declares a table (a struct of function
// pointers) and QWEN3VL_DECLARE_ISA_TABLE(Table) in the table's namespace; the family's kernel
// body, compiled once per ISA by qwen3vl_add_isa_kernels (src/CMakeLists.txt), ends with
// QWEN3VL_DEFINE_ISA_TABLE(Table, entries...) in that namespace; callers take
// isa_table<Table>(isa) with an ISA that resolve_cpu_isa() returned, so no code compiled for a
// wider ISA runs before CPUID allowed it.
#pragma once

#include "qwen3vl/cpu/isa.hpp"

// The dispatch below tests QWEN3VL_HAVE_<ISA>, which only the library's kernel targets define
// (qwen3vl_add_isa_kernels; tests reaching in take the QWEN3VL_ISA_DEFINITIONS property): without
// them every ISA would silently get the scalar table.
#ifndef QWEN3VL_HAVE_SCALAR
#error "isa_table.hpp needs the QWEN3VL_HAVE_<ISA> definitions (see src/CMakeLists.txt)"
#endif

namespace qwen3vl::detail {

template <CpuIsa I>
struct IsaTableTag {};

// The table of `isa`; an ISA this build lacks never reaches here (resolve_cpu_isa refuses it).
template <class Table>
const Table& isa_table(CpuIsa isa) {
  const Table* const kind = nullptr;  // selects the family's overloads (found by ADL)
#if QWEN3VL_HAVE_AVX512
  if (isa == CpuIsa::kAvx512) return isa_table_of(IsaTableTag<CpuIsa::kAvx512>(), kind);
#endif
#if QWEN3VL_HAVE_AVX2
  if (isa == CpuIsa::kAvx2) return isa_table_of(IsaTableTag<CpuIsa::kAvx2>(), kind);
#endif
  (void)isa;
  return isa_table_of(IsaTableTag<CpuIsa::kScalar>(), kind);
}

}  // namespace qwen3vl::detail

#define QWEN3VL_DECLARE_ISA_TABLE(Table)                                                \
  const Table& isa_table_of(::qwen3vl::detail::IsaTableTag<::qwen3vl::CpuIsa::kScalar>, \
                            const Table*);                                              \
  const Table& isa_table_of(::qwen3vl::detail::IsaTableTag<::qwen3vl::CpuIsa::kAvx2>,   \
                            const Table*);                                              \
  const Table& isa_table_of(::qwen3vl::detail::IsaTableTag<::qwen3vl::CpuIsa::kAvx512>, \
                            const Table*);

// In a per-ISA translation unit (QWEN3VL_ISA_ENUM comes from the generated file).
#define QWEN3VL_DEFINE_ISA_TABLE(Table, ...)                                                  \
  const Table& isa_table_of(::qwen3vl::detail::IsaTableTag<QWEN3VL_ISA_ENUM>, const Table*) { \
    static const Table table{__VA_ARGS__};                                                    \
    return table;                                                                             \
  }
