// The non-finite rule on every CPU variant and ISA (tests/support/nonfinite.hpp): Inf or NaN
// planted in K or V rows that a mask hides from some rows (causal, sliding window, an additive
// -inf, key padding, an unlisted block) never reaches those rows, and rows that see it (or whose q
// holds it) come out non-finite. Odd sizes, several dtypes, GQA, fixed-length and varlen batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kv_cache/decode_nonfinite.hpp"
#include "linear/linear_nonfinite.hpp"
#include "mixture_of_heads/moh_support.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "qwen3vl/variants/static_sparse.hpp"
#include "support/block_layouts.hpp"
#include "support/cpu_variants.hpp"
#include "support/nonfinite.hpp"

namespace qwen3vl::testing {
namespace {

// A CPU variant: runs it on params (false when it does not take them) and names the oracle's
// params (the variant's pattern attached).
struct CpuVariant {
  std::string name;
  std::function<bool(CpuIsa, const AttentionParams&)> run;
  std::function<AttentionParams(const AttentionParams&)> oracle = [](const AttentionParams& p) {
    return p;
  };
  bool with_layout = false;               // a random block layout attached to the problem
  std::vector<std::string> refused = {};  // the scenes it does not take (nonfinite_scenes())
};

std::function<bool(CpuIsa, const AttentionParams&)> runner(CpuFactory create) {
  return [create](CpuIsa isa, const AttentionParams& p) {
    const auto a = make_cpu(create, isa);
    if (!a->supports(p).ok()) return false;
    a->run(p);
    return true;
  };
}

Status exact_topk_keep_all(const CpuOptions& o, std::unique_ptr<Attention>* out) {
  DynamicSparseConfig c;
  c.method = DynamicSparseMethod::kExactTopK;
  c.keep_fraction = 1.0;
  return create_dynamic_sparse_cpu(o, c, out);
}

StaticSparseConfig static_config() {
  StaticSparseConfig c;
  c.pattern = SparsePattern::kSlidingWindow;
  c.block = 16;
  c.sliding_window.num_sliding_window_blocks = 1;
  return c;
}

std::vector<CpuVariant> cpu_variants() {
  std::vector<CpuVariant> v;
  v.push_back({"standard", runner(&create_standard_cpu)});
  v.push_back({"flash2", runner(&create_flash2_cpu)});
  v.push_back({"exact top-k", runner(&exact_topk_keep_all)});
  CpuVariant block{"block sparse", runner(&create_block_sparse_cpu)};
  block.with_layout = true;
  v.push_back(block);
  // Static sparse: the oracle runs with the layout the pattern builds.
  auto data = std::make_shared<BlockLayoutData>();
  CpuVariant sparse{
      "static sparse", [](CpuIsa isa, const AttentionParams& p) {
        std::unique_ptr<Attention> a;
        throw_if_error(create_static_sparse_cpu(cpu_options(isa), static_config(), &a));
        if (!a->supports(p).ok()) return false;
        a->run(p);
        return true;
      }};
  sparse.oracle = [data](const AttentionParams& p) {
    AttentionShape s;
    throw_if_error(validate(p, &s));
    AttentionParams o = p;
    // Shapes the patterns do not take: the variant refuses them too, and the case is skipped.
    if (!build_static_sparse_layout(static_config(), s.max_q, s.max_k, s.kv_heads, data.get()).ok())
      return o;
    o.block_layout = data->view();
    return o;
  };
  sparse.refused = {"causal Lq37 Lk45", "additive -inf", "key padding"};  // supports() says no
  v.push_back(sparse);
  // Mixture-of-heads: every head routed for every token with gate 1 (the gathered-rows kernel),
  // which is dense attention.
  CpuVariant moh{"mixture-of-heads", [](CpuIsa isa, const AttentionParams& p) {
                   AttentionShape s;
                   throw_if_error(validate(p, &s));
                   std::unique_ptr<MixtureOfHeadsAttention> m;
                   throw_if_error(create_mixture_of_heads_cpu(cpu_options(isa),
                                                              MoHConfig{s.heads, 0, s.heads}, &m));
                   const int64_t tokens = p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
                   const Routing r = all_heads(tokens, s.heads);
                   if (!m->supports(p, r.view()).ok()) return false;
                   m->run(p, r.view());
                   return true;
                 }};
  moh.refused = {"additive -inf"};  // supports() says no to additive masks
  v.push_back(moh);
  return v;
}

TEST(NonFinite, HiddenKeysNeverReachOutputsOnEveryCpuVariant) {
  for (const CpuVariant& variant : cpu_variants()) {
    std::vector<NonFiniteRun> runs;
    for (CpuIsa isa : runnable_isas())
      runs.push_back(
          {to_string(isa), [&variant, isa](Problem& p) { return variant.run(isa, p.params); }});
    ASSERT_FALSE(runs.empty());
    const int64_t cases =
        nonfinite_scene_cases() - 9 * static_cast<int64_t>(variant.refused.size());
    EXPECT_EQ(check_nonfinite_scenes(variant.name, runs, variant.with_layout, variant.oracle,
                                     variant.refused),
              cases * static_cast<int64_t>(runs.size()))
        << variant.name;
    EXPECT_GT(cases * static_cast<int64_t>(runs.size()), 0) << variant.name << " takes no scene";
  }
}

// ---- decode with several new rows and linear attention -----------------------------------------

TEST(NonFinite, DecodeWithSeveralNewRows) {
  std::vector<DecodeNonFiniteRun> runs;
  for (CpuIsa isa : runnable_isas())
    runs.push_back({to_string(isa), [isa](DecodeProblem& p) {
                      std::unique_ptr<DecodeAttention> d;
                      throw_if_error(create_decode_cpu(cpu_options(isa), &d));
                      d->run(p.params);
                    }});
  ASSERT_FALSE(runs.empty());
  EXPECT_EQ(check_decode_nonfinite(runs), 36 * static_cast<int64_t>(runs.size()));
}

TEST(NonFinite, CausalLinearAttentionNeverSeesLaterKeys) {
  std::vector<LinearNonFiniteRun> runs;
  for (CpuIsa isa : runnable_isas())
    runs.push_back({to_string(isa), [isa](const LinearConfig& config, Problem& p) {
                      std::unique_ptr<LinearAttention> a;
                      throw_if_error(create_linear_cpu(cpu_options(isa), config, &a));
                      a->run(p.params);
                    }});
  ASSERT_FALSE(runs.empty());
  EXPECT_EQ(check_linear_nonfinite(runs),
            kLinearNonFiniteCases * static_cast<int64_t>(runs.size()));
}

}  // namespace
}  // namespace qwen3vl::testing
