// Mixture-of-heads on the CPU: the router against a float64 re-statement of the MoH gates, the
// gathered-row driver against the oracle (dense float64 attention per head times the gate matrix)
// with the reference as head kernel (one-head calls) and with CPU flash2 on every ISA (its
// gathered-rows pass), and typed errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "mixture_of_heads/moh_support.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "src/flash/gathered_rows.hpp"
#include "support/cpu_variants.hpp"

namespace qwen3vl::testing {
namespace {

std::unique_ptr<MixtureOfHeadsAttention> reference_moh(int64_t heads) {
  MoHConfig c{heads, 0, heads};
  std::unique_ptr<MixtureOfHeadsAttention> m;
  throw_if_error(create_mixture_of_heads(std::make_unique<ReferenceKernel>(), c, &m));
  return m;
}

std::unique_ptr<MixtureOfHeadsAttention> flash_moh(int64_t heads, CpuIsa isa) {
  CpuOptions o;
  o.isa = isa;
  o.num_threads = 2;
  std::unique_ptr<MixtureOfHeadsAttention> m;
  throw_if_error(create_mixture_of_heads_cpu(o, MoHConfig{heads, 0, heads}, &m));
  return m;
}

// Whether CPU flash2 takes q_positions yet (engineer bsr-cpu is adding it): the structural masks
// need them; without them only unmasked problems run through flash2.
bool flash_takes_positions() {
  Problem p(ProblemSpec{});
  std::vector<int32_t> pos(16, 0);
  p.params.q_positions = TensorView::contiguous(pos.data(), DType::kI32, {1, 16});
  return make_cpu(create_flash2_cpu, CpuIsa::kScalar)->supports(p.params).ok();
}

// Runs the routed forward and compares with the gated oracle (output and LSE).
void expect_routed_matches(const MixtureOfHeadsAttention& moh, const ProblemSpec& spec,
                           const Routing& r, const std::string& what) {
  Problem p(spec);
  const reference::Result ref = gated_reference(p.params, r);
  ASSERT_TRUE(moh.supports(p.params, r.view()).ok()) << what << " " << spec.to_string();
  moh.run(p.params, r.view());
  EXPECT_LE(relative_error(p.params, ref), tolerance(spec.dtype))
      << what << " " << spec.to_string();
  if (spec.with_lse) {
    EXPECT_LE(lse_max_error(p.params, ref), spec.dtype == DType::kF32 ? 1e-5 : 1e-2)
        << what << " " << spec.to_string();
  }
}

TEST(MoHRouting, AllHeadsWithGateOneEqualsDense) {
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = s.seq_k = 37;
  s.heads = 6;
  s.kv_heads = 2;
  s.head_dim = 72;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  for (MaskKind mask : {MaskKind::kCausal, MaskKind::kNone}) {
    s.mask = mask;
    const Routing r = all_heads(routing_tokens(s), s.heads);
    expect_routed_matches(*reference_moh(s.heads), s, r, "reference kernel");
    if (mask == MaskKind::kNone || flash_takes_positions())
      for (CpuIsa isa : runnable_isas())
        expect_routed_matches(*flash_moh(s.heads, isa), s, r, to_string(isa));
    // The unrouted forward is the dense one.
    Problem p(s);
    const reference::Result ref = reference::attention(p.params);
    flash_moh(s.heads, runnable_isas().back())->run(p.params);
    EXPECT_LE(relative_error(p.params, ref), 1e-5) << s.to_string();
  }
}

TEST(MoHRouting, UnselectedAndZeroGateRowsAreExactlyZero) {
  ProblemSpec s;
  s.seq_q = s.seq_k = 23;
  s.heads = 4;
  s.kv_heads = 2;
  s.with_lse = true;
  Routing r{Tensor(DType::kI32, {23, 2}), Tensor(DType::kF32, {23, 2})};
  for (int64_t t = 0; t < 23; ++t) {  // heads 0 and 1 (gate 0 on head 1); heads 2, 3 never
    r.index.data<int32_t>()[t * 2] = 0;
    r.index.data<int32_t>()[t * 2 + 1] = 1;
    r.weight.data<float>()[t * 2] = 0.5f;
    r.weight.data<float>()[t * 2 + 1] = 0.0f;
  }
  Problem p(s);  // out starts as NaN: every row must be written
  reference_moh(s.heads)->run(p.params, r.view());
  for (int64_t t = 0; t < 23; ++t)
    for (int64_t h = 1; h < 4; ++h) {
      EXPECT_EQ(p.lse.get(h * 23 + t), -std::numeric_limits<float>::infinity());
      for (int64_t c = 0; c < s.head_dim; ++c)
        ASSERT_EQ(p.out.get((t * 4 + h) * s.head_dim + c), 0.0f);
    }
  EXPECT_LE(relative_error(p.params, gated_reference(p.params, r)), 1e-6);
}

TEST(MoHRouting, RandomRoutingMatchesGatedDenseWithReferenceKernel) {
  for (const ProblemSpec& s : routed_sweep()) {
    const int64_t tokens = routing_tokens(s);
    for (int64_t k : {int64_t{1}, s.heads / 2 + 1}) {
      const Routing r = random_routing(tokens, s.heads, std::min(k, s.heads),
                                       s.seed * 3 + static_cast<uint64_t>(k));
      expect_routed_matches(*reference_moh(s.heads), s, r,
                            "reference kernel k=" + std::to_string(k));
    }
  }
}

TEST(MoHRouting, RandomRoutingMatchesGatedDenseWithFlash2) {
  const bool positions = flash_takes_positions();
  int ran = 0;
  for (const ProblemSpec& s : routed_sweep()) {
    if (!positions && s.mask != MaskKind::kNone) continue;
    const Routing r = random_routing(routing_tokens(s), s.heads, s.heads / 2 + 1, s.seed * 5);
    for (CpuIsa isa : runnable_isas())
      expect_routed_matches(*flash_moh(s.heads, isa), s, r, to_string(isa));
    ++ran;
  }
  EXPECT_GT(ran, 0);
  if (!positions)
    GTEST_SKIP() << "CPU flash2 refuses q_positions: only unmasked cases ran (" << ran << ")";
}

// The MoH router's routing (2 shared heads in the first KV group of 4, top-3 of 6 routed): the
// shared heads share one flash2 call, the routed ones run alone; every ISA, causal and windowed.
TEST(MoHRouting, SharedHeadsFromTheRouterMatchGatedDense) {
  const MoHConfig c{8, 2, 3};
  for (const MaskKind mask : {MaskKind::kCausal, MaskKind::kSlidingWindow}) {
    ProblemSpec s;
    s.batch = 2;
    s.seq_q = s.seq_k = 75;
    s.heads = 8;
    s.kv_heads = 2;
    s.head_dim = 72;
    s.mask = mask;
    s.window_left = 30;
    s.window_right = 0;
    s.with_lse = true;
    const int64_t tokens = routing_tokens(s);
    Tensor shared(DType::kF32, {tokens, 2}), routed(DType::kF32, {tokens, 6}),
        mix(DType::kF32, {tokens, 2});
    fill_uniform(shared, 11);
    fill_uniform(routed, 12);
    fill_uniform(mix, 13);
    Routing r{Tensor(DType::kI32, {tokens, 5}), Tensor(DType::kF32, {tokens, 5})};
    throw_if_error(route_mixture_of_heads(c, {shared.view(), routed.view(), mix.view()}, r.view()));
    expect_routed_matches(*reference_moh(8), s, r, "reference kernel");
    if (flash_takes_positions())
      for (CpuIsa isa : runnable_isas())
        expect_routed_matches(*flash_moh(8, isa), s, r, to_string(isa));
  }
}

// Heads 0 and 1 take every token (one run of 2 in a KV group of 4, or a whole group of 2), head 2
// the even tokens, head 3 every third (runs of 1); gates vary, some are 0.
Routing banded_routing(int64_t tokens) {
  Routing r{Tensor(DType::kI32, {tokens, 4}), Tensor(DType::kF32, {tokens, 4})};
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < 4; ++e) {
      const int64_t h = (e + t) % 4;
      const float gate = h < 2    ? 0.25f + 0.1f * static_cast<float>(t % 7)
                         : h == 2 ? (t % 2 == 0 ? 0.8f : 0.0f)
                                  : (t % 3 == 1 ? 1.1f : 0.0f);
      r.index.data<int32_t>()[t * 4 + e] = static_cast<int32_t>(h);
      r.weight.data<float>()[t * 4 + e] = gate;
    }
  return r;
}

// Hundreds of gathered rows per head: every run spans several tasks of flash2's gathered-rows pass
// (a run of n heads takes group x block_q / n positions per task), fixed-length and varlen with
// unequal sequences, causal and windowed, LSE; every ISA and the reference kernel.
TEST(MoHRouting, LongRunsSpanSeveralGatheredTasks) {
  for (const MaskKind mask : {MaskKind::kCausal, MaskKind::kSlidingWindow}) {
    ProblemSpec fixed;
    fixed.batch = 1;
    fixed.seq_q = fixed.seq_k = 600;
    fixed.heads = 4;
    fixed.kv_heads = 1;
    fixed.head_dim = 40;
    ProblemSpec packed = fixed;
    packed.varlen_q = {311, 250};
    packed.varlen_k = {311, 400};
    packed.kv_heads = 2;
    packed.head_dim = 72;
    for (ProblemSpec s : {fixed, packed}) {
      s.mask = mask;
      s.window_left = 100;
      s.window_right = 0;
      s.with_lse = true;
      s.seed = 900 + static_cast<uint64_t>(mask);
      const Routing r = banded_routing(routing_tokens(s));
      expect_routed_matches(*reference_moh(4), s, r, "reference kernel");
      for (CpuIsa isa : runnable_isas())
        expect_routed_matches(*flash_moh(4, isa), s, r, to_string(isa));
    }
  }
}

// The gathered-rows pass over every row of every head (runs of a whole KV group) equals dense
// flash2 times each head's gate, and it refuses rows it cannot run with typed errors.
TEST(MoHErrors, GatheredFlash2PassRefusesBadRows) {
  ProblemSpec s;
  s.seq_q = s.seq_k = 16;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 32;
  s.mask = MaskKind::kCausal;
  Problem p(s);
  const auto flash = make_cpu(create_flash2_cpu, runnable_isas().back());
  std::vector<int32_t> cu{0, 16, 0, 16, 0, 16, 0, 16}, rows(4 * 16);
  std::vector<float> gates(rows.size());
  for (size_t j = 0; j < rows.size(); ++j) {
    rows[j] = static_cast<int32_t>(j % 16);
    gates[j] = j / 16 == 3 ? 0.5f : 1.0f;  // head 3 at half
  }
  std::vector<int32_t> runs{0, 2, 4};
  detail::Flash2GatheredRows g;
  g.row = rows.data();
  g.gate = gates.data();
  g.positions = rows.data();  // aligned: row i sits at key i
  g.cu_rows = cu.data();
  g.rows = 16;
  g.run_begin = runs.data();
  g.runs = 2;
  std::vector<unsigned char> ws(detail::flash2_gathered_workspace_size(*flash, p.params));
  const Workspace w{ws.data(), ws.size()};
  ASSERT_TRUE(detail::flash2_forward_gathered(*flash, p.params, g, w).ok());
  const auto* out = static_cast<const float*>(p.params.out.data);
  const std::vector<float> gathered(out, out + 16 * 4 * 32);
  flash->run(p.params);
  for (int64_t i = 0; i < 16; ++i)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t c = 0; c < 32; ++c) {
        const int64_t at = row_offset(p.params.out, false, 0, 0, i, h) + c;
        ASSERT_NEAR(gathered[at], (h == 3 ? 0.5f : 1.0f) * out[at], 1e-5f)
            << "head " << h << " row " << i;
      }
  const auto code = [&](const detail::Flash2GatheredRows& bad) {
    return detail::flash2_forward_gathered(*flash, p.params, bad, w).code();
  };
  EXPECT_EQ(detail::flash2_forward_gathered(ReferenceKernel(), p.params, g, w).code(),
            StatusCode::kInvalidArgument);
  detail::Flash2GatheredRows bad = g;
  bad.cu_rows = nullptr;
  EXPECT_EQ(code(bad), StatusCode::kNullPointer);
  bad = g;
  bad.gate = nullptr;
  EXPECT_EQ(code(bad), StatusCode::kNullPointer);
  bad = g;
  bad.positions = nullptr;  // a causal mask needs them
  EXPECT_EQ(code(bad), StatusCode::kInvalidArgument);
  std::vector<int32_t> across{0, 3, 4};  // heads 0..2 cross the KV groups {0, 1}, {2, 3}
  bad = g;
  bad.run_begin = across.data();
  EXPECT_EQ(code(bad), StatusCode::kInvalidArgument);
  std::vector<int32_t> past = cu;
  past[5] = 17;  // head 2's rows end past the 16-row capacity
  bad = g;
  bad.cu_rows = past.data();
  EXPECT_EQ(code(bad), StatusCode::kInvalidArgument);
  EXPECT_EQ(detail::flash2_forward_gathered(*flash, p.params, g, Workspace{ws.data(), 8}).code(),
            StatusCode::kWorkspaceTooSmall);
}

// The MoH gates restated in float64 with a full sort (the router uses a partial sort in float).
TEST(MoHRouter, MatchesFloat64Restatement) {
  for (const MoHConfig c :
       {MoHConfig{8, 2, 3}, MoHConfig{6, 0, 2}, MoHConfig{4, 4, 0}, MoHConfig{5, 1, 4}}) {
    const int64_t tokens = 29, shared = c.num_shared_heads, routed = c.routed_heads();
    std::mt19937 rng(static_cast<unsigned>(c.num_heads * 100 + c.top_k));
    std::uniform_int_distribution<int> level(-3, 3);  // few distinct values: ties happen
    const auto logits = [&](int64_t width) {
      Tensor t(DType::kF32, {tokens, std::max<int64_t>(width, 1)});
      for (int64_t i = 0; i < t.numel(); ++i) t.set(i, 0.5f * static_cast<float>(level(rng)));
      return t;
    };
    Tensor ls = logits(shared), lr = logits(routed), lm = logits(2);
    MoHRouterLogits in;
    if (shared > 0) in.shared = ls.view();
    if (routed > 0) in.routed = lr.view();
    if (shared > 0 && routed > 0) in.mix = lm.view();
    const int64_t k = c.heads_per_token();
    Routing out{Tensor(DType::kI32, {tokens, k}), Tensor(DType::kF32, {tokens, k})};
    ASSERT_TRUE(route_mixture_of_heads(c, in, out.view()).ok());
    for (int64_t t = 0; t < tokens; ++t) {
      const auto soft = [&](const Tensor& x, int64_t width) {
        std::vector<double> e(static_cast<size_t>(width));
        double sum = 0;
        for (int64_t i = 0; i < width; ++i)
          sum += e[i] = std::exp(static_cast<double>(x.get(t * x.view().shape[1] + i)));
        for (double& v : e) v /= sum;
        return e;
      };
      double a1 = 1.0, a2 = 1.0;
      if (shared > 0 && routed > 0) {
        const std::vector<double> a = soft(lm, 2);
        a1 = a[0];
        a2 = a[1];
      }
      int64_t e = 0;
      if (shared > 0) {
        const std::vector<double> g = soft(ls, shared);
        for (int64_t i = 0; i < shared; ++i, ++e) {
          EXPECT_EQ(out.head(t, e), i);
          EXPECT_NEAR(out.weight.get(t * k + e), a1 * g[i], 1e-6);
        }
      }
      if (routed > 0) {
        const std::vector<double> g = soft(lr, routed);
        std::vector<std::pair<double, int64_t>> ranked;  // (-logit, head): ascending = top first
        for (int64_t j = 0; j < routed; ++j)
          ranked.push_back({-static_cast<double>(lr.get(t * routed + j)), j});
        std::sort(ranked.begin(), ranked.end());
        for (int64_t j = 0; j < c.top_k; ++j, ++e) {
          EXPECT_EQ(out.head(t, e), shared + ranked[j].second) << "token " << t << " rank " << j;
          EXPECT_NEAR(out.weight.get(t * k + e), a2 * g[ranked[j].second], 1e-6);
        }
      }
    }
    EXPECT_TRUE(validate_head_routing(out.view(), tokens, c.num_heads).ok());
  }
}

TEST(MoHErrors, BadKnobsRoutingsAndInputsAreTyped) {
  EXPECT_EQ(validate_moh_config({0, 0, 0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validate_moh_config({8, 9, 0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validate_moh_config({8, 2, 7}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validate_moh_config({8, 2, 0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validate_moh_config({8, 8, 1}).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(validate_moh_config({8, 8, 0}).ok());

  ProblemSpec s;
  s.heads = 4;
  s.kv_heads = 2;
  Problem p(s);
  const auto moh = reference_moh(4);
  Routing r = random_routing(16, 4, 2, 3);
  EXPECT_TRUE(moh->supports(p.params, r.view()).ok());
  r.index.data<int32_t>()[5] = 4;  // out of range
  Status st = moh->supports(p.params, r.view());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("head_index[2, 1] = 4"), std::string::npos) << st.message();
  r.index.data<int32_t>()[5] = r.index.data<int32_t>()[4];  // the same head twice
  EXPECT_EQ(moh->supports(p.params, r.view()).code(), StatusCode::kInvalidArgument);
  r.index.data<int32_t>()[5] = -1;
  EXPECT_EQ(moh->supports(p.params, r.view()).code(), StatusCode::kInvalidArgument);

  Routing short_r = random_routing(15, 4, 2, 3);  // 15 rows for 16 tokens
  EXPECT_EQ(moh->supports(p.params, short_r.view()).code(), StatusCode::kShapeMismatch);
  Routing wide = random_routing(16, 4, 4, 3);
  HeadRouting mixed{wide.index.view(), r.weight.view()};  // [16, 4] vs [16, 2]
  EXPECT_EQ(moh->supports(p.params, mixed).code(), StatusCode::kShapeMismatch);
  Routing ok = random_routing(16, 4, 2, 3);
  ok.weight.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(moh->supports(p.params, ok.view()).code(), StatusCode::kInvalidArgument);
  HeadRouting wrong_dtype{ok.weight.view(), ok.weight.view()};
  EXPECT_EQ(moh->supports(p.params, wrong_dtype).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(moh->supports(p.params, HeadRouting{}).code(), StatusCode::kNullPointer);

  // The config's head count, additive masks, a too-small workspace.
  EXPECT_EQ(reference_moh(8)->supports(p.params).code(), StatusCode::kShapeMismatch);
  ProblemSpec am = s;
  am.additive_mask = true;
  Problem pm(am);
  EXPECT_EQ(moh->supports(pm.params).code(), StatusCode::kUnsupported);
  Routing good = random_routing(16, 4, 2, 4);
  std::vector<unsigned char> small(16);
  EXPECT_EQ(moh->forward(p.params, good.view(), Workspace{small.data(), small.size()}).code(),
            StatusCode::kWorkspaceTooSmall);
  // A window reaching right of a query aligned before the first key needs q_positions.
  ProblemSpec win = s;
  win.seq_q = 20;
  win.seq_k = 10;
  win.mask = MaskKind::kSlidingWindow;
  win.window_left = 3;
  win.window_right = 2;
  Problem pw(win);
  const Routing wr = random_routing(20, 4, 2, 5);
  EXPECT_EQ(moh->supports(pw.params, wr.view()).code(), StatusCode::kUnsupported);
  EXPECT_TRUE(moh->supports(pw.params).ok());  // the dense forward takes it

  // Router: logits of the wrong width, a missing mix, NaN.
  const MoHConfig c{4, 1, 2};
  Tensor ls(DType::kF32, {3, 1}), lr(DType::kF32, {3, 3}), lm(DType::kF32, {3, 2}),
      bad(DType::kF32, {3, 2});
  fill_uniform(ls, 1);
  fill_uniform(lr, 2);
  fill_uniform(lm, 3);
  Routing out{Tensor(DType::kI32, {3, 3}), Tensor(DType::kF32, {3, 3})};
  EXPECT_TRUE(route_mixture_of_heads(c, {ls.view(), lr.view(), lm.view()}, out.view()).ok());
  EXPECT_EQ(route_mixture_of_heads(c, {ls.view(), bad.view(), lm.view()}, out.view()).code(),
            StatusCode::kShapeMismatch);
  EXPECT_EQ(route_mixture_of_heads(c, {ls.view(), lr.view(), {}}, out.view()).code(),
            StatusCode::kNullPointer);
  lr.set(4, std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(route_mixture_of_heads(c, {ls.view(), lr.view(), lm.view()}, out.view()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(route_mixture_of_heads({4, 1, 5}, {ls.view(), lr.view(), lm.view()}, out.view()).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qwen3vl::testing
