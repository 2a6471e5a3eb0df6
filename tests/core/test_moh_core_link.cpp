// Linked against qwen3vl::attention_core alone (no CPU backend): the routed mixture-of-heads entry
// points (supports / forward / run with a HeadRouting) and the routing checks are core's, so a
// program that links only the CUDA library, which builds on core, finds them. Before they moved
// there, this executable failed to link.
#include <gtest/gtest.h>

#include <vector>

#include "qwen3vl/variants/mixture_of_heads.hpp"

namespace qwen3vl {
namespace {

// A backend stand-in: records what the routed entry points call.
class RecordingMoH final : public MixtureOfHeadsAttention {
 public:
  using MixtureOfHeadsAttention::run;
  Variant variant() const override { return Variant::kMixtureOfHeads; }
  Device device() const override { return Device::kCPU; }
  const MoHConfig& config() const override { return config_; }
  Status run(const AttentionPlan& plan, const AttentionParams& params, const HeadRouting& routing,
             Workspace workspace, void* stream) const override {
    QWEN3VL_RETURN_IF_ERROR(check_run(plan, params, workspace));
    QWEN3VL_RETURN_IF_ERROR(check_routing(plan, params, routing));
    (void)stream;
    ++routed_runs;
    return Status();
  }
  mutable int routed_runs = 0;

 protected:
  std::string description() const override { return "recording moh"; }
  Status make_plan(const AttentionParams&, AttentionPlan* plan) const override {
    plan->workspace_bytes = 16;
    return Status();
  }
  Status launch(const AttentionPlan&, const AttentionParams&, Workspace, void*) const override {
    return Status();
  }
  Status check_routing(const AttentionPlan& plan, const AttentionParams&,
                       const HeadRouting& routing) const override {
    return validate_head_routing(routing, plan.shape.max_q, config_.num_heads);
  }

 private:
  MoHConfig config_{2, 0, 1};
};

TEST(MoHCoreLink, RoutedEntryPointsLinkWithCoreAlone) {
  const int64_t tokens = 4, heads = 2, d = 8;
  std::vector<float> q(tokens * heads * d, 0.5f), k(q), v(q), out(q.size());
  AttentionParams p;
  p.q = TensorView::contiguous(q.data(), DType::kF32, {1, tokens, heads, d});
  p.k = TensorView::contiguous(k.data(), DType::kF32, {1, tokens, heads, d});
  p.v = TensorView::contiguous(v.data(), DType::kF32, {1, tokens, heads, d});
  p.out = TensorView::contiguous(out.data(), DType::kF32, {1, tokens, heads, d});
  std::vector<int32_t> index = {0, 1, 1, 0};
  std::vector<float> weight(tokens, 1.0f);
  HeadRouting r;
  r.head_index = TensorView::contiguous(index.data(), DType::kI32, {tokens, 1});
  r.head_weight = TensorView::contiguous(weight.data(), DType::kF32, {tokens, 1});

  RecordingMoH moh;
  EXPECT_TRUE(moh.supports(p, r).ok());
  std::vector<unsigned char> ws(16);
  const Status st = moh.forward(p, r, Workspace{ws.data(), ws.size()});
  EXPECT_TRUE(st.ok()) << st.to_string();
  moh.run(p, r);
  EXPECT_EQ(moh.routed_runs, 2);
  index[2] = 5;  // a head outside 0..1: the routing check (core's) refuses it
  EXPECT_EQ(moh.supports(p, r).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qwen3vl
