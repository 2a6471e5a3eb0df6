// The plan/run contract for every CPU variant: forward() and the host run() validate and plan a
// problem exactly once, run() with a reused plan does neither (and computes the same output), a
// plan of another object or params that differ from the planned ones are typed errors, and a
// selector-made flash2 object gives mixture-of-heads its gathered-rows fast path.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mixture_of_heads/moh_support.hpp"
#include "qwen3vl/core/debug_counters.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "qwen3vl/variants/static_sparse.hpp"
#include "support/block_layouts.hpp"
#include "support/cpu_variants.hpp"

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;

// Counts validate() and plan() calls over `body`.
struct Counts {
  uint64_t validations = 0, plans = 0;
};
Counts count(const std::function<void()>& body) {
  const uint64_t v = detail::validation_count(), p = detail::plan_count();
  body();
  return Counts{detail::validation_count() - v, detail::plan_count() - p};
}

// One variant under test: how to build it and what extra a problem needs.
struct Case {
  std::string name;
  std::function<std::unique_ptr<Attention>()> make;
  ProblemSpec spec;
  bool layout = false;  // attach a block layout (block-sparse)
};

std::vector<Case> cases() {
  const CpuOptions o = testing::cpu_options(CpuIsa::kAuto, 2);
  ProblemSpec causal;
  causal.seq_q = causal.seq_k = 40;
  causal.mask = MaskKind::kCausal;
  causal.with_lse = true;
  std::vector<Case> all;
  all.push_back({"standard",
                 [o] {
                   std::unique_ptr<Attention> a;
                   throw_if_error(create_standard_cpu(o, &a));
                   return a;
                 },
                 causal});
  all.push_back({"flash2",
                 [o] {
                   std::unique_ptr<Attention> a;
                   throw_if_error(create_flash2_cpu(o, &a));
                   return a;
                 },
                 causal});
  all.push_back({"block_sparse",
                 [o] {
                   std::unique_ptr<Attention> a;
                   throw_if_error(create_block_sparse_cpu(o, &a));
                   return a;
                 },
                 causal, true});
  all.push_back({"static_sparse",
                 [o] {
                   std::unique_ptr<Attention> a;
                   StaticSparseConfig c;
                   c.block = 16;
                   throw_if_error(create_static_sparse_cpu(o, c, &a));
                   return a;
                 },
                 causal});
  for (DynamicSparseMethod m : {DynamicSparseMethod::kBlockTopK, DynamicSparseMethod::kExactTopK})
    all.push_back({std::string("dynamic_sparse ") + to_string(m),
                   [o, m] {
                     std::unique_ptr<Attention> a;
                     DynamicSparseConfig c;
                     c.method = m;
                     c.block_q = c.block_k = 16;
                     c.top_k_blocks = 1;
                     c.top_k = 8;
                     throw_if_error(create_dynamic_sparse_cpu(o, c, &a));
                     return a;
                   },
                   causal});
  ProblemSpec linear = causal;
  linear.with_lse = false;
  all.push_back({"linear",
                 [o] {
                   std::unique_ptr<Attention> a;
                   throw_if_error(create_linear_cpu(o, LinearConfig{}, &a));
                   return a;
                 },
                 linear});
  all.push_back({"moh",
                 [o] {
                   std::unique_ptr<Attention> a;
                   throw_if_error(create_mixture_of_heads_cpu(o, MoHConfig{4, 1, 2}, &a));
                   return a;
                 },
                 causal});
  return all;
}

// A layout for a 40 x 40 problem in 16 x 16 blocks: the diagonal and the first column.
testing::HostLayout diagonal_layout() {
  return testing::HostLayout(16, 16, {{{0}, {0, 1}, {0, 2}}});
}

std::vector<float> output_of(const Problem& p) {
  std::vector<float> out(static_cast<size_t>(p.out.numel()));
  for (int64_t i = 0; i < p.out.numel(); ++i) out[static_cast<size_t>(i)] = p.out.get(i);
  return out;
}

TEST(PlanRun, ForwardAndHostRunValidateAndPlanOnce) {
  const testing::HostLayout layout = diagonal_layout();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto attn = c.make();
    Problem p(c.spec);
    if (c.layout) p.params.block_layout = layout.layout;
    std::vector<unsigned char> ws(attn->workspace_size(p.params));
    ASSERT_FALSE(ws.empty());
    Status st;
    const Counts forward = count([&] {
      st = attn->forward(p.params, Workspace{ws.data(), ws.size()});
    });
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(forward.validations, 1u);
    EXPECT_EQ(forward.plans, 1u);
    const Counts host = count([&] { attn->run(p.params); });
    EXPECT_EQ(host.validations, 1u);
    EXPECT_EQ(host.plans, 1u);
  }
}

TEST(PlanRun, ReusedPlanNeitherValidatesNorPlans) {
  const testing::HostLayout layout = diagonal_layout();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto attn = c.make();
    Problem p(c.spec);
    if (c.layout) p.params.block_layout = layout.layout;
    attn->run(p.params);
    const std::vector<float> expected = output_of(p);

    // The plan is made from shapes alone: no data pointers for q, k, v, out, lse.
    AttentionParams shapes = p.params;
    for (TensorView* t : {&shapes.q, &shapes.k, &shapes.v, &shapes.out, &shapes.lse})
      t->data = nullptr;
    AttentionPlan plan;
    const Counts planning = count([&] { ASSERT_TRUE(attn->plan(shapes, &plan).ok()); });
    EXPECT_EQ(planning.validations, 1u);
    EXPECT_EQ(planning.plans, 1u);
    EXPECT_EQ(plan.variant, attn->variant());
    EXPECT_FALSE(plan.reason.empty());
    std::vector<unsigned char> ws(plan.workspace_bytes);
    for (int call = 0; call < 2; ++call) {
      Problem again(c.spec);  // same shapes, other buffers
      if (c.layout) again.params.block_layout = layout.layout;
      Status st;
      const Counts run = count([&] {
        st = attn->run(plan, again.params, Workspace{ws.data(), ws.size()});
      });
      ASSERT_TRUE(st.ok()) << st.to_string();
      EXPECT_EQ(run.validations, 0u);
      EXPECT_EQ(run.plans, 0u);
      EXPECT_EQ(output_of(again), expected);
    }
    // Null data at run time is refused there.
    EXPECT_EQ(attn->run(plan, shapes, Workspace{ws.data(), ws.size()}).code(),
              StatusCode::kNullPointer);
  }
}

TEST(PlanRun, ForeignPlansAndMismatchedParamsAreTypedErrors) {
  const testing::HostLayout layout = diagonal_layout();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto attn = c.make();
    const auto other = c.make();
    Problem p(c.spec);
    if (c.layout) p.params.block_layout = layout.layout;
    AttentionPlan plan;
    ASSERT_TRUE(other->plan(p.params, &plan).ok());
    std::vector<unsigned char> ws(plan.workspace_bytes);
    const Workspace w{ws.data(), ws.size()};
    Status st = attn->run(plan, p.params, w);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("another attention object"), std::string::npos) << st.message();
    EXPECT_EQ(attn->run(AttentionPlan(), p.params, w).code(), StatusCode::kInvalidArgument);

    ASSERT_TRUE(attn->plan(p.params, &plan).ok());
    ProblemSpec longer = c.spec;
    longer.seq_q = longer.seq_k = c.spec.seq_q + 8;
    Problem q(longer);
    if (c.layout) q.params.block_layout = layout.layout;
    st = attn->run(plan, q.params, w);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("params.q.shape"), std::string::npos) << st.message();
    AttentionParams window = p.params;
    window.mask = MaskKind::kCausalTopLeft;
    st = attn->run(plan, window, w);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("params.mask"), std::string::npos) << st.message();
    EXPECT_EQ(attn->run(plan, p.params, Workspace{ws.data(), ws.size() / 2}).code(),
              StatusCode::kWorkspaceTooSmall);
    // A reused plan's new pointers get validate()'s pointer checks: out over q is refused and
    // out stays as it was.
    AttentionParams aliased = p.params;
    aliased.out.data = aliased.q.data;
    const auto q_values = [&p] {
      std::vector<float> v(static_cast<size_t>(p.q.numel()));
      for (int64_t i = 0; i < p.q.numel(); ++i) v[static_cast<size_t>(i)] = p.q.get(i);
      return v;
    };
    const std::vector<float> q_before = q_values();
    st = attn->run(plan, aliased, w);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
    EXPECT_NE(st.message().find("out.data"), std::string::npos) << st.message();
    EXPECT_EQ(q_values(), q_before);
  }
}

// Routed mixture-of-heads: one validation and one plan per forward, none for a reused plan.
TEST(PlanRun, RoutedMixtureOfHeadsPlansOnce) {
  std::unique_ptr<MixtureOfHeadsAttention> moh;
  ASSERT_TRUE(create_mixture_of_heads_cpu(testing::cpu_options(), MoHConfig{4, 1, 2}, &moh).ok());
  ProblemSpec spec;
  spec.seq_q = spec.seq_k = 40;
  spec.mask = MaskKind::kCausal;
  Problem p(spec);
  const testing::Routing r = testing::random_routing(40, 4, 2, 7);
  std::vector<unsigned char> ws(moh->workspace_size(p.params));
  const Workspace w{ws.data(), ws.size()};
  const Counts forward = count([&] { ASSERT_TRUE(moh->forward(p.params, r.view(), w).ok()); });
  EXPECT_EQ(forward.validations, 1u);
  EXPECT_EQ(forward.plans, 1u);
  AttentionPlan plan;
  ASSERT_TRUE(moh->plan(p.params, &plan).ok());
  const Counts run = count([&] { ASSERT_TRUE(moh->run(plan, p.params, r.view(), w).ok()); });
  EXPECT_EQ(run.validations, 0u);
  EXPECT_EQ(run.plans, 0u);
}

// The selector hands out the flash2 object itself (no wrapper), so mixture-of-heads recognises it
// and takes the gathered-rows pass; describe() still tells the selector's reason.
TEST(PlanRun, SelectorFlash2GivesMixtureOfHeadsItsFastPath) {
  AttentionConfig config;
  config.variant = Variant::kFlash2;
  config.cpu = testing::cpu_options();
  std::unique_ptr<Attention> flash2 = Selector::create(config, 3);
  EXPECT_NE(flash2->describe().find("layer 3: requested flash2"), std::string::npos)
      << flash2->describe();
  std::unique_ptr<MixtureOfHeadsAttention> moh;
  ASSERT_TRUE(create_mixture_of_heads(std::move(flash2), MoHConfig{4, 1, 2}, &moh).ok());
  EXPECT_NE(moh->describe().find("one gathered-rows pass"), std::string::npos) << moh->describe();
}

}  // namespace
}  // namespace qwen3vl
