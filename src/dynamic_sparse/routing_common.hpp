// What the routers and the exact top-k kernel share: the per-call context, row geometry (aligned
// positions, the keys a block of rows sees), f32 packing of q/k rows, scoring rows against a key
// range, and per-thread slots of the caller's workspace (carved by ../core/workspace_carver.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <tbb/task_arena.h>

#include "qwen3vl/core/params.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "scores.hpp"
#include "src/core/workspace_carver.hpp"

namespace qwen3vl::detail {

// Everything one estimate()/forward() call knows.
struct RoutingCall {
  const AttentionParams* params;
  AttentionShape shape;
  const DynamicSparseConfig* config;
  ScoresFn scores;
  PvFn pv;
  tbb::task_arena* arena;
  int threads;
};

// One scratch slot per worker of the call's arena (slot = this_task_arena::current_thread_index()),
// carved as the carver's slot array.
class ThreadSlots {
 public:
  ThreadSlots(Carver* carver, int threads, size_t slot_bytes)
      : slots_(carver->slots(threads, slot_bytes)) {}
  char* mine() const { return slots_.slot(tbb::this_task_arena::current_thread_index()); }

 private:
  SlotArray slots_;
};

// Key position row i is aligned with (the one causal masks compare keys to).
inline int64_t row_position(const AttentionParams& p, int64_t b, const SequenceSpan& span,
                            int64_t i) {
  if (p.q_positions.present()) {
    const TensorView& qp = p.q_positions;
    return qp.ptr<const int32_t>()[p.varlen() ? (span.q_start + i) * qp.stride[0]
                                              : b * qp.stride[0] + i * qp.stride[1]];
  }
  return p.mask == MaskKind::kCausalTopLeft ? i : i + span.k_len - span.q_len;
}

// Keys some row of [r0, r1) sees (the hull of their ranges; empty if none sees any).
inline KeyRange rows_key_hull(const AttentionParams& p, int64_t b, const SequenceSpan& span,
                              int64_t r0, int64_t r1) {
  KeyRange hull{std::numeric_limits<int64_t>::max(), 0};
  for (int64_t i = r0; i < r1; ++i) {
    const KeyRange r = row_visible_keys(p, b, span, i);
    if (r.size() <= 0) continue;
    hull.begin = std::min(hull.begin, r.begin);
    hull.end = std::max(hull.end, r.end);
  }
  if (hull.end <= hull.begin) return KeyRange{0, 0};
  return hull;
}

// Query block `row` of a sequence: its rows [first, end) (clipped to the sequence) and the keys
// some of them see (empty if none sees any, or the block starts past the sequence).
struct RowBlockKeys {
  int64_t first, end;
  KeyRange hull;
};
inline RowBlockKeys row_block_keys(const AttentionParams& p, int64_t b, const SequenceSpan& span,
                                   int64_t row, int64_t block_q) {
  const int64_t first = row * block_q, end = std::min<int64_t>(first + block_q, span.q_len);
  return {first, end, first < end ? rows_key_hull(p, b, span, first, end) : KeyRange{0, 0}};
}

// rows [i0, i0 + n) of head `head` (tokens of sequence b) as f32 rows of length d, times `scale`.
inline void pack_rows(const AttentionParams& p, const TensorView& t, int64_t b, int64_t start,
                      int64_t i0, int64_t n, int64_t head, int64_t d, float scale, float* dst,
                      int64_t ld) {
  dispatch_float_dtype(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t r = 0; r < n; ++r) {
      const T* src = t.ptr<const T>() + row_offset(t, p.varlen(), b, start, i0 + r, head);
      for (int64_t c = 0; c < d; ++c) dst[r * ld + c] = to_float(src[c]) * scale;
    }
  });
}

// Keys per packed chunk when K is not f32 (f32 K is read in place through its row stride).
constexpr int64_t kKeyChunk = 256;

// s[r * lds + (j - keys.begin)] = q_r . k_j for j in `keys` of KV head kv; q rows packed (ld d).
// `chunk` holds kKeyChunk x d floats (unused for f32 K).
inline void score_keys(const RoutingCall& call, int64_t b, const SequenceSpan& span, int64_t kv,
                       const float* q, int64_t rows, KeyRange keys, float* s, int64_t lds,
                       float* chunk) {
  const AttentionParams& p = *call.params;
  const int64_t d = call.shape.head_dim;
  if (rows == 0 || keys.size() <= 0) return;
  if (p.k.dtype == DType::kF32) {
    const int64_t ldk = p.varlen() ? p.k.stride[0] : p.k.stride[1];
    const float* k0 =
        p.k.ptr<const float>() + row_offset(p.k, p.varlen(), b, span.k_start, keys.begin, kv);
    call.scores(q, rows, d, k0, keys.size(), ldk, d, s, lds);
    return;
  }
  for (int64_t j = keys.begin; j < keys.end; j += kKeyChunk) {
    const int64_t n = std::min(kKeyChunk, keys.end - j);
    pack_rows(p, p.k, b, span.k_start, j, n, kv, d, 1.0f, chunk, d);
    call.scores(q, rows, d, chunk, n, d, d, s + (j - keys.begin), lds);
  }
}

// Turns the raw scores s[0 .. keys.size()) of row i (query head h) into the logits the reference
// uses: soft-cap, additive mask, and -inf for keys outside the row's visible range. Returns that
// range.
inline KeyRange finish_row_scores(const AttentionParams& p, int64_t b, int64_t h,
                                  const SequenceSpan& span, int64_t i, KeyRange keys, float* s) {
  const KeyRange row = row_visible_keys(p, b, span, i);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t j = keys.begin; j < keys.end; ++j) {
    float& x = s[j - keys.begin];
    if (j < row.begin || j >= row.end) {
      x = neg_inf;
      continue;
    }
    if (p.softcap > 0.0f) x = p.softcap * std::tanh(x / p.softcap);
    if (p.additive_mask.present()) {  // -inf hides the key even where its score is NaN
      const float m =
          load_float(p.additive_mask, additive_mask_offset(p.additive_mask, b, h, i, j));
      x = m == neg_inf ? neg_inf : x + m;
    }
  }
  return row;
}

// The m highest of score[0 .. n) (ties: the lower index), as indices in increasing order in
// order[0 .. m); order holds n entries. NaN scores must have been replaced.
inline void select_top(const float* score, int64_t n, int64_t m, int32_t* order) {
  if (m <= 0) return;
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  const auto better = [score](int32_t a, int32_t z) {
    return score[a] > score[z] || (score[a] == score[z] && a < z);
  };
  if (m < n) std::nth_element(order, order + m - 1, order + n, better);
  std::sort(order, order + m);
}

}  // namespace qwen3vl::detail
