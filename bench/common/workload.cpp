#include "workload.hpp"

#include <algorithm>

namespace qwen3vl::bench {

testing::ProblemSpec text_prefill_spec(int64_t n, bool causal, DType dtype) {
  testing::ProblemSpec s;
  s.batch = 1;
  s.seq_q = s.seq_k = n;
  s.heads = kTextHeads;
  s.kv_heads = kTextKvHeads;
  s.head_dim = kTextHeadDim;
  s.dtype = dtype;
  s.mask = causal ? MaskKind::kCausal : MaskKind::kNone;
  s.seed = kBenchSeed;
  return s;
}

testing::ProblemSpec vision_frames_spec(int64_t frames, int64_t patches, DType dtype) {
  testing::ProblemSpec s;
  s.batch = frames;
  s.seq_q = s.seq_k = patches;
  s.heads = s.kv_heads = kVisionHeads;
  s.head_dim = kVisionHeadDim;
  s.dtype = dtype;
  s.mask = MaskKind::kNone;
  s.varlen_q.assign(static_cast<size_t>(frames), static_cast<int32_t>(patches));
  s.varlen_k = s.varlen_q;
  s.seed = kBenchSeed;
  return s;
}

namespace {

std::string text_label(int64_t n, bool causal) {
  return "text_n" + std::to_string(n) + (causal ? "_causal" : "");
}

WorkloadCase vision_case(DType dtype) {
  return {"vision_" + std::to_string(kVisionFrames) + "x" + std::to_string(kVisionPatches),
          vision_frames_spec(kVisionFrames, kVisionPatches, dtype)};
}

}  // namespace

std::vector<WorkloadCase> qwen3vl_workload(DType dtype) {
  std::vector<WorkloadCase> cases;
  for (int64_t n : {1024, 4096})
    cases.push_back({text_label(n, true), text_prefill_spec(n, true, dtype)});
  cases.push_back(vision_case(dtype));
  return cases;
}

std::vector<WorkloadCase> qwen3vl_micro_workload(DType dtype) {
  std::vector<WorkloadCase> cases;
  for (int64_t n : {1024, 4096})
    for (bool causal : {true, false})
      cases.push_back({text_label(n, causal), text_prefill_spec(n, causal, dtype)});
  cases.push_back(vision_case(dtype));
  return cases;
}

std::string shape_string(const testing::ProblemSpec& s) {
  std::string text;
  if (!s.varlen_q.empty()) {
    const bool uniform = s.varlen_q == s.varlen_k &&
                         std::equal(s.varlen_q.begin() + 1, s.varlen_q.end(), s.varlen_q.begin());
    text = uniform
               ? std::to_string(s.varlen_q.size()) + "x" + std::to_string(s.varlen_q[0]) + " packed"
               : std::to_string(s.varlen_q.size()) + " packed segments";
  } else {
    text = "B" + std::to_string(s.batch) + " L" + std::to_string(s.seq_q);
    if (s.seq_k != s.seq_q) text += "/" + std::to_string(s.seq_k);
  }
  text += " H" + std::to_string(s.heads);
  if (s.kv_heads != s.heads) text += "/" + std::to_string(s.kv_heads);
  text += " D" + std::to_string(s.head_dim);
  if (s.mask != MaskKind::kNone) text += std::string(" ") + to_string(s.mask);
  return text;
}

}  // namespace qwen3vl::bench
