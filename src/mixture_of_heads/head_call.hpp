// Mixture-of-heads internals shared by the CPU and CUDA drivers: where a query row sits on the key
// axis, what is refused, and (CPU, any head kernel but flash2) the one-head varlen call that runs
// a head's gathered rows through an arbitrary Attention object. Both drivers give their flash
// kernel every head's rows at once instead (the gathered-rows modes: cuda/common/kernel_args.hpp
// GatheredQueries, src/flash/gathered_rows.hpp: per-head row offsets against the problem's
// own K/V), which needs no cu_seqlens_k trick.
//
// Why a plain Attention needs one call per head (per (sequence, head) when K/V cannot be read as
// packed rows) rather than one varlen call packing every head's rows: cu_seqlens_k partitions the
// key rows into disjoint ranges, so two packed "sequences" cannot read the same K/V rows. The
// query heads of a GQA group share their K/V rows, and with token-major K/V even different KV
// heads' rows interleave; packing them would need a K/V copy per head. A one-head strided view of
// K/V needs none.
#pragma once

#include <cstdint>

#include "qwen3vl/core/params.hpp"

namespace qwen3vl::detail::moh {

// Key position of query row i of a sequence with q_len queries and k_len valid keys, as the mask
// aligns it (bottom-right; top-left for kCausalTopLeft), unless the caller gave q_positions.
QWEN3VL_HOST_DEVICE inline int64_t aligned_position(MaskKind mask, int64_t i, int64_t q_len,
                                                    int64_t k_len) {
  return mask == MaskKind::kCausalTopLeft ? i : i + k_len - q_len;
}

// The same from host-resident params: q_positions when given.
inline int64_t row_position(const AttentionParams& p, int64_t b, const SequenceSpan& span,
                            int64_t i) {
  const TensorView& qp = p.q_positions;
  if (!qp.present()) return aligned_position(p.mask, i, span.q_len, span.k_len);
  return qp.ptr<const int32_t>()[p.varlen() ? (span.q_start + i) * qp.stride[0]
                                            : b * qp.stride[0] + i * qp.stride[1]];
}

// Rows that see no key are never gathered (output 0, LSE -inf, no compute).
QWEN3VL_HOST_DEVICE inline bool row_sees_keys_at(MaskKind mask, int64_t window_left,
                                                 int64_t window_right, int64_t position,
                                                 int64_t k_len) {
  return visible_keys_at(mask, window_left, window_right, position, k_len).size() > 0;
}
inline bool row_sees_keys(const AttentionParams& p, int64_t position, int64_t k_len) {
  return row_sees_keys_at(p.mask, p.window_left, p.window_right, position, k_len);
}

// Whether the sub-calls need q_positions (only structural masks look at positions).
inline bool needs_positions(const AttentionParams& p) {
  return p.mask != MaskKind::kNone || p.q_positions.present();
}

// One call's gathered rows: `heads` heads' blocks of `rows` rows, head_stride rows apart (the
// driver's per-head blocks), starting at the call's first row.
struct HeadBlock {
  void* q = nullptr;
  void* out = nullptr;
  float* lse = nullptr;           // with params.lse only
  int32_t* positions = nullptr;   // with needs_positions() only (the first head's)
  const int32_t* cu_q = nullptr;  // [sequences of the call + 1]: gathered rows per sequence
  const int32_t* cu_k = nullptr;  // fixed-length inputs: b * Lk for b = 0 .. sequences of the call
  int64_t rows = 0;
  int64_t head_stride = 0;
};

// One call per head covers every sequence when K/V can be read as packed varlen rows: varlen
// inputs, and fixed-length ones whose batch stride is Lk rows (contiguous BSHD). Otherwise (e.g.
// BHSD strides) one call per (sequence, head).
inline bool one_call_per_head(const AttentionParams& p) {
  if (p.varlen()) return true;
  return p.k.stride[0] == p.k.shape[1] * p.k.stride[1] &&
         p.v.stride[0] == p.v.shape[1] * p.v.stride[1];
}

inline int64_t routing_tokens(const AttentionParams& p) {
  return p.varlen() ? p.q.shape[0] : p.q.shape[0] * p.q.shape[1];
}
// Calls per head, sequences per call, and the row capacity of one call.
inline int64_t calls_per_head(const AttentionParams& p, const AttentionShape& s) {
  return one_call_per_head(p) ? 1 : s.batch;
}
inline int64_t call_sequences(const AttentionParams& p, const AttentionShape& s) {
  return one_call_per_head(p) ? s.batch : 1;
}
inline int64_t call_rows(const AttentionParams& p) {
  return one_call_per_head(p) ? routing_tokens(p) : p.q.shape[1];
}

inline void* byte_offset(void* base, int64_t elements, DType t) {
  return static_cast<char*>(base) + elements * size_of(t);
}

// The varlen call for query heads h .. h + heads - 1 (one KV group's) over the gathered rows in
// `blk` (a strided [rows, heads, D] view): every sequence (one_call_per_head), or sequence `call`
// of a fixed-length batch. K/V are strided views of their KV head.
inline AttentionParams head_call(const AttentionParams& p, const AttentionShape& s, int64_t h,
                                 int64_t call, const HeadBlock& blk, int64_t heads = 1) {
  const int64_t kvh = h / s.group_size(), d = s.head_dim;
  const bool varlen = p.varlen(), merged = one_call_per_head(p);
  AttentionParams c;
  const auto place = [&](TensorView v) {
    v.device = p.q.device;
    v.device_index = p.q.device_index;
    return v;
  };
  const int64_t head_step = blk.head_stride * d;
  c.q = place(TensorView::strided(blk.q, p.q.dtype, {blk.rows, heads, d}, {d, head_step, 1}));
  c.out = place(TensorView::strided(blk.out, p.out.dtype, {blk.rows, heads, d}, {d, head_step, 1}));
  // Key rows: packed tokens (varlen), the whole batch as packed rows (merged fixed-length), or
  // sequence `call`.
  const int hd = varlen ? 1 : 2;  // the heads dimension of k/v
  const int64_t k_rows = varlen ? p.k.shape[0] : merged ? s.batch * p.k.shape[1] : p.k.shape[1];
  const auto kv_view = [&](const TensorView& t) {
    const int64_t base = (merged ? 0 : call * t.stride[0]) + kvh * t.stride[hd];
    return place(TensorView::strided(byte_offset(t.data, base, t.dtype), t.dtype, {k_rows, 1, d},
                                     {t.stride[hd - 1], t.stride[hd], 1}));
  };
  c.k = kv_view(p.k);
  c.v = kv_view(p.v);
  const int64_t sequences = call_sequences(p, s);
  const auto indices = [&](const int32_t* data) {  // the kernel only reads them
    return place(TensorView::contiguous(const_cast<int32_t*>(data), DType::kI32, {sequences + 1}));
  };
  c.cu_seqlens_q = indices(blk.cu_q);
  c.cu_seqlens_k = varlen ? p.cu_seqlens_k : indices(blk.cu_k);
  c.max_seqlen_q = s.max_q;
  c.max_seqlen_k = s.max_k;
  if (p.key_lengths.present()) {
    c.key_lengths =
        merged ? p.key_lengths : p.key_lengths.narrowed(0, call, 1);  // this sequence's entry
  }
  if (p.lse.present())
    c.lse =
        place(TensorView::strided(blk.lse, DType::kF32, {heads, blk.rows}, {blk.head_stride, 1}));
  if (needs_positions(p))
    c.q_positions = place(TensorView::contiguous(blk.positions, DType::kI32, {blk.rows}));
  c.scale = s.scale;
  c.softcap = p.softcap;
  c.mask = p.mask;
  c.window_left = p.window_left;
  c.window_right = p.window_right;
  return c;
}

// What the driver refuses (both devices): the inputs gathered query rows cannot express.
inline Status refuse_unsupported(const AttentionParams& p) {
  if (p.additive_mask.present())
    return make_error(StatusCode::kUnsupported, "additive_mask = ", p.additive_mask.shape_string(),
                      ": mixture-of-heads takes structural masks and key_lengths only");
  if (p.weights.present())
    return make_error(StatusCode::kUnsupported, "weights = ", p.weights.shape_string(),
                      ": mixture-of-heads never materialises the scores");
  if (p.block_layout.present())
    return make_error(StatusCode::kUnsupported,
                      "block_layout: mixture-of-heads does not walk block-sparse layouts");
  return Status();
}

// Gathered rows carry max(position, 0): q_positions are non-negative. That is exact except for a
// window reaching right of a negative position (window_right > 0 with a sequence of more queries
// than valid keys), which this refuses; with values on the device it cannot look, so it refuses
// window_right > 0 there unless the caller gives q_positions.
inline Status check_window_alignment(const AttentionParams& p, const AttentionShape& s) {
  if (p.mask != MaskKind::kSlidingWindow || p.window_right <= 0 || p.q_positions.present())
    return Status();
  const bool host_values = (!p.varlen() || p.cu_seqlens_q.device == Device::kCPU) &&
                           (!p.key_lengths.present() || p.key_lengths.device == Device::kCPU);
  if (!host_values)
    return make_error(StatusCode::kUnsupported, "window_right = ", p.window_right,
                      " with device-resident cu_seqlens/key_lengths: mixture-of-heads needs "
                      "q_positions for a window reaching right (or window_right 0)");
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(p, b);
    if (span.q_len > span.k_len && span.k_len > 0)
      return make_error(StatusCode::kUnsupported, "window_right = ", p.window_right,
                        " with sequence ", b, " of ", span.q_len, " queries and ", span.k_len,
                        " valid keys: mixture-of-heads needs q_positions when a window reaches "
                        "right of a query aligned before the first key");
  }
  return Status();
}

}  // namespace qwen3vl::detail::moh
