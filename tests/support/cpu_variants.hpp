// Building CPU variants for every ISA this machine runs, and checking them against the reference.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

// Every ISA both compiled in and supported here (on an AVX-512 machine: scalar, avx2 and avx512).
inline std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (cpu_isa_compiled(isa) && cpu_supports(CpuInfo::current(), isa)) isas.push_back(isa);
  return isas;
}

// A CPU variant from its factory (create_standard_cpu, create_flash2_cpu, ...); throws on error.
using CpuFactory = Status (*)(const CpuOptions&, std::unique_ptr<Attention>*);
inline std::unique_ptr<Attention> make_cpu(CpuFactory create, CpuIsa isa, int threads = 2) {
  CpuOptions o;
  o.isa = isa;
  o.num_threads = threads;
  std::unique_ptr<Attention> a;
  throw_if_error(create(o, &a));
  return a;
}

// Runs `spec` on every runnable ISA and compares output (and LSE) with the float64 reference.
inline void expect_matches_reference(CpuFactory create, const ProblemSpec& spec) {
  Problem p(spec);
  const reference::Result ref = reference::attention(p.params);
  for (CpuIsa isa : runnable_isas()) {
    const auto attn = make_cpu(create, isa);
    ASSERT_TRUE(attn->supports(p.params).ok()) << spec.to_string();
    attn->run(p.params);
    EXPECT_LE(relative_error(p.params, ref), tolerance(spec.dtype))
        << to_string(isa) << " " << spec.to_string();
    if (spec.with_lse) {
      EXPECT_LE(lse_max_error(p.params, ref), spec.dtype == DType::kF32 ? 1e-5 : 1e-2)
          << to_string(isa) << " " << spec.to_string();
    }
  }
}

}  // namespace qwen3vl::testing
