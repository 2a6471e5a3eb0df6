// DecodeAttention's plan / run: a plan made from shapes alone (null data) runs real data and
// matches the float64 reference on odd sizes, serves later calls with other pointers and table
// values, is refused for other shapes or by an object of other device facts; forward() validates
// and plans exactly once, run() with a reused plan does neither.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <vector>

#include "decode_problem.hpp"

namespace qwen3vl {
namespace {

using testing::DecodeProblem;
using testing::DecodeSpec;

std::unique_ptr<DecodeAttention> make(int threads = 2) {
  CpuOptions o;
  o.num_threads = threads;
  std::unique_ptr<DecodeAttention> d;
  throw_if_error(create_decode_cpu(o, &d));
  return d;
}

struct Counts {
  uint64_t validations = 0, plans = 0;
};
Counts count(const std::function<void()>& body) {
  const uint64_t v = detail::decode_validation_count(), p = detail::decode_plan_count();
  body();
  return Counts{detail::decode_validation_count() - v, detail::decode_plan_count() - p};
}

// The params with every data pointer null: what a caller knows before memory exists.
DecodeParams shapes_only(DecodeParams p) {
  for (TensorView* t : {&p.q, &p.out, &p.lse, &p.kv.k, &p.kv.v}) t->data = nullptr;
  return p;
}

std::vector<DecodeSpec> odd_specs() {
  std::vector<DecodeSpec> specs;
  DecodeSpec a;  // paged, GQA 3:1, odd head dim, partial blocks, three rows
  a.lens = {37, 5, 70};
  a.rows = 3;
  a.heads = 6;
  a.kv_heads = 2;
  a.head_dim = 40;
  a.seed = 3;
  specs.push_back(a);
  DecodeSpec b = a;  // contiguous f16, forced splits, head dim 17
  b.layout = KvLayout::kContiguous;
  b.kv_dtype = b.q_dtype = DType::kF16;
  b.lens = {513, 1, 300};
  b.rows = 1;
  b.head_dim = 17;
  b.num_splits = 3;
  b.seed = 4;
  specs.push_back(b);
  DecodeSpec c = a;  // bf16 cache, f32 queries, automatic splits over a long sequence
  c.kv_dtype = DType::kBF16;
  c.lens = {1031};
  c.rows = 5;
  c.heads = 5;
  c.kv_heads = 1;
  c.head_dim = 72;
  c.block_size = 32;
  c.seed = 5;
  specs.push_back(c);
  return specs;
}

TEST(DecodePlan, PlanFromShapesRunsRealDataAgainstTheReference) {
  const auto dec = make();
  for (const DecodeSpec& spec : odd_specs()) {
    DecodeProblem p(spec);
    DecodePlan plan;
    ASSERT_TRUE(dec->plan(shapes_only(p.params), &plan).ok()) << spec.to_string();
    EXPECT_EQ(plan.workspace_bytes, dec->workspace_size(p.params)) << spec.to_string();
    EXPECT_EQ(plan.splits, dec->splits(p.params));
    EXPECT_FALSE(plan.reason.empty());
    std::vector<char> ws(plan.workspace_bytes);
    ASSERT_TRUE(dec->run(plan, p.params, Workspace{ws.data(), ws.size()}).ok()) << spec.to_string();
    const testing::DecodeErrors e = testing::decode_errors(p);
    const double tol = spec.q_dtype == DType::kF32 ? 2e-5 : 2e-3;
    EXPECT_LE(e.out, tol) << spec.to_string();
    EXPECT_LE(e.lse, tol) << spec.to_string();
  }
}

// One plan for many calls: other output memory, other (shorter) lengths in the same table shape.
TEST(DecodePlan, OnePlanServesCallsWithOtherPointersAndLengths) {
  const auto dec = make();
  DecodeSpec spec = odd_specs()[0];
  DecodeProblem p(spec);
  DecodePlan plan;
  ASSERT_TRUE(dec->plan(p.params, &plan).ok());
  std::vector<char> ws(plan.workspace_bytes);
  ASSERT_TRUE(dec->run(plan, p.params, Workspace{ws.data(), ws.size()}).ok());
  std::vector<float> first(static_cast<size_t>(p.out.numel()));
  for (int64_t i = 0; i < p.out.numel(); ++i) first[static_cast<size_t>(i)] = p.out.get(i);

  // The next step: other lengths in the same table (the bound max_seq_len is part of the plan).
  const int32_t shorter[] = {30, 5, 33};
  for (int i = 0; i < 3; ++i) p.lens.data<int32_t>()[i] = shorter[i];
  const Counts c = count([&] {
    ASSERT_TRUE(dec->run(plan, p.params, Workspace{ws.data(), ws.size()}).ok());
  });
  EXPECT_EQ(c.validations, 0u);
  EXPECT_EQ(c.plans, 0u);
  EXPECT_LE(testing::decode_errors(p).out, 2e-5);  // the reference reads the new lengths too
  // Same inputs through forward(): the same bits as the planned run.
  DecodeProblem again(spec);
  ASSERT_TRUE(dec->forward(again.params, Workspace{ws.data(), ws.size()}).ok());
  for (int64_t i = 0; i < again.out.numel(); ++i)
    ASSERT_EQ(again.out.get(i), first[static_cast<size_t>(i)]) << "element " << i;
}

TEST(DecodePlan, ValidatesAndPlansOncePerCall) {
  const auto dec = make();
  DecodeProblem p(odd_specs()[0]);
  std::vector<char> ws(dec->workspace_size(p.params));
  Counts c = count([&] {
    ASSERT_TRUE(dec->forward(p.params, Workspace{ws.data(), ws.size()}).ok());
  });
  EXPECT_EQ(c.validations, 1u);
  EXPECT_EQ(c.plans, 1u);
  c = count([&] { ASSERT_TRUE(dec->supports(p.params).ok()); });
  EXPECT_EQ(c.validations, 1u);
  EXPECT_EQ(c.plans, 1u);
  c = count([&] { dec->run(p.params); });
  EXPECT_EQ(c.validations, 1u);
  EXPECT_EQ(c.plans, 1u);
  DecodePlan plan;
  ASSERT_TRUE(dec->plan(p.params, &plan).ok());
  c = count([&] {
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(dec->run(plan, p.params, Workspace{ws.data(), ws.size()}).ok());
  });
  EXPECT_EQ(c.validations, 0u);
  EXPECT_EQ(c.plans, 0u);
  // A refused problem counts its validation, and makes no plan.
  DecodeParams bad = p.params;
  bad.num_splits = -1;
  c = count([&] { EXPECT_FALSE(dec->supports(bad).ok()); });
  EXPECT_EQ(c.validations, 1u);
  EXPECT_EQ(c.plans, 0u);
}

TEST(DecodePlan, RunRefusesWhatThePlanDoesNotCover) {
  const auto dec = make();
  DecodeProblem p(odd_specs()[0]);
  DecodePlan plan;
  ASSERT_TRUE(dec->plan(p.params, &plan).ok());
  std::vector<char> ws(plan.workspace_bytes);
  const Workspace w{ws.data(), ws.size()};

  DecodeParams other = p.params;
  other.kv.max_seq_len -= 1;  // another length bound: another split plan
  Status st = dec->run(plan, other, w);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("kv.max_seq_len"), std::string::npos) << st.to_string();
  other = p.params;
  other.num_splits = 2;
  EXPECT_EQ(dec->run(plan, other, w).code(), StatusCode::kInvalidArgument);
  other = p.params;
  other.q.stride[0] *= 1;  // same strides: accepted
  EXPECT_TRUE(dec->check_plan(plan, other).ok());
  other.out.data = nullptr;
  EXPECT_EQ(dec->run(plan, other, w).code(), StatusCode::kNullPointer);
  other = p.params;
  other.out = p.params.q;  // out over q: the pointer checks run on every call
  EXPECT_EQ(dec->run(plan, other, w).code(), StatusCode::kInvalidArgument);
  // Table values are checked on every call (they change each step).
  DecodeProblem broken(odd_specs()[0]);
  broken.table.data<int32_t>()[0] = 1 << 20;
  EXPECT_EQ(dec->run(plan, broken.params, w).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dec->run(plan, p.params, Workspace{ws.data(), ws.size() / 2}).code(),
            StatusCode::kWorkspaceTooSmall);
  // Another thread count plans other splits and thread slots: its objects refuse this plan.
  EXPECT_EQ(make(3)->run(plan, p.params, w).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(make(2)->run(plan, p.params, w).ok());  // an object of the same facts runs it
  EXPECT_EQ(dec->run(DecodePlan{}, p.params, w).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qwen3vl
