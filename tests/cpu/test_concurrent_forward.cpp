// One CPU attention object, several caller threads: forward() is const and must be reentrant.
// Each call brings its own workspace and output; they share the object's oneTBB arena, whose
// thread slots index the workspace (an arena of 1 thread still has 2 slots: a second caller runs
// as slot 1 and can execute the first call's tasks).
#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "qwen3vl/selector/selector.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

using testing::Problem;
using testing::ProblemSpec;

constexpr int kCallers = 4;
constexpr int kCallsEach = 8;

void expect_reentrant(Variant variant, int threads) {
  AttentionConfig config;
  config.variant = variant;
  config.cpu.num_threads = threads;
  config.num_heads = 4;
  config.num_kv_heads = 2;
  config.head_dim = 64;
  config.mixture_of_heads.num_shared_heads = 2;  // without a routing: every head, gate 1
  config.mixture_of_heads.top_k = 2;
  const auto attention = Selector::create(config);

  ProblemSpec spec;
  spec.seq_q = spec.seq_k = 301;  // several query blocks per head, a partial last one
  spec.mask = MaskKind::kCausal;
  // One problem per caller (same inputs): each owns its output and workspace.
  std::vector<Problem> problems;
  for (int c = 0; c < kCallers + 1; ++c) problems.emplace_back(spec);
  Problem& expected = problems.back();
  attention->run(expected.params);
  const size_t bytes = static_cast<size_t>(expected.out.numel()) * sizeof(float);

  std::vector<int> mismatches(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      Problem& mine = problems[static_cast<size_t>(c)];
      std::vector<char> ws(attention->workspace_size(mine.params));
      for (int call = 0; call < kCallsEach; ++call) {
        const Status s = attention->forward(mine.params, Workspace{ws.data(), ws.size()});
        if (!s.ok() || std::memcmp(mine.out.data<float>(), expected.out.data<float>(), bytes) != 0)
          ++mismatches[static_cast<size_t>(c)];
      }
    });
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c)
    EXPECT_EQ(mismatches[static_cast<size_t>(c)], 0)
        << to_string(variant) << " threads " << threads << " caller " << c;
}

TEST(ConcurrentForward, EveryCpuVariantIsReentrant) {
  for (Variant v : {Variant::kStandard, Variant::kFlash2, Variant::kStaticSparse,
                    Variant::kDynamicSparse, Variant::kLinear, Variant::kMixtureOfHeads})
    for (int threads : {1, 2}) expect_reentrant(v, threads);
}

}  // namespace
}  // namespace qwen3vl
