// FLOP counts of attention. Only (query, key) pairs the mask lets through are counted, so a causal
// square problem counts about half of 4 * B * Hq * Lq * Lk * D and skipping masked work is not
// rewarded with inflated rates.
#pragma once

#include <cstdint>

#include "qwen3vl/core/params.hpp"

namespace qwen3vl::bench {

// (query, key) pairs visible under the structural mask and key padding, summed over the sequences
// of one head. Needs host-resident cu_seqlens / key_lengths.
inline int64_t visible_pairs(const AttentionParams& p) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  int64_t pairs = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(p, b);
    for (int64_t i = 0; i < span.q_len; ++i)
      pairs +=
          visible_keys(p.mask, p.window_left, p.window_right, i, span.q_len, span.k_len).size();
  }
  return pairs;
}

// 4 * Hq * D per visible pair: 2 for S = Q K^T and 2 for O = P V.
inline double attention_flops(const AttentionParams& p) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  return 4.0 * static_cast<double>(s.heads) * static_cast<double>(s.head_dim) *
         static_cast<double>(visible_pairs(p));
}

}  // namespace qwen3vl::bench
