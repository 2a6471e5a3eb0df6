// The non-finite rule for causal linear attention (tests/support/nonfinite.hpp), shared by the CPU
// and CUDA linear tests: row i sees keys j <= i (Lq = Lk) below the sequence's key length, so a
// later key's Inf or NaN must not reach row i, from the prefix state or from i's own chunk.
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "support/linear_oracle.hpp"
#include "support/nonfinite.hpp"

namespace qwen3vl::testing {

// One way to run linear attention (an ISA, a device) with a config: fills p's out.
struct LinearNonFiniteRun {
  std::string name;
  std::function<void(const LinearConfig&, Problem&)> run;
};

// elu+1 and Performer features, chunks of `chunk` (the CPU takes any, CUDA 64): three chunks per
// sequence, a planted key in the second and third (it shares its chunk with earlier rows, and
// later chunks start from a prefix state that must not hold it), key padding, f32 and f16; Inf,
// -Inf, NaN in K, V and q. Returns the runs checked: kLinearNonFiniteCases per run.
constexpr int64_t kLinearNonFiniteCases =
    37;  // 5 cases x 9, less -Inf in q or K for the 4 elu ones

inline int64_t check_linear_nonfinite(const std::vector<LinearNonFiniteRun>& runs,
                                      int64_t chunk = 16) {
  ScopedOutputPoison finite(kUnwritten);  // device copies of the outputs get it too
  int64_t ran = 0;
  struct Case {
    std::string name;
    LinearConfig config;
    ProblemSpec spec;
    std::vector<int64_t> keys;
  };
  LinearConfig elu;
  elu.chunk = chunk;
  LinearConfig performer;
  performer.feature_map = LinearFeatureMap::kPerformer;
  performer.performer_features = 32;
  performer.chunk = chunk;
  performer.head_dim = 16;
  const int64_t n = 2 * chunk + 5, c2 = 2 * chunk;  // 37 and 32 for chunks of 16
  ProblemSpec causal = spec_of(1, n, n, 4, 2, 16, MaskKind::kCausal);
  causal.with_lse = false;
  ProblemSpec pad = spec_of(2, n, n, 2, 1, 24, MaskKind::kCausal);
  pad.with_lse = false;
  pad.key_lengths = {c2 - 2, n};
  ProblemSpec dense = pad;
  dense.mask = MaskKind::kNone;
  ProblemSpec half = spec_of(1, c2 + 13, c2 + 13, 2, 2, 32, MaskKind::kCausal, DType::kF16);
  half.with_lse = false;
  const std::vector<Case> cases = {
      {"elu causal", elu, causal, {chunk + 4, c2 + 4}},  // rows chunk..chunk+3 share its chunk
      {"elu causal key padding", elu, pad, {chunk + 2, c2 + 1}},
      {"elu non-causal key padding", elu, dense, {c2 + 1}},  // padding: nobody sees it
      {"elu causal f16", elu, half, {c2 + 8}},
      {"performer causal", performer, causal, {chunk + 4, c2 + 4}},
  };
  for (const Case& c : cases) {
    const bool elu_map = c.config.feature_map == LinearFeatureMap::kEluPlusOne;
    for (PlantIn where : {PlantIn::kK, PlantIn::kV, PlantIn::kQ})
      for (float value : nonfinite_values()) {
        // elu(-inf) + 1 = 0 exactly: -Inf in q or K is a zero feature, not a non-finite one.
        if (elu_map && where != PlantIn::kV && value == -std::numeric_limits<float>::infinity())
          continue;
        Problem p(c.spec);
        const Planted planted{where, 0, where == PlantIn::kQ ? std::vector<int64_t>{9} : c.keys};
        set_planted(p, planted, 0.0f);
        const reference::Result ref = LinearOracle::of(c.config, c.spec.head_dim).run(p.params);
        set_planted(p, planted, value);
        const bool causal_mask = c.spec.mask != MaskKind::kNone;
        const AttentionParams params = p.params;
        const SeesKey sees = [params, causal_mask](int64_t b, int64_t, int64_t i, int64_t j) {
          return j < sequence_span(params, b).k_len && (!causal_mask || j <= i);
        };
        for (const LinearNonFiniteRun& r : runs) {
          const std::string label = "linear " + c.name + " " + r.name + " " + value_name(value) +
                                    " in " + to_string(where);
          poison_outputs(p);  // a run that writes nothing must not pass on the last run's outputs
          r.run(c.config, p);
          ++ran;
          const int64_t seeing = expect_nonfinite_rule(
              p.params, ref, planted, sees, c.spec.dtype == DType::kF32 ? 1e-5 : 2e-2, label);
          const bool padding_only = c.name == "elu non-causal key padding" && where != PlantIn::kQ;
          if (!padding_only)
            EXPECT_GT(seeing, 0) << label;  // that case's key is padding: nobody sees it
        }
      }
  }
  return ran;
}

}  // namespace qwen3vl::testing
