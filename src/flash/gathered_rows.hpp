// CPU flash2's gathered-rows mode, the host counterpart of the CUDA kernel's (GatheredQueries in
// cuda/common/kernel_args.hpp): every query head brings its own list of rows (mixture-of-heads
// computes only the rows routed to a head), and one forward runs them all against the problem's
// own K/V. Tasks are (head run, sequence, block of the run's rows of the sequence); the tile code
// is flash2's, only the rows' indices, positions and output scale differ. Unlike CUDA, the rows
// are not copied: a tile reads q rows in place and writes gate x O (and LSE) to out in place.
#pragma once

#include <cstdint>

#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::detail {

// Query head h's rows, at h * rows + j for its j-th row (`rows`: the capacity per head), in
// sequence order: sequence b's are j = cu_rows[h * (batch + 1) + b] .. cu_rows[h * (batch + 1) +
// b + 1] - 1. For each: `row`, its index in sequence b (q/out/lse row i of b); `positions`, its key
// position (as q_positions; non-decreasing within a sequence; null: every row sees all valid
// keys); `gate`, the factor its output is written with.
//
// Heads are computed in runs: run r is heads [run_begin[r], run_begin[r + 1]), all of one KV group
// and with the same rows (cu_rows, row and positions are read from the run's first head; gates
// from each head), so a tile holds (row, head) pairs of the run and converts each K/V block once
// for all of them, as dense flash2 does for a group. run_begin = null: one head per run.
struct Flash2GatheredRows {
  const int32_t* row = nullptr;
  const float* gate = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* cu_rows = nullptr;
  int64_t rows = 0;
  const int32_t* run_begin = nullptr;  // [runs + 1], run_begin[0] = 0, run_begin[runs] = heads
  int64_t runs = 0;
};

// Whether `attention` is a CPU flash2 object (create_flash2_cpu), which the functions below take.
bool is_flash2_cpu(const Attention& attention);

// One-off forms of the two below (plan, then run), for tests.
size_t flash2_gathered_workspace_size(const Attention& flash2, const AttentionParams& p);
Status flash2_forward_gathered(const Attention& flash2, const AttentionParams& p,
                               const Flash2GatheredRows& g, Workspace ws);

// Plans `flash2` over gathered query rows of a validated problem of this shape (the plan's
// workspace_bytes is the workspace flash2_run_gathered() needs).
Status flash2_plan_gathered(const Attention& flash2, const AttentionShape& shape,
                            AttentionPlan* plan);

// One parallel forward of `flash2` over every head's gathered rows `g` of `p`, with a plan of
// flash2_plan_gathered() for p's shape, where p passed flash2's plan() and carries no block layout
// or additive mask: writes gate x O (and LSE) to the gathered rows of p.out (p.lse) and nothing
// else; p.q_positions is not read.
Status flash2_run_gathered(const Attention& flash2, const AttentionPlan& plan,
                           const AttentionParams& p, const Flash2GatheredRows& g, Workspace ws);

}  // namespace qwen3vl::detail
