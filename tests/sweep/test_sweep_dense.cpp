// Differential sweep, dense prefill: CPU standard (with attention weights) and flash2 (with query
// positions) against the float64 oracle on random problems, every ISA this machine runs. Case
// counts, seeds and replay: sweep_runner.hpp.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "support/cpu_variants.hpp"
#include "sweep/random_problems.hpp"
#include "sweep/sweep_checks.hpp"

namespace qwen3vl::testing::sweep {
namespace {

// Prints the cases and kernel runs of the whole process when it ends.
class TotalsPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    std::printf("[sweep] total: %lld cases, %lld kernel runs on %zu ISAs\n",
                static_cast<long long>(Totals::get().cases),
                static_cast<long long>(Totals::get().runs), runnable_isas().size());
  }
};
const auto* const kTotals = ::testing::AddGlobalTestEnvironment(new TotalsPrinter);

// A random problem of `allowed` through `create` on every ISA, against the float64 oracle.
void dense_case(Case& c, CpuFactory create, const Allowed& allowed) {
  Rng r(c.seed);
  const int threads = draw_threads(r);
  const RandomProblem rp = random_problem(r, allowed, c.seed);
  c.describe(rp.label() + " threads " + std::to_string(threads));
  BuiltProblem bp(rp);
  const reference::Result ref = reference::attention(bp.problem.params, rp.spec.with_weights);
  for (CpuIsa isa : runnable_isas())
    run_and_expect(*make_cpu(create, isa, threads), bp, ref, to_string(isa), c);
}

TEST(Sweep, Standard) {
  Allowed allowed;
  allowed.weights = true;
  run_family("Standard", 1000000, 600,
             [&](Case& c) { dense_case(c, create_standard_cpu, allowed); });
}

TEST(Sweep, Flash2) {
  Allowed allowed;
  allowed.q_positions = true;
  run_family("Flash2", 2000000, 900, [&](Case& c) { dense_case(c, create_flash2_cpu, allowed); });
}

}  // namespace
}  // namespace qwen3vl::testing::sweep
