// One benchmark case: a (variant, device) on one problem, timed, checked and measured.
#pragma once

#include <cstdint>
#include <string>

#include "common/sgemm.hpp"
#include "common/workload.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "variant_inputs.hpp"

namespace qwen3vl::bench {

struct Target {
  Variant variant;
  Device device;
};

struct RunSettings {
  int threads = 1;  // resolved (never 0)
  CpuIsa isa = CpuIsa::kAuto;
  int repeats = 5;
  int sampled_rows = 32;
  VariantFlags variant;  // block_sparse layout, moh routing
};

struct CaseResult {
  std::string label;  // the workload case
  std::string variant, device, arch, dtype, shape;
  int64_t batch = 0, seq_q = 0, seq_k = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool causal = false;
  int threads = 0;  // 0 on a GPU
  double ms = 0, gflops = 0, sgemm_gflops = 0, ratio_to_sgemm = 0, max_rel_err = 0;
  size_t workspace_bytes = 0;
  std::string sgemm_source;
  bool accurate = false;  // max_rel_err within testing::tolerance(dtype)
};

// The config Selector::create gets for a target and problem.
AttentionConfig make_config(const Target& target, const testing::ProblemSpec& spec,
                            const RunSettings& settings);

// Creates the target through the selector, runs `problem` (whose output it overwrites) with the
// inputs its variant needs, checks it (variant_inputs.hpp says against what), and fills `result`.
// kUnsupported means the variant does not take this problem here (the caller skips it).
Status run_case(const Target& target, const WorkloadCase& workload, testing::Problem* problem,
                const RunSettings& settings, const SgemmRate& sgemm, CaseResult* result);

}  // namespace qwen3vl::bench
