// The non-finite rule on every CPU variant and ISA (tests/support/nonfinite.hpp): Inf or NaN planted
// in K or V rows that a mask hides from some rows (causal, sliding window, an additive -inf, key
// padding, an unlisted block) never reaches those rows, and rows that see it (or whose q holds it)
// come out non-finite. Odd sizes, several dtypes, GQA, fixed-length and varlen batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kv_cache/decode_problem.hpp"
#include "linear/linear_oracle.hpp"
#include "moe/moh_support.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/moe.hpp"
#include "qwen3vl/variants/sparse.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "support/block_layouts.hpp"
#include "support/cpu_variants.hpp"
#include "support/nonfinite.hpp"

namespace qwen3vl::testing {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A problem, the key rows planted in one of its sequences, the q rows planted for the q case, and
// anything else the scene needs (an additive mask hiding the keys from some rows).
struct Scene {
  std::string name;
  ProblemSpec spec;
  int64_t b = 0;
  std::vector<int64_t> keys, q_rows;
  std::function<void(Problem&)> prepare;
};

ProblemSpec spec_of(int64_t batch, int64_t lq, int64_t lk, int64_t heads, int64_t kv_heads,
                    int64_t d, MaskKind mask, DType dtype = DType::kF32) {
  ProblemSpec s = problem_spec(lq, lk, heads, kv_heads, d, mask, 7, batch);
  s.dtype = dtype;
  return s;
}

std::vector<Scene> scenes() {
  std::vector<Scene> out;
  // The report's repro: the last key of a causal problem holds the value; rows 0-30 cannot see it.
  out.push_back({"causal L32", spec_of(1, 32, 32, 2, 2, 16, MaskKind::kCausal), 0, {31}, {5}, {}});
  // Bottom-right causal, Lq < Lk, GQA: keys 40 and 44 are seen by the last rows only.
  out.push_back({"causal Lq37 Lk45", spec_of(1, 37, 45, 4, 2, 20, MaskKind::kCausal), 0, {40, 44}, {0, 36}, {}});
  ProblemSpec window = spec_of(1, 45, 45, 3, 1, 17, MaskKind::kSlidingWindow);
  window.window_left = 8;
  window.window_right = 0;
  out.push_back({"window (8, 0)", window, 0, {5, 41}, {20}, {}});
  ProblemSpec both = spec_of(1, 29, 29, 2, 1, 24, MaskKind::kSlidingWindow, DType::kBF16);
  both.window_left = 5;
  both.window_right = 3;
  out.push_back({"window (5, 3) bf16", both, 0, {14}, {3}, {}});
  // An additive mask: key 11 hidden from the even rows, key 12 from rows >= 5.
  ProblemSpec additive = spec_of(1, 19, 29, 2, 1, 24, MaskKind::kNone);
  additive.additive_mask = true;
  out.push_back({"additive -inf", additive, 0, {11, 12}, {3}, [](Problem& p) {
                   for (int64_t i = 0; i < 19; ++i) {
                     if (i % 2 == 0) p.mask.set(i * 29 + 11, kNegInf);
                     if (i >= 5) p.mask.set(i * 29 + 12, kNegInf);
                   }
                 }});
  // Key padding: sequence 0 has 20 keys; key 23 is padding (nobody sees it), key 19 only row 20.
  ProblemSpec pad = spec_of(2, 21, 26, 4, 2, 16, MaskKind::kCausal);
  pad.key_lengths = {20, 26};
  out.push_back({"key padding", pad, 0, {19, 23}, {4}, {}});
  out.push_back({"causal f16 L50", spec_of(1, 50, 50, 4, 4, 64, MaskKind::kCausal, DType::kF16), 0, {47}, {2}, {}});
  ProblemSpec varlen = spec_of(2, 0, 0, 2, 1, 32, MaskKind::kCausal);
  varlen.varlen_q = {13, 20};
  varlen.varlen_k = {13, 20};
  out.push_back({"varlen causal", varlen, 1, {18}, {7}, {}});
  return out;
}

// A CPU variant: runs it on params (false when it does not take them) and names the oracle's
// params (the variant's pattern attached).
struct CpuVariant {
  std::string name;
  std::function<bool(CpuIsa, const AttentionParams&)> run;
  std::function<AttentionParams(const AttentionParams&)> oracle = [](const AttentionParams& p) { return p; };
  bool with_layout = false;  // a random block layout attached to the problem
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
  CpuVariant sparse{"static sparse", [](CpuIsa isa, const AttentionParams& p) {
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
    if (!build_static_sparse_layout(static_config(), s.max_q, s.max_k, s.kv_heads, data.get()).ok()) return o;
    o.block_layout = data->view();
    return o;
  };
  v.push_back(sparse);
  // Mixture-of-heads: every head routed for every token with gate 1 (the gathered-rows kernel),
  // which is dense attention.
  v.push_back({"mixture-of-heads", [](CpuIsa isa, const AttentionParams& p) {
                 AttentionShape s;
                 throw_if_error(validate(p, &s));
                 std::unique_ptr<MixtureOfHeadsAttention> m;
                 throw_if_error(create_mixture_of_heads_cpu(cpu_options(isa), MoHConfig{s.heads, 0, s.heads}, &m));
                 const int64_t tokens = p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
                 const Routing r = all_heads(tokens, s.heads);
                 if (!m->supports(p, r.view()).ok()) return false;
                 m->run(p, r.view());
                 return true;
               }});
  return v;
}

TEST(NonFinite, HiddenKeysNeverReachOutputsOnEveryCpuVariant) {
  for (const CpuVariant& variant : cpu_variants()) {
    int64_t ran = 0;
    for (const Scene& scene : scenes()) {
      for (PlantIn where : {PlantIn::kK, PlantIn::kV, PlantIn::kQ}) {
        for (float value : nonfinite_values()) {
          Problem p(scene.spec);
          if (scene.prepare) scene.prepare(p);
          HostLayout layout;
          if (variant.with_layout) {
            RandomLayoutSpec l;
            l.block_q = l.block_k = 16;
            l.density = 0.7;
            l.keep_diagonal = true;
            l.seed = scene.spec.seq_q;
            AttentionShape s;
            throw_if_error(validate(p.params, &s));
            layout = random_layout(l, s.max_q, s.max_k);
            p.params.block_layout = layout.layout;
          }
          const Planted planted{where, scene.b, where == PlantIn::kQ ? scene.q_rows : scene.keys};
          set_planted(p, planted, 0.0f);
          const AttentionParams oracle = variant.oracle(p.params);
          const reference::Result ref = reference::attention(oracle);
          set_planted(p, planted, value);
          for (CpuIsa isa : runnable_isas()) {
            if (!variant.run(isa, p.params)) continue;
            ++ran;
            const std::string label = variant.name + " " + to_string(isa) + " " + scene.name + " " +
                                      value_name(value) + " in " + to_string(where);
            expect_nonfinite_rule(p.params, ref, planted, reference_sees(oracle),
                                  tolerance(scene.spec.dtype), label);
          }
        }
      }
    }
    EXPECT_GT(ran, 0) << variant.name << " took no scene";
  }
}

// ---- decode with several new rows ------------------------------------------------------------

// Storage element of (sequence, key) token: the cache's own layout (contiguous or paged).
int64_t storage_token(const DecodeProblem& p, int64_t seq, int64_t j) {
  if (p.spec.layout == KvLayout::kContiguous) return seq * (p.spec.max_len() + 5) + j;
  const int64_t width = p.table.view().shape[1], bs = p.spec.block_size;
  return int64_t{p.table.data<int32_t>()[seq * width + j / bs]} * bs + j % bs;
}

void set_decode_rows(DecodeProblem& p, const Planted& at, float x) {
  const int64_t row = p.spec.kv_heads * p.spec.head_dim;
  const int64_t dense_len = std::max<int64_t>(p.spec.max_len(), 1);
  for (int64_t j : at.rows) {
    if (at.where == PlantIn::kQ) {
      set_row(p.q, p.q.view(), false, at.b, 0, j, x);
      continue;
    }
    Tensor& dense = at.where == PlantIn::kK ? p.k_dense : p.v_dense;
    Tensor& store = at.where == PlantIn::kK ? p.k_store : p.v_store;
    for (int64_t c = 0; c < row; ++c) {
      dense.set((at.b * dense_len + j) * row + c, x);
      store.set(storage_token(p, at.b, j) * row + c, x);
    }
  }
}

TEST(NonFinite, DecodeWithSeveralNewRows) {
  struct Case {
    DecodeSpec spec;
    std::vector<int64_t> keys;  // of sequence 0
  };
  std::vector<Case> cases;
  DecodeSpec s;
  s.lens = {37, 20};
  s.rows = 4;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 24;
  s.layout = KvLayout::kContiguous;
  cases.push_back({s, {35}});  // rows 2 and 3 see key 35, rows 0 and 1 do not
  s.layout = KvLayout::kPaged;
  s.head_dim = 64;
  s.kv_dtype = s.q_dtype = DType::kF16;
  cases.push_back({s, {36}});  // only row 3 sees the last key
  s.kv_dtype = s.q_dtype = DType::kF32;
  s.lens = {300, 41};
  s.rows = 3;
  s.num_splits = 3;
  cases.push_back({s, {298, 299}});
  for (const Case& c : cases)
    for (PlantIn where : {PlantIn::kK, PlantIn::kV, PlantIn::kQ})
      for (float value : nonfinite_values()) {
        DecodeProblem p(c.spec);
        const Planted planted{where, 0, where == PlantIn::kQ ? std::vector<int64_t>{1} : c.keys};
        set_decode_rows(p, planted, 0.0f);
        const reference::Result ref = reference::attention(p.dense);
        set_decode_rows(p, planted, value);
        for (CpuIsa isa : runnable_isas()) {
          std::unique_ptr<DecodeAttention> d;
          throw_if_error(create_decode_cpu(cpu_options(isa), &d));
          d->run(p.params);
          const std::string label = "decode " + std::string(to_string(isa)) + " " + c.spec.to_string() +
                                    " " + value_name(value) + " in " + to_string(where);
          EXPECT_GT(expect_nonfinite_rule(p.dense, ref, planted, reference_sees(p.dense),
                                          tolerance(c.spec.kv_dtype), label),
                    0)
              << label;
        }
      }
}

// ---- linear attention --------------------------------------------------------------------------

// Causal linear attention: row i sees keys j <= i (Lq = Lk) below the sequence's key length; a
// later key's Inf or NaN must not reach row i, including from within i's own chunk.
TEST(NonFinite, CausalLinearAttentionNeverSeesLaterKeys) {
  struct Case {
    std::string name;
    LinearConfig config;
    ProblemSpec spec;
    std::vector<int64_t> keys;
  };
  LinearConfig elu;
  elu.chunk = 16;
  LinearConfig performer;
  performer.feature_map = LinearFeatureMap::kPerformer;
  performer.performer_features = 32;
  performer.chunk = 16;
  performer.head_dim = 16;
  ProblemSpec causal = spec_of(1, 37, 37, 4, 2, 16, MaskKind::kCausal);
  causal.with_lse = false;
  ProblemSpec pad = spec_of(2, 37, 37, 2, 1, 24, MaskKind::kCausal);
  pad.with_lse = false;
  pad.key_lengths = {30, 37};
  ProblemSpec dense = pad;
  dense.mask = MaskKind::kNone;
  ProblemSpec half = spec_of(1, 45, 45, 2, 2, 32, MaskKind::kCausal, DType::kF16);
  half.with_lse = false;
  const std::vector<Case> cases = {
      {"elu causal", elu, causal, {20, 36}},  // key 20: rows 16-19 share its chunk
      {"elu causal key padding", elu, pad, {18, 33}},
      {"elu non-causal key padding", elu, dense, {33}},  // padding: nobody sees key 33
      {"elu causal f16", elu, half, {40}},
      {"performer causal", performer, causal, {20, 36}},
  };
  for (const Case& c : cases) {
    ProblemSpec spec = c.spec;
    const bool elu_map = c.config.feature_map == LinearFeatureMap::kEluPlusOne;
    for (PlantIn where : {PlantIn::kK, PlantIn::kV, PlantIn::kQ})
      for (float value : nonfinite_values()) {
        // elu(-inf) + 1 = 0 exactly: -Inf in q or K is a zero feature, not a non-finite one.
        if (elu_map && where != PlantIn::kV && value == kNegInf) continue;
        Problem p(spec);
        const Planted planted{where, 0, where == PlantIn::kQ ? std::vector<int64_t>{9} : c.keys};
        set_planted(p, planted, 0.0f);
        const reference::Result ref = LinearOracle::of(c.config, spec.head_dim).run(p.params);
        set_planted(p, planted, value);
        const bool causal_mask = spec.mask != MaskKind::kNone;
        const AttentionParams params = p.params;
        const SeesKey sees = [&params, causal_mask](int64_t b, int64_t, int64_t i, int64_t j) {
          return j < sequence_span(params, b).k_len && (!causal_mask || j <= i);
        };
        for (CpuIsa isa : runnable_isas()) {
          std::unique_ptr<LinearAttention> a;
          throw_if_error(create_linear_cpu(cpu_options(isa), c.config, &a));
          a->run(p.params);
          const std::string label = "linear " + c.name + " " + to_string(isa) + " " +
                                    value_name(value) + " in " + to_string(where);
          expect_nonfinite_rule(p.params, ref, planted, sees,
                                spec.dtype == DType::kF32 ? 1e-5 : 2e-2, label);
        }
      }
  }
}

}  // namespace
}  // namespace qwen3vl::testing
