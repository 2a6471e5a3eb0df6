// The sweep's comparisons with an oracle: output by testing::relative_error, LSE by
// testing::lse_max_error relative to the LSE's size (sharpened queries give logits of ~100),
// attention weights by their largest difference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "support/problem.hpp"
#include "sweep/random_problems.hpp"

namespace qwen3vl::testing::sweep {

// Largest |weights - ref.weights| (the reference computed with weights).
inline double weights_max_error(const Tensor& weights, const reference::Result& ref) {
  double worst = 0.0;
  for (int64_t i = 0; i < weights.numel(); ++i) {
    const double got = weights.get(i);
    if (!std::isfinite(got)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::fabs(got - ref.weights[static_cast<size_t>(i)]));
  }
  return worst;
}

// The bounds: the suites' relative output bound of the storage dtype (1e-5 f32, 1e-2 f16 and
// bf16), the same for the LSE, and 1e-5 / 1e-4 on the weights (probabilities in [0, 1]).
inline double lse_tolerance(DType t) { return t == DType::kF32 ? 1e-5 : 1e-2; }
inline double weights_tolerance(DType t) { return t == DType::kF32 ? 1e-5 : 1e-4; }

// Output (and LSE, weights when the problem has them) of the run just made against `ref`.
inline void expect_matches(BuiltProblem& bp, const reference::Result& ref, const std::string& who,
                           double out_tolerance = -1.0) {
  const ProblemSpec& s = bp.problem.spec;
  const double tol = out_tolerance >= 0 ? out_tolerance : tolerance(s.dtype);
  EXPECT_LE(relative_error(bp.problem.params, ref), tol) << who << ": output";
  if (s.with_lse)
    EXPECT_LE(lse_max_error(bp.problem.params, ref, /*relative_to_size=*/true),
              lse_tolerance(s.dtype))
        << who << ": lse";
  if (s.with_weights)
    EXPECT_LE(weights_max_error(bp.problem.weights, ref), weights_tolerance(s.dtype))
        << who << ": weights";
  EXPECT_TRUE(bp.padding_intact()) << who << ": an element outside the strided views changed";
}

// Runs `attn` on the problem (outputs poisoned first) and compares it with `ref`; a refusal of
// params the variant documents as supported fails the case.
inline void run_and_expect(const Attention& attn, BuiltProblem& bp, const reference::Result& ref,
                           const std::string& who, Case& c, double out_tolerance = -1.0) {
  const Status ok = attn.supports(bp.problem.params);
  ASSERT_TRUE(ok.ok()) << who << ": supports() refused: " << ok.to_string();
  bp.poison_outputs();
  attn.run(bp.problem.params);
  ++c.runs;
  expect_matches(bp, ref, who, out_tolerance);
}

}  // namespace qwen3vl::testing::sweep
