// Accuracy of a benchmark run: a sample of output rows against the float64 reference
// (reference::attention_row), cheap enough for shapes where the full reference would take minutes.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "qwen3vl/core/params.hpp"

namespace qwen3vl::bench {

struct RowIndex {
  int64_t b, h, i;  // sequence, query head, query row
};

// `count` rows spread over sequences, heads and positions: the first row of the first sequence and
// head, the last row of the last non-empty sequence and head, and seeded picks in between at
// evenly spaced positions.
std::vector<RowIndex> sample_rows(const AttentionParams& p, int count, uint64_t seed);

// max over the sampled rows of ||out_row - want_row|| / ||want_row|| (the absolute norm where the
// expected row is 0, i.e. a fully masked row), `want` writing a row's float64 expectation
// (head_dim values). +inf if any output element anywhere is NaN or Inf. Needs host-resident params.
double sampled_error(const AttentionParams& p, int count, uint64_t seed,
                     const std::function<void(const RowIndex&, double*)>& want);

// sampled_error against the dense float64 reference (reference::attention_row).
double sampled_max_relative_error(const AttentionParams& p, int count = 32, uint64_t seed = 7);

}  // namespace qwen3vl::bench
