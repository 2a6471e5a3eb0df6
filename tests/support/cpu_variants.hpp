// Building CPU variants for every ISA this machine runs, and checking them against the reference.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "support/empty_rows.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

// Every ISA both compiled in and supported here (on an AVX-512 machine: scalar, avx2 and avx512).
inline std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (cpu_isa_compiled(isa) && cpu_supports(CpuInfo::current(), isa)) isas.push_back(isa);
  return isas;
}

// Options for an ISA and a thread count (2 by default: the CI machine has two cores).
inline CpuOptions cpu_options(CpuIsa isa = CpuIsa::kAuto, int threads = 2) {
  CpuOptions o;
  o.isa = isa;
  o.num_threads = threads;
  return o;
}

// A CPU variant from its factory (create_standard_cpu, create_flash2_cpu, ...); throws on error.
using CpuFactory = Status (*)(const CpuOptions&, std::unique_ptr<Attention>*);
inline std::unique_ptr<Attention> make_cpu(CpuFactory create, CpuIsa isa, int threads = 2) {
  std::unique_ptr<Attention> a;
  throw_if_error(create(cpu_options(isa, threads), &a));
  return a;
}

// Runs `p` (anything extra already attached to its params) with `create` on every runnable ISA
// and compares output (and LSE) with the float64 reference; `label` names the case.
inline void expect_matches_reference(CpuFactory create, Problem& p, const std::string& label) {
  const reference::Result ref = reference::attention(p.params);
  for (CpuIsa isa : runnable_isas()) {
    const auto attn = make_cpu(create, isa);
    const Status ok = attn->supports(p.params);
    ASSERT_TRUE(ok.ok()) << ok.to_string() << " " << label;
    attn->run(p.params);
    EXPECT_LE(relative_error(p.params, ref), tolerance(p.spec.dtype))
        << to_string(isa) << " " << label;
    if (p.spec.with_lse) {
      EXPECT_LE(lse_max_error(p.params, ref), p.spec.dtype == DType::kF32 ? 1e-5 : 1e-2)
          << to_string(isa) << " " << label;
    }
  }
}

inline void expect_matches_reference(CpuFactory create, const ProblemSpec& spec) {
  Problem p(spec);
  expect_matches_reference(create, p, spec.to_string());
}

// Causal with Lq = seq_q > Lk = 3 (rows before seq_q - 3 see no key) in a batch of two whose second
// sequence has no valid key: every such row must give output 0 and LSE -inf, and nothing is NaN.
inline void expect_fully_masked_rows_zero(CpuFactory create, int64_t seq_q) {
  ProblemSpec s;
  s.seq_q = seq_q;
  s.seq_k = 3;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  s.batch = 2;
  s.key_lengths = {3, 0};
  for (CpuIsa isa : runnable_isas()) {
    Problem p(s);
    make_cpu(create, isa)->run(p.params);
    expect_empty_rows_zero(
        p, [&](int64_t b, int64_t i) { return b == 1 || i < seq_q - 3; }, to_string(isa));
  }
}

// K/V rows that no query can see hold NaN: keys before every row's window, beyond key_lengths,
// after every row under a top-left causal mask, and keys an additive -inf hides from every row.
// The output must equal the float64 reference (which skips hidden keys) on every ISA.
inline void expect_hidden_nan_keys_do_not_leak(CpuFactory create) {
  ProblemSpec window;
  window.seq_q = 30;
  window.seq_k = 200;
  window.mask = MaskKind::kSlidingWindow;
  window.window_left = 40;
  window.window_right = 0;
  window.key_lengths = {150};
  ProblemSpec top_left;
  top_left.seq_q = 50;
  top_left.seq_k = 140;
  top_left.mask = MaskKind::kCausalTopLeft;
  ProblemSpec additive;
  additive.seq_q = 20;
  additive.seq_k = 90;
  additive.additive_mask = true;
  const std::vector<std::pair<ProblemSpec, std::vector<int64_t>>> cases = {
      {window, {0, 5, 79, 150, 170, 199}}, {top_left, {50, 64, 100, 139}}, {additive, {3, 66}}};
  for (const auto& [spec, hidden] : cases) {
    Problem p(spec);
    poison_keys(p, hidden);
    const reference::Result ref = reference::attention(p.params);
    for (CpuIsa isa : runnable_isas()) {
      make_cpu(create, isa)->run(p.params);
      EXPECT_LE(relative_error(p.params, ref), 1e-5) << to_string(isa) << " " << spec.to_string();
    }
  }
}

}  // namespace qwen3vl::testing
