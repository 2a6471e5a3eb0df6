// The float64 oracle: attention computed the obvious way, one query row at a time, straight from
// the definitions (masks: core/mask.hpp). Every kernel's test compares against it. Slow on purpose.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "qwen3vl/core/params.hpp"

namespace qwen3vl::reference {

// Is key j visible to query i of sequence b (query head h)? Written from the definitions,
// independently of visible_keys() and of the kernels' block walks.
inline bool key_visible(const AttentionParams& p, int64_t b, int64_t h, int64_t i, int64_t j,
                        int64_t q_len, int64_t k_len, int64_t q_start = 0) {
  if (j >= k_len) return false;    // key padding
  if (p.block_layout.present()) {  // the key's column block must be listed for the row's block
    const BlockLayout& bl = p.block_layout;
    const int64_t kv_heads = p.k.shape[p.k.rank - 2];
    const int64_t l = bl.layout_index(b, h / (p.q.shape[p.q.rank - 2] / kv_heads), kv_heads);
    const int32_t* ptr = bl.row_ptr(l);
    const int32_t* col = bl.col_ptr(l);
    const int64_t row_block = i / bl.block_q, col_block = j / bl.block_k;
    bool listed = false;
    for (int64_t e = ptr[row_block]; e < ptr[row_block + 1]; ++e)
      listed = listed || col[e] == col_block;
    if (!listed) return false;
  }
  int64_t aligned = i + k_len - q_len;
  if (p.q_positions.present()) {
    const TensorView& qp = p.q_positions;
    aligned = qp.ptr<const int32_t>()[p.varlen() ? (q_start + i) * qp.stride[0]
                                                 : b * qp.stride[0] + i * qp.stride[1]];
  }
  switch (p.mask) {
    case MaskKind::kNone: return true;
    case MaskKind::kCausal: return j <= aligned;
    case MaskKind::kCausalTopLeft: return j <= (p.q_positions.present() ? aligned : i);
    case MaskKind::kSlidingWindow:
      // Distances instead of aligned -/+ window: bounds up to INT64_MAX must not overflow.
      return (p.window_left < 0 || aligned - j <= p.window_left) &&
             (p.window_right < 0 || j - aligned <= p.window_right);
  }
  return false;
}

// One query row (sequence b, head h, row i): writes D outputs, optionally the Lk softmax weights
// (zero where masked), and returns the natural-log LSE (-inf when the row sees no key).
inline double attention_row(const AttentionParams& p, const AttentionShape& s, int64_t b, int64_t h,
                            int64_t i, double* out_row, double* weights_row = nullptr) {
  const SequenceSpan span = sequence_span(p, b);
  const int64_t full_k =
      p.varlen()
          ? p.cu_seqlens_k.ptr<const int32_t>()[(b + 1) * p.cu_seqlens_k.stride[0]] - span.k_start
          : p.k.shape[1];  // keys in the sequence, padding included
  const int64_t d = s.head_dim;
  const int64_t kh = h / s.group_size();
  const double neg_inf = -std::numeric_limits<double>::infinity();

  std::vector<double> score(static_cast<size_t>(full_k), neg_inf);
  std::vector<bool> visible(static_cast<size_t>(full_k), false);
  const int64_t q_off = row_offset(p.q, p.varlen(), b, span.q_start, i, h);
  for (int64_t j = 0; j < full_k; ++j) {
    if (!key_visible(p, b, h, i, j, span.q_len, span.k_len, span.q_start)) continue;
    const int64_t k_off = row_offset(p.k, p.varlen(), b, span.k_start, j, kh);
    double dot = 0.0;
    for (int64_t c = 0; c < d; ++c)
      dot += static_cast<double>(load_float(p.q, q_off + c)) * load_float(p.k, k_off + c);
    double x = dot * static_cast<double>(s.scale);
    if (p.softcap > 0.0f) x = p.softcap * std::tanh(x / p.softcap);
    if (p.additive_mask.present())
      x += load_float(p.additive_mask, additive_mask_offset(p.additive_mask, b, h, i, j));
    score[j] = x;
    visible[j] = x > neg_inf;  // an additive -inf masks the key like a structural mask
  }
  double mx = neg_inf;
  for (int64_t j = 0; j < full_k; ++j)
    if (visible[j]) mx = score[j] > mx ? score[j] : mx;
  for (int64_t c = 0; c < d; ++c) out_row[c] = 0.0;
  if (weights_row)
    for (int64_t j = 0; j < full_k; ++j) weights_row[j] = 0.0;
  if (mx == neg_inf) return neg_inf;  // fully masked row: output 0

  double sum = 0.0;
  for (int64_t j = 0; j < full_k; ++j) {
    score[j] = visible[j] ? std::exp(score[j] - mx) : 0.0;  // masked keys (even NaN ones) weigh 0
    sum += score[j];
  }
  for (int64_t j = 0; j < full_k; ++j) {
    if (!visible[j]) continue;  // masked keys never touch V (NaN there must not leak)
    const double w = score[j] / sum;
    if (weights_row) weights_row[j] = w;
    const int64_t v_off = row_offset(p.v, p.varlen(), b, span.k_start, j, kh);
    for (int64_t c = 0; c < d; ++c) out_row[c] += w * load_float(p.v, v_off + c);
  }
  return mx + std::log(sum);
}

// The whole problem. Layouts: out [Tq, Hq, D] and lse [Tq, Hq] over query tokens in order (token
// t = b * Lq + i for fixed-length batches, cu_seqlens_q[b] + i for varlen); weights [B, Hq, Lq,
// Lk].
struct Result {
  std::vector<double> out;
  std::vector<double> lse;
  std::vector<double> weights;
};

inline Result attention(const AttentionParams& p, bool with_weights = false) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  const int64_t tokens = p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
  Result r;
  r.out.assign(static_cast<size_t>(tokens * s.heads * s.head_dim), 0.0);
  r.lse.assign(static_cast<size_t>(tokens * s.heads), -std::numeric_limits<double>::infinity());
  if (with_weights)
    r.weights.assign(static_cast<size_t>(s.batch * s.heads * s.max_q * s.max_k), 0.0);
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(p, b);
    for (int64_t i = 0; i < span.q_len; ++i)
      for (int64_t h = 0; h < s.heads; ++h) {
        const int64_t t = p.varlen() ? span.q_start + i : b * s.max_q + i;
        double* w =
            with_weights
                ? &r.weights[static_cast<size_t>(((b * s.heads + h) * s.max_q + i) * s.max_k)]
                : nullptr;
        r.lse[static_cast<size_t>(t * s.heads + h)] = attention_row(
            p, s, b, h, i, &r.out[static_cast<size_t>((t * s.heads + h) * s.head_dim)], w);
      }
  }
  return r;
}

}  // namespace qwen3vl::reference
