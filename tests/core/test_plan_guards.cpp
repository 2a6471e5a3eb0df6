// Regression tests of what run() checks of a plan: its maker by id (not by address), the values of
// host index tensors that plan() read, outputs disjoint from every tensor read (additive mask and
// index tensors included), and a signature check that allocates nothing when params match.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "support/cpu_variants.hpp"
#include "support/problem.hpp"

// This test binary's allocator. It counts operator new calls while `counting` is set, and while
// `recycling` is set it hands a freed block back to the next request of the same size, last freed
// first (as a size-class allocator does), so that an object made right after another is destroyed
// lands at that one's address.
namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
std::atomic<bool> recycling{false};
std::mutex blocks_mutex;  // the arrays below (TBB's threads may allocate too)
struct Block {
  void* p;
  std::size_t bytes;
};
constexpr int kBlocks = 512;
Block live[kBlocks];   // blocks made while recycling, by address
Block freed[kBlocks];  // their freed blocks, kept for reuse
int live_count = 0, freed_count = 0;

void* recycled_block(std::size_t bytes) {
  for (int i = freed_count - 1; i >= 0; --i)
    if (freed[i].bytes == bytes) {
      void* p = freed[i].p;
      freed[i] = freed[--freed_count];
      return p;
    }
  return nullptr;
}

bool keep_freed(void* p) {
  for (int i = 0; i < live_count; ++i)
    if (live[i].p == p) {
      if (freed_count == kBlocks) return false;
      freed[freed_count++] = live[i];
      live[i] = live[--live_count];
      return true;
    }
  return false;
}
}  // namespace

void* operator new(std::size_t bytes) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  if (!recycling.load()) {
    if (void* p = std::malloc(bytes ? bytes : 1)) return p;
    throw std::bad_alloc();
  }
  std::lock_guard<std::mutex> lock(blocks_mutex);
  void* p = recycled_block(bytes);
  if (!p) p = std::malloc(bytes ? bytes : 1);
  if (!p) throw std::bad_alloc();
  if (live_count < kBlocks) live[live_count++] = Block{p, bytes};
  return p;
}
void operator delete(void* p) noexcept {
  if (recycling.load()) {
    std::lock_guard<std::mutex> lock(blocks_mutex);
    if (keep_freed(p)) return;
  }
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;

std::unique_ptr<Attention> flash2() {
  return testing::make_cpu(&create_flash2_cpu, CpuIsa::kAuto, 2);
}

// An object allocated where a destroyed one lived must not take that one's plans. The recycling
// allocator puts the second object at the first one's address.
TEST(PlanGuards, PlanOfADestroyedObjectIsRefusedByOneAtItsAddress) {
  Problem p(testing::problem_spec(16, 16, 4, 2, 32, MaskKind::kCausal, 3));
  AttentionPlan plan;
  const void* address = nullptr;
  uint64_t id = 0;
  recycling = true;
  {
    const auto first = flash2();
    ASSERT_TRUE(first->plan(p.params, &plan).ok());
    address = first.get();
    id = first->id();
  }
  const auto second = flash2();
  recycling = false;
  ASSERT_EQ(second.get(), address) << "the allocator did not reuse the address";
  EXPECT_NE(second->id(), id);
  std::vector<unsigned char> ws(plan.workspace_bytes);
  const Status st = second->run(plan, p.params, Workspace{ws.data(), ws.size()});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("another attention object"), std::string::npos) << st.message();
}

// cu_seqlens rewritten in place between plan() and run(): the plan's sequence maxima and tiles
// came from the old values, so run() refuses, naming the tensor.
TEST(PlanGuards, HostIndexValuesRewrittenInPlaceAreRefused) {
  ProblemSpec spec = testing::problem_spec(0, 0, 4, 2, 32, MaskKind::kCausal, 5);
  spec.varlen_q = {5, 3};
  spec.varlen_k = {5, 3};
  Problem p(spec);
  const auto attn = flash2();
  AttentionPlan plan;
  ASSERT_TRUE(attn->plan(p.params, &plan).ok());
  std::vector<unsigned char> ws(plan.workspace_bytes);
  const Workspace w{ws.data(), ws.size()};
  ASSERT_TRUE(attn->run(plan, p.params, w).ok());

  p.cu_q.data<int32_t>()[1] = 4;  // same pointer, other values
  Status st = attn->run(plan, p.params, w);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("cu_seqlens_q"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("values changed"), std::string::npos) << st.message();
  p.cu_q.data<int32_t>()[1] = 5;  // restored: the plan fits again
  EXPECT_TRUE(attn->run(plan, p.params, w).ok());

  p.cu_k.data<int32_t>()[1] = 4;
  st = attn->run(plan, p.params, w);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("cu_seqlens_k"), std::string::npos) << st.message();
}

TEST(PlanGuards, KeyLengthsRewrittenInPlaceAreRefused) {
  ProblemSpec spec = testing::problem_spec(8, 12, 4, 2, 32, MaskKind::kNone, 6, 2);
  spec.key_lengths = {12, 7};
  Problem p(spec);
  const auto attn = testing::make_cpu(&create_standard_cpu, CpuIsa::kAuto, 2);
  AttentionPlan plan;
  ASSERT_TRUE(attn->plan(p.params, &plan).ok());
  std::vector<unsigned char> ws(plan.workspace_bytes);
  p.key_len.data<int32_t>()[1] = 9;
  const Status st = attn->run(plan, p.params, Workspace{ws.data(), ws.size()});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("key_lengths"), std::string::npos) << st.message();
}

// lse over the additive mask or over key_lengths: both are read while lse is written, so
// validate() (forward, plan with data) and run() (a reused plan's new pointers) refuse it.
TEST(PlanGuards, OutputsOverAdditiveMaskOrIndexTensorsAreRefused) {
  ProblemSpec spec = testing::problem_spec(8, 8, 2, 2, 32, MaskKind::kNone, 7, 1);
  spec.additive_mask = true;  // [1, 1, 8, 8] f32: 64 floats, lse [1, 2, 8]: 16 floats
  Problem p(spec);
  const auto attn = testing::make_cpu(&create_standard_cpu, CpuIsa::kAuto, 2);
  AttentionPlan plan;
  ASSERT_TRUE(attn->plan(p.params, &plan).ok());
  std::vector<unsigned char> ws(plan.workspace_bytes);
  const Workspace w{ws.data(), ws.size()};

  AttentionParams over_mask = p.params;
  over_mask.lse.data = p.mask.data<float>() + 8;
  const std::vector<float> mask_before(p.mask.data<float>(), p.mask.data<float>() + 64);
  for (const Status& st :
       {attn->run(plan, over_mask, w), attn->forward(over_mask, w), validate(over_mask)}) {
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
    EXPECT_NE(st.message().find("overlaps additive_mask"), std::string::npos) << st.message();
  }
  EXPECT_EQ(std::vector<float>(p.mask.data<float>(), p.mask.data<float>() + 64), mask_before);

  // key_lengths inside the memory lse would write: one buffer, the lengths at its start.
  ProblemSpec padded = testing::problem_spec(8, 8, 2, 2, 32, MaskKind::kNone, 8, 2);
  padded.key_lengths = {8, 5};
  Problem k(padded);
  std::vector<float> shared(static_cast<size_t>(k.lse.numel()), 0.0f);
  int32_t lengths[2] = {8, 5};
  std::memcpy(shared.data(), lengths, sizeof lengths);
  AttentionParams over_lengths = k.params;
  over_lengths.key_lengths.data = shared.data();
  over_lengths.lse.data = shared.data();
  const Status st = attn->forward(over_lengths, w);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("overlaps key_lengths"), std::string::npos) << st.message();
  int32_t after[2];
  std::memcpy(after, shared.data(), sizeof after);
  EXPECT_EQ(after[0], 8);
  EXPECT_EQ(after[1], 5);
}

// run()'s signature check allocates nothing when the params match (every tensor slot walked,
// host index tensors hashed); a mismatch still gets its message.
TEST(PlanGuards, SignatureCheckAllocatesNothingOnAMatch) {
  ProblemSpec spec = testing::problem_spec(0, 0, 4, 2, 32, MaskKind::kCausal, 9);
  spec.varlen_q = {5, 3};
  spec.varlen_k = {6, 4};
  Problem p(spec);
  const detail::ProblemSignature planned = detail::signature_of(p.params);
  counting = true;
  allocations = 0;
  const Status st = detail::check_signature(planned, p.params);
  counting = false;
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(allocations.load(), 0);
  AttentionParams other = p.params;
  other.softcap = 2.0f;
  const Status differs = detail::check_signature(planned, other);
  EXPECT_EQ(differs.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(differs.message().find("params.softcap"), std::string::npos) << differs.message();
}

}  // namespace
}  // namespace qwen3vl
