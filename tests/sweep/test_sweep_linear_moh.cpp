// Differential sweep, the non-softmax and routed variants on the CPU, every ISA: linear attention
// (elu+1 and Performer features) against its float64 quadratic oracle, and mixture-of-heads with a
// random routing against its oracle (dense float64 attention per head times the gate).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "mixture_of_heads/moh_support.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "support/cpu_variants.hpp"
#include "support/linear_oracle.hpp"
#include "sweep/random_problems.hpp"
#include "sweep/sweep_checks.hpp"

namespace qwen3vl::testing::sweep {
namespace {

// Non-causal: any Lq, Lk; causal (both alignments coincide): Lq == Lk. No LSE, additive mask,
// soft-cap, window or query positions (the variant refuses them); key padding in fixed-length
// batches; an explicit positive scale for the Performer only.
TEST(Sweep, Linear) {
  run_family("Linear", 7000000, 300, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    LinearConfig config;
    const bool performer = r.chance(0.35);
    const MaskKind mask =
        r.pick(std::vector<MaskKind>{MaskKind::kNone, MaskKind::kCausal, MaskKind::kCausalTopLeft});
    Allowed allowed;
    allowed.masks = {mask};
    allowed.square = mask != MaskKind::kNone;
    allowed.varlen_key_lengths = false;
    allowed.additive_mask = allowed.softcap = allowed.scale = allowed.lse = false;
    allowed.q_gain = false;
    allowed.work_cap = performer ? 1e6 : 2e6;
    RandomProblem rp = random_problem(r, allowed, c.seed);
    config.chunk =
        r.chance(0.5) ? r.pick(std::vector<int64_t>{1, 7, 16, 33, 64, 100, 256}) : r.range(1, 256);
    if (r.chance(0.1)) config.eps = 0.0f;
    if (performer) {
      config.feature_map = LinearFeatureMap::kPerformer;
      config.head_dim = rp.spec.head_dim;
      config.performer_features = r.pick(std::vector<int64_t>{16, 37, 64, 100, 128});
      if (rp.spec.head_dim <= 48 && r.chance(0.3)) config.performer_features = 0;  // D ln D
      config.performer_seed = r.next();
      config.performer_norm = r.chance(0.5) ? PerformerNorm::kChi : PerformerNorm::kSqrtHeadDim;
      if (r.chance(0.3)) rp.spec.scale = static_cast<float>(r.uniform(0.02, 0.5));
    }
    c.describe(std::string(performer ? "performer F " + std::to_string(config.performer_features)
                                     : "elu+1") +
               " chunk " + std::to_string(config.chunk) + " eps " + std::to_string(config.eps) +
               " " + rp.label() + " threads " + std::to_string(threads));
    BuiltProblem bp(rp);
    const reference::Result ref = LinearOracle::of(config, rp.spec.head_dim).run(bp.problem.params);
    const double tol = rp.spec.dtype != DType::kF32 ? 2e-2 : (performer ? 2e-5 : 1e-5);
    for (CpuIsa isa : runnable_isas()) {
      std::unique_ptr<Attention> attn;
      throw_if_error(create_linear_cpu(cpu_options(isa, threads), config, &attn));
      run_and_expect(*attn, bp, ref, to_string(isa), c, tol);
    }
  });
}

// Every mask, key padding, packed sequences, soft-cap, scale, LSE and query positions; k routed
// heads per token (1..Hq, some gates 0). No additive mask or weights (refused). A window reaching
// right of a query aligned before the first key needs query positions (documented refusal), so
// such draws keep window_right 0.
TEST(Sweep, MixtureOfHeads) {
  Allowed allowed;
  allowed.additive_mask = false;
  allowed.q_positions = true;
  run_family("MixtureOfHeads", 8000000, 450, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    RandomProblem rp = random_problem(r, allowed, c.seed);
    ProblemSpec& s = rp.spec;
    if (s.mask == MaskKind::kSlidingWindow && s.window_right > 0 && !rp.q_positions) {
      for (int64_t b = 0; b < s.batch; ++b) {
        const size_t i = static_cast<size_t>(b);
        const int64_t q_len = s.varlen_q.empty() ? s.seq_q : s.varlen_q[i];
        int64_t k_len = s.varlen_k.empty() ? s.seq_k : s.varlen_k[i];
        if (!s.key_lengths.empty()) k_len = std::min<int64_t>(k_len, s.key_lengths[i]);
        if (q_len > k_len && k_len > 0) s.window_right = 0;
      }
    }
    const int64_t k = r.range(1, s.heads);
    c.describe(rp.label() + " routed heads per token " + std::to_string(k) + " threads " +
               std::to_string(threads));
    BuiltProblem bp(rp);
    const Routing routing = random_routing(routing_tokens(s), s.heads, k, c.seed);
    const reference::Result ref = gated_reference(bp.problem.params, routing);
    for (CpuIsa isa : runnable_isas()) {
      std::unique_ptr<MixtureOfHeadsAttention> moh;
      throw_if_error(create_mixture_of_heads_cpu(cpu_options(isa, threads),
                                                 MoHConfig{s.heads, 0, s.heads}, &moh));
      const Status ok = moh->supports(bp.problem.params, routing.view());
      ASSERT_TRUE(ok.ok()) << to_string(isa) << ": supports() refused: " << ok.to_string();
      bp.poison_outputs();
      moh->run(bp.problem.params, routing.view());
      ++c.runs;
      expect_matches(bp, ref, to_string(isa));
    }
  });
}

}  // namespace
}  // namespace qwen3vl::testing::sweep
