// The Qwen3-VL attention shapes the benchmarks run, as seeded random problem specs
// (testing::ProblemSpec from tests/support/problem.hpp: values U(-1, 1), never zeros).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/problem.hpp"

namespace qwen3vl::bench {

// Qwen3-VL text decoder attention (GQA) and vision encoder attention.
constexpr int64_t kTextHeads = 32, kTextKvHeads = 8, kTextHeadDim = 128;
constexpr int64_t kVisionHeads = 16, kVisionHeadDim = 72;
// A packed video clip: 8 frames at 512x512 with 16-pixel patches and temporal patch 2 give 4 frame
// groups of 32 x 32 = 1024 patches; each group is one cu_seqlens segment (block-diagonal
// attention).
constexpr int64_t kVisionFrames = 4, kVisionPatches = 1024;
constexpr uint64_t kBenchSeed = 2024;

struct WorkloadCase {
  std::string label;  // short name, e.g. "text_n1024_causal"
  testing::ProblemSpec spec;
};

// Text prefill: B = 1, Hq 32 / Hkv 8, D 128, Lq = Lk = n.
testing::ProblemSpec text_prefill_spec(int64_t n, bool causal, DType dtype);
// Vision: `frames` segments of `patches` tokens packed through cu_seqlens, 16 heads, D 72, no mask.
testing::ProblemSpec vision_frames_spec(int64_t frames, int64_t patches, DType dtype);

// The default workload: text prefill at 1024 and 4096 (causal) and the packed vision clip.
std::vector<WorkloadCase> qwen3vl_workload(DType dtype);
// The same plus the non-causal text shapes, for kernel developers.
std::vector<WorkloadCase> qwen3vl_micro_workload(DType dtype);

// "B1 L1024 H32/8 D128 causal" or "4x1024 packed H16 D72".
std::string shape_string(const testing::ProblemSpec& spec);

}  // namespace qwen3vl::bench
