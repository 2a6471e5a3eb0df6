// The bench's output: a table with a footer that says how each column was measured, or JSON.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "run_case.hpp"

namespace qwen3vl::bench {

struct ReportContext {
  std::vector<std::pair<std::string, SgemmRate>> sgemm;  // per device name
  int repeats = 0;
  int sampled_rows = 0;
  bool has_vision = false;
};

void print_table(std::ostream& os, const std::vector<CaseResult>& results,
                 const ReportContext& context);

// One JSON array of objects with the fields variant, device, dtype, batch, seq_q, seq_k, heads,
// kv_heads, head_dim, causal, threads, ms, gflops, sgemm_gflops, ratio_to_sgemm, max_rel_err,
// workspace_bytes, isa, sgemm_source (non-finite numbers are null).
void print_json(std::ostream& os, const std::vector<CaseResult>& results);

}  // namespace qwen3vl::bench
