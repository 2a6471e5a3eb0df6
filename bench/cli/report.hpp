// The prefill routine's output: a table with a footer that says how each column was measured, and
// the rows of the report (bench/common/report.hpp) that --json / --csv write.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/report.hpp"
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

// One report row per result with the fields variant, device, dtype, batch, seq_q, seq_k, heads,
// kv_heads, head_dim, causal, threads, ms, gflops, sgemm_gflops, ratio_to_sgemm, max_rel_err,
// workspace_bytes, isa, sgemm_source (non-finite numbers are null).
void add_rows(Report* report, const std::vector<CaseResult>& results);

}  // namespace qwen3vl::bench
