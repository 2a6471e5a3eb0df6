// AttentionParams: one argument struct for every attention variant, and validate(), the single
// check all variants call before any kernel runs.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>

#include "qwen3vl/core/block_layout.hpp"
#include "qwen3vl/core/debug_counters.hpp"
#include "qwen3vl/core/mask.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/core/view_checks.hpp"

namespace qwen3vl {

// Layouts (token-major; any other layout through strides, last dimension contiguous):
//   fixed length:  q, out [B, Lq, Hq, D]   k, v [B, Lk, Hkv, D]
//   varlen:        q, out [Tq, Hq, D]      k, v [Tk, Hkv, D]   with cu_seqlens_q/k i32 [B + 1]
struct AttentionParams {
  TensorView q, k, v, out;
  TensorView lse;  // optional f32, natural log: [B, Hq, Lq] or varlen [Hq, Tq]; -inf on empty rows
  TensorView weights;  // optional f32 softmax probabilities [B, Hq, Lq, Lk] (not with varlen)

  std::optional<float> scale;  // default 1 / sqrt(D)
  float softcap = 0.0f;  // > 0: scores become softcap * tanh(score / softcap), before any mask
  MaskKind mask = MaskKind::kNone;
  int64_t window_left = -1;  // kSlidingWindow only; -1 = unbounded
  int64_t window_right = -1;

  TensorView cu_seqlens_q;  // optional i32 [B + 1], starts at 0, non-decreasing; with cu_seqlens_k
  TensorView cu_seqlens_k;
  int64_t max_seqlen_q = 0;  // varlen maxima; 0 = derive them (host-resident cu_seqlens only)
  int64_t max_seqlen_k = 0;

  TensorView
      additive_mask;       // optional float, rank 2..4, broadcast (size-1 dims) to [B, Hq, Lq, Lk]
  TensorView key_lengths;  // optional i32 [B]: keys j >= key_lengths[b] are padding (masked out)

  // Optional i32 [B, Lq] (varlen: [Tq]): each query row's position on the key axis, non-decreasing
  // within a sequence. Structural masks then use it instead of the bottom-right alignment: causal
  // (either kind) sees keys j <= position, a window [position - left, position + right]. For
  // gathered query rows (mixture-of-heads computes only the rows routed to a head).
  TensorView q_positions;
  // Optional block-sparse pattern: the kernel visits only the listed key blocks (variants that
  // cannot walk a layout refuse it in supports()).
  BlockLayout block_layout;

  bool varlen() const { return cu_seqlens_q.present(); }
};

// What validate() derives once, so kernels do not re-derive it.
struct AttentionShape {
  int64_t batch = 0;
  int64_t heads = 0;     // Hq
  int64_t kv_heads = 0;  // Hkv
  int64_t head_dim = 0;
  int64_t max_q = 0;  // longest query sequence
  int64_t max_k = 0;  // longest key sequence
  float scale = 1.0f;
  bool varlen = false;
  int64_t group_size() const { return heads / kv_heads; }
};

// One sequence of the batch: where its rows start and how many keys are valid.
struct SequenceSpan {
  int64_t q_start = 0;  // first token in the packed tensor (0 for fixed-length layouts)
  int64_t q_len = 0;
  int64_t k_start = 0;
  int64_t k_len = 0;  // valid keys: min(sequence length, key_lengths[b])
};

// Element offset of row (token i of sequence b, head h) in a q/k/v/out view.
inline int64_t row_offset(const TensorView& t, bool varlen, int64_t b, int64_t start, int64_t i,
                          int64_t h) {
  return varlen ? t.offset(start + i, h) : t.offset(b, i, h);
}

// Host-side sequence span (cu_seqlens and key_lengths must be host-resident here).
inline SequenceSpan sequence_span(const AttentionParams& p, int64_t b) {
  SequenceSpan s;
  if (p.varlen()) {
    const int32_t* cq = p.cu_seqlens_q.ptr<const int32_t>();
    const int32_t* ck = p.cu_seqlens_k.ptr<const int32_t>();
    const int64_t sq = p.cu_seqlens_q.stride[0], sk = p.cu_seqlens_k.stride[0];
    s.q_start = cq[b * sq];
    s.q_len = cq[(b + 1) * sq] - s.q_start;
    s.k_start = ck[b * sk];
    s.k_len = ck[(b + 1) * sk] - s.k_start;
  } else {
    s.q_len = p.q.shape[1];
    s.k_len = p.k.shape[1];
  }
  if (p.key_lengths.present()) {
    const int64_t kl = p.key_lengths.ptr<const int32_t>()[b * p.key_lengths.stride[0]];
    s.k_len = kl < s.k_len ? kl : s.k_len;
  }
  return s;
}

// Keys visible to row i of sequence b (host side): by q_positions when given, else by the
// bottom-right alignment of visible_keys().
inline KeyRange row_visible_keys(const AttentionParams& p, int64_t b, const SequenceSpan& span,
                                 int64_t i) {
  if (!p.q_positions.present())
    return visible_keys(p.mask, p.window_left, p.window_right, i, span.q_len, span.k_len);
  const TensorView& qp = p.q_positions;
  const int64_t pos = qp.ptr<const int32_t>()[p.varlen() ? (span.q_start + i) * qp.stride[0]
                                                         : b * qp.stride[0] + i * qp.stride[1]];
  return visible_keys_at(p.mask, p.window_left, p.window_right, pos, span.k_len);
}

// For variants that cannot honour q_positions or a block layout: a kUnsupported error naming them.
inline Status refuse_sparse_rows(const AttentionParams& p, const char* variant) {
  if (p.q_positions.present())
    return make_error(StatusCode::kUnsupported, "q_positions = ", p.q_positions.shape_string(),
                      ": the ", variant, " variant does not take query positions");
  if (p.block_layout.present())
    return make_error(StatusCode::kUnsupported, "block_layout (", p.block_layout.block_q, "x",
                      p.block_layout.block_k, " blocks): the ", variant,
                      " variant does not walk block-sparse layouts");
  return Status();
}

// Offset into the additive mask for (b, h, i, j); size-1 dimensions broadcast.
inline int64_t additive_mask_offset(const TensorView& m, int64_t b, int64_t h, int64_t i,
                                    int64_t j) {
  const int64_t idx[4] = {b, h, i, j};
  int64_t off = 0;
  for (int d = 0; d < m.rank; ++d) {
    const int64_t logical = idx[4 - m.rank + d];
    off += (m.shape[d] == 1 ? 0 : logical) * m.stride[d];
  }
  return off;
}

namespace detail {

// How the library uses a tensor of AttentionParams.
enum class TensorRole : uint8_t {
  kData,    // read by kernels; its data pointer may change between plan() and run()
  kOutput,  // written by kernels; its data pointer may change too
  kIndex,   // read by kernels, and on the host by plan() where host-resident: values part of the
            // plan
};
struct ParamTensor {
  const char* name;
  const TensorView* view;
  TensorRole role;
};
constexpr int kParamTensors = 13;

// Every tensor of AttentionParams, in one fixed order: the one list that the data-pointer,
// overlap and plan-signature checks walk (a tensor added to AttentionParams goes here).
inline void param_tensors(const AttentionParams& p, ParamTensor (&out)[kParamTensors]) {
  const ParamTensor all[kParamTensors] = {
      {"q", &p.q, TensorRole::kData},
      {"k", &p.k, TensorRole::kData},
      {"v", &p.v, TensorRole::kData},
      {"out", &p.out, TensorRole::kOutput},
      {"lse", &p.lse, TensorRole::kOutput},
      {"weights", &p.weights, TensorRole::kOutput},
      {"cu_seqlens_q", &p.cu_seqlens_q, TensorRole::kIndex},
      {"cu_seqlens_k", &p.cu_seqlens_k, TensorRole::kIndex},
      {"additive_mask", &p.additive_mask, TensorRole::kData},
      {"key_lengths", &p.key_lengths, TensorRole::kIndex},
      {"q_positions", &p.q_positions, TensorRole::kIndex},
      {"block_layout.indptr", &p.block_layout.indptr, TensorRole::kIndex},
      {"block_layout.indices", &p.block_layout.indices, TensorRole::kIndex}};
  for (int t = 0; t < kParamTensors; ++t) out[t] = all[t];
}

// What validate() checks of the data pointers themselves (views of null data pass): each view's
// bytes within the address space, and outputs sharing no memory with any tensor read (inputs and
// index tensors alike) or with another output. Attention::run() repeats it for the new pointers of
// a reused plan (the shapes were planned).
inline Status check_data_pointers(const AttentionParams& p) {
  ParamTensor t[kParamTensors];
  param_tensors(p, t);
  for (const ParamTensor& x : t) {  // index tensors' addresses were checked with their values
    int64_t lo = 0, hi = 0;
    if (x.role != TensorRole::kIndex && x.view->present() && x.view->data != nullptr &&
        x.view->byte_range(&lo, &hi))
      QWEN3VL_RETURN_IF_ERROR(check_view_address(*x.view, x.name, lo, hi));
  }
  for (int o = 0; o < kParamTensors; ++o) {
    if (t[o].role != TensorRole::kOutput || !t[o].view->present()) continue;
    for (int r = 0; r < kParamTensors; ++r)  // each pair of outputs once
      if (r != o && (t[r].role != TensorRole::kOutput || r < o))
        QWEN3VL_RETURN_IF_ERROR(check_disjoint(*t[o].view, t[o].name, *t[r].view, t[r].name));
  }
  return Status();
}

// need_data = false: a null data pointer is allowed (planning from shapes alone).
inline Status check_present(const TensorView& t, const char* name, bool need_data = true) {
  if (!t.present()) return make_error(StatusCode::kNullPointer, name, " is absent: it is required");
  if (t.rank > TensorView::kMaxRank)
    return make_error(StatusCode::kShapeMismatch, name, ".rank = ", t.rank, ": allowed 1..",
                      TensorView::kMaxRank);
  if (need_data && t.data == nullptr && t.numel() > 0)
    return make_error(StatusCode::kNullPointer, name, ".data = null with shape ", t.shape_string(),
                      ": a non-empty tensor needs memory");
  for (int d = 0; d < t.rank; ++d)
    if (t.shape[d] < 0)
      return make_error(StatusCode::kInvalidArgument, name, ".shape[", d, "] = ", t.shape[d],
                        ": must be >= 0");
  return check_view_extent(t, name);  // element count and offsets without overflow
}

inline Status check_last_contiguous(const TensorView& t, const char* name) {
  if (t.rank > 0 && t.shape[t.rank - 1] > 1 && t.stride[t.rank - 1] != 1)
    return make_error(StatusCode::kBadStride, name, ".stride[", t.rank - 1,
                      "] = ", t.stride[t.rank - 1],
                      ": the last dimension must be contiguous (stride 1)");
  return Status();
}

inline Status check_dims(const TensorView& t, const char* name, int rank,
                         std::initializer_list<int64_t> expected) {
  if (t.rank != rank)
    return make_error(StatusCode::kShapeMismatch, name, ".rank = ", t.rank, " (shape ",
                      t.shape_string(), "): expected rank ", rank);
  int d = 0;
  for (int64_t e : expected) {
    if (t.shape[d] != e) {
      TensorView want;
      want.rank = rank;
      int i = 0;
      for (int64_t x : expected) want.shape[i++] = x;
      return make_error(StatusCode::kShapeMismatch, name, ".shape = ", t.shape_string(),
                        ": expected ", want.shape_string());
    }
    ++d;
  }
  return Status();
}

// cu_seqlens: i32 rank 1, [B + 1], starts at 0, non-decreasing, ends within the packed tokens.
// need_data = false: device-resident values (never read here) may have null data (a plan from
// shapes); host values are always read.
inline Status check_cu_seqlens(const TensorView& cu, const char* name, int64_t tokens,
                               int64_t* batch, int64_t* max_len, bool need_data = true) {
  if (cu.dtype != DType::kI32)
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(cu.dtype),
                      ": must be i32");
  if (cu.rank != 1 || cu.shape[0] < 2)
    return make_error(StatusCode::kShapeMismatch, name, ".shape = ", cu.shape_string(),
                      ": must be [batch + 1] with batch >= 1");
  QWEN3VL_RETURN_IF_ERROR(check_present(cu, name, need_data || cu.device == Device::kCPU));
  *batch = cu.shape[0] - 1;
  if (cu.device != Device::kCPU) return Status();  // values are checked where they live
  const int32_t* c = cu.ptr<const int32_t>();
  if (c[0] != 0)
    return make_error(StatusCode::kInvalidArgument, name, "[0] = ", c[0], ": must be 0");
  int64_t longest = 0;
  for (int64_t b = 0; b < *batch; ++b) {
    const int64_t lo = c[b * cu.stride[0]], hi = c[(b + 1) * cu.stride[0]];
    if (hi < lo)
      return make_error(StatusCode::kInvalidArgument, name, "[", b + 1, "] = ", hi, " < ", name,
                        "[", b, "] = ", lo, ": must be non-decreasing");
    longest = hi - lo > longest ? hi - lo : longest;
  }
  const int64_t last = c[*batch * cu.stride[0]];
  if (last > tokens)
    return make_error(StatusCode::kInvalidArgument, name, "[", *batch, "] = ", last,
                      ": exceeds the packed token count ", tokens);
  *max_len = longest;
  return Status();
}

}  // namespace detail

// Checks every argument once, up front; on success fills `shape` (if given) with derived sizes.
// need_data = false (Attention::plan): q, k, v, out, lse, weights, additive_mask and
// device-resident cu_seqlens, key_lengths and q_positions may have null data; host index tensors
// are read as always.
inline Status validate(const AttentionParams& p, AttentionShape* shape = nullptr,
                       bool need_data = true) {
  detail::validation_counter().fetch_add(1, std::memory_order_relaxed);
  using detail::check_dims;
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.q, "q", need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.k, "k", need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.v, "v", need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.out, "out", need_data));

  const TensorView* named[] = {&p.q, &p.k, &p.v, &p.out};
  const char* names[] = {"q", "k", "v", "out"};
  for (int t = 0; t < 4; ++t) {
    if (!is_floating(named[t]->dtype))
      return make_error(StatusCode::kInvalidArgument, names[t],
                        ".dtype = ", to_string(named[t]->dtype), ": allowed f32, f16, bf16");
    if (named[t]->dtype != p.q.dtype)
      return make_error(StatusCode::kInvalidArgument, names[t],
                        ".dtype = ", to_string(named[t]->dtype), ": must equal q.dtype (",
                        to_string(p.q.dtype), ")");
    if (named[t]->device != p.q.device || named[t]->device_index != p.q.device_index)
      return make_error(StatusCode::kInvalidArgument, names[t],
                        ".device = ", to_string(named[t]->device), ":", named[t]->device_index,
                        ": must equal q.device (", to_string(p.q.device), ":", p.q.device_index,
                        ")");
    QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(*named[t], names[t]));
  }

  const bool varlen = p.varlen();
  if (varlen != p.cu_seqlens_k.present())
    return make_error(StatusCode::kInvalidArgument, "cu_seqlens_", varlen ? "k" : "q",
                      " is absent: cu_seqlens_q and cu_seqlens_k come together");
  const int rank = varlen ? 3 : 4;
  if (p.q.rank != rank)
    return make_error(StatusCode::kShapeMismatch, "q.rank = ", p.q.rank, " (shape ",
                      p.q.shape_string(), "): expected ", rank,
                      varlen ? " ([tokens, heads, head_dim]) with cu_seqlens"
                             : " ([batch, seq, heads, head_dim])");
  const int64_t d = p.q.shape[rank - 1];
  const int64_t hq = p.q.shape[rank - 2];
  if (d < 1 || d > 256)
    return make_error(StatusCode::kInvalidArgument, "q.shape[", rank - 1, "] (head_dim) = ", d,
                      ": allowed 1..256");
  if (p.k.rank != rank)
    return make_error(StatusCode::kShapeMismatch, "k.rank = ", p.k.rank, ": expected ", rank,
                      " like q");
  const int64_t hkv = p.k.shape[rank - 2];
  if (hq < 1) return make_error(StatusCode::kInvalidArgument, "q heads = ", hq, ": must be >= 1");
  if (hkv < 1 || hq % hkv != 0)
    return make_error(StatusCode::kInvalidArgument, "k heads (Hkv) = ", hkv,
                      ": must be >= 1 and divide q heads (Hq) = ", hq);

  AttentionShape s;
  s.heads = hq;
  s.kv_heads = hkv;
  s.head_dim = d;
  s.varlen = varlen;
  if (varlen) {
    QWEN3VL_RETURN_IF_ERROR(check_dims(p.k, "k", 3, {p.k.shape[0], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(check_dims(p.v, "v", 3, {p.k.shape[0], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(check_dims(p.out, "out", 3, {p.q.shape[0], hq, d}));
    int64_t bq = 0, bk = 0, mq = 0, mk = 0;
    QWEN3VL_RETURN_IF_ERROR(detail::check_cu_seqlens(p.cu_seqlens_q, "cu_seqlens_q", p.q.shape[0],
                                                     &bq, &mq, need_data));
    QWEN3VL_RETURN_IF_ERROR(detail::check_cu_seqlens(p.cu_seqlens_k, "cu_seqlens_k", p.k.shape[0],
                                                     &bk, &mk, need_data));
    if (bq != bk)
      return make_error(StatusCode::kShapeMismatch, "cu_seqlens_k.shape[0] = ", bk + 1,
                        ": must equal cu_seqlens_q.shape[0] = ", bq + 1);
    const bool on_host = p.cu_seqlens_q.device == Device::kCPU;
    if (p.max_seqlen_q < 0 || p.max_seqlen_k < 0 ||
        (on_host &&
         ((p.max_seqlen_q && p.max_seqlen_q < mq) || (p.max_seqlen_k && p.max_seqlen_k < mk))))
      return make_error(StatusCode::kInvalidArgument, "max_seqlen_q/k = ", p.max_seqlen_q, "/",
                        p.max_seqlen_k, ": must be 0 (derive) or >= the longest sequences ", mq,
                        "/", mk);
    if (!on_host && (p.max_seqlen_q <= 0 || p.max_seqlen_k <= 0))
      return make_error(StatusCode::kInvalidArgument, "max_seqlen_q/k = ", p.max_seqlen_q, "/",
                        p.max_seqlen_k, ": must be given (> 0) when cu_seqlens live on the device");
    s.batch = bq;
    s.max_q = p.max_seqlen_q ? p.max_seqlen_q : mq;
    s.max_k = p.max_seqlen_k ? p.max_seqlen_k : mk;
  } else {
    s.batch = p.q.shape[0];
    QWEN3VL_RETURN_IF_ERROR(check_dims(p.k, "k", 4, {s.batch, p.k.shape[1], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(check_dims(p.v, "v", 4, {s.batch, p.k.shape[1], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(check_dims(p.out, "out", 4, {s.batch, p.q.shape[1], hq, d}));
    s.max_q = p.q.shape[1];
    s.max_k = p.k.shape[1];
  }

  if (p.lse.present()) {
    if (p.lse.dtype != DType::kF32)
      return make_error(StatusCode::kInvalidArgument, "lse.dtype = ", to_string(p.lse.dtype),
                        ": must be f32");
    QWEN3VL_RETURN_IF_ERROR(varlen ? check_dims(p.lse, "lse", 2, {hq, p.q.shape[0]})
                                   : check_dims(p.lse, "lse", 3, {s.batch, hq, s.max_q}));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.lse, "lse", need_data));
  }
  if (p.weights.present()) {
    if (varlen)
      return make_error(StatusCode::kUnsupported,
                        "weights with cu_seqlens: attention weights need a fixed-length batch");
    if (p.weights.dtype != DType::kF32)
      return make_error(StatusCode::kInvalidArgument,
                        "weights.dtype = ", to_string(p.weights.dtype), ": must be f32");
    QWEN3VL_RETURN_IF_ERROR(check_dims(p.weights, "weights", 4, {s.batch, hq, s.max_q, s.max_k}));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.weights, "weights", need_data));
    QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(p.weights, "weights"));
  }
  if (p.additive_mask.present()) {
    const TensorView& m = p.additive_mask;
    if (varlen)
      return make_error(StatusCode::kUnsupported,
                        "additive_mask with cu_seqlens: use a fixed-length batch or key_lengths");
    if (!is_floating(m.dtype))
      return make_error(StatusCode::kInvalidArgument, "additive_mask.dtype = ", to_string(m.dtype),
                        ": allowed f32, f16, bf16");
    if (m.rank < 2)
      return make_error(StatusCode::kShapeMismatch, "additive_mask.rank = ", m.rank,
                        ": allowed 2..4 (broadcast to [B, Hq, Lq, Lk])");
    const int64_t full[4] = {s.batch, hq, s.max_q, s.max_k};
    for (int dim = 0; dim < m.rank; ++dim) {
      const int64_t want = full[4 - m.rank + dim];
      if (m.shape[dim] != want && m.shape[dim] != 1)
        return make_error(StatusCode::kShapeMismatch, "additive_mask.shape = ", m.shape_string(),
                          ": dimension ", dim, " must be ", want, " or 1 (broadcast to [", s.batch,
                          ", ", hq, ", ", s.max_q, ", ", s.max_k, "])");
    }
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(m, "additive_mask", need_data));
    if (m.device != p.q.device)
      return make_error(StatusCode::kInvalidArgument,
                        "additive_mask.device = ", to_string(m.device), ": must equal q.device");
  }
  if (p.key_lengths.present()) {
    const TensorView& kl = p.key_lengths;
    if (kl.dtype != DType::kI32)
      return make_error(StatusCode::kInvalidArgument, "key_lengths.dtype = ", to_string(kl.dtype),
                        ": must be i32");
    QWEN3VL_RETURN_IF_ERROR(check_dims(kl, "key_lengths", 1, {s.batch}));
    QWEN3VL_RETURN_IF_ERROR(
        detail::check_present(kl, "key_lengths", need_data || kl.device == Device::kCPU));
    if (kl.device == Device::kCPU)
      for (int64_t b = 0; b < s.batch; ++b) {
        const int64_t len = kl.ptr<const int32_t>()[b * kl.stride[0]];
        if (len < 0 || len > s.max_k)
          return make_error(StatusCode::kInvalidArgument, "key_lengths[", b, "] = ", len,
                            ": allowed 0..", s.max_k, " (the key sequence length)");
      }
  }
  if (p.q_positions.present()) {
    const TensorView& qp = p.q_positions;
    if (qp.dtype != DType::kI32)
      return make_error(StatusCode::kInvalidArgument, "q_positions.dtype = ", to_string(qp.dtype),
                        ": must be i32");
    QWEN3VL_RETURN_IF_ERROR(varlen ? check_dims(qp, "q_positions", 1, {p.q.shape[0]})
                                   : check_dims(qp, "q_positions", 2, {s.batch, s.max_q}));
    QWEN3VL_RETURN_IF_ERROR(
        detail::check_present(qp, "q_positions", need_data || qp.device == Device::kCPU));
    if (qp.device != p.q.device)
      return make_error(StatusCode::kInvalidArgument, "q_positions.device = ", to_string(qp.device),
                        ": must equal q.device");
    if (qp.device == Device::kCPU)
      for (int64_t b = 0; b < s.batch; ++b) {
        const SequenceSpan span = sequence_span(p, b);
        int64_t previous = 0;
        for (int64_t i = 0; i < span.q_len; ++i) {
          const int64_t pos = qp.ptr<const int32_t>()[varlen ? (span.q_start + i) * qp.stride[0]
                                                             : b * qp.stride[0] + i * qp.stride[1]];
          if (pos < previous)
            return make_error(StatusCode::kInvalidArgument, "q_positions[", b, ", ", i, "] = ", pos,
                              ": must be >= 0 and non-decreasing within a sequence (previous ",
                              previous, ")");
          previous = pos;
        }
      }
  }
  if (p.block_layout.present()) {
    QWEN3VL_RETURN_IF_ERROR(validate_block_layout(p.block_layout, s.batch, hkv, s.max_q, s.max_k));
    if (p.block_layout.indptr.device != p.q.device)
      return make_error(StatusCode::kInvalidArgument,
                        "block_layout.indptr.device = ", to_string(p.block_layout.indptr.device),
                        ": must equal q.device");
  }
  if (p.mask > MaskKind::kSlidingWindow)
    return make_error(StatusCode::kInvalidArgument, "mask = ", static_cast<int>(p.mask),
                      ": allowed none, causal, causal_top_left, sliding_window");
  if (p.mask == MaskKind::kSlidingWindow && (p.window_left < -1 || p.window_right < -1))
    return make_error(StatusCode::kInvalidArgument, "window = (", p.window_left, ", ",
                      p.window_right, "): each bound must be >= 0, or -1 for unbounded");
  if (p.scale && !std::isfinite(*p.scale))
    return make_error(StatusCode::kInvalidArgument, "scale = ", *p.scale, ": must be finite");
  if (!(p.softcap >= 0.0f) || !std::isfinite(p.softcap))
    return make_error(StatusCode::kInvalidArgument, "softcap = ", p.softcap,
                      ": must be finite and >= 0 (0 disables it)");

  // Outputs: no element written twice, no memory shared with an input or another output.
  detail::ParamTensor tensors[detail::kParamTensors];
  detail::param_tensors(p, tensors);
  for (const detail::ParamTensor& t : tensors)
    if (t.role == detail::TensorRole::kOutput && t.view->present())
      QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(*t.view, t.name));
  QWEN3VL_RETURN_IF_ERROR(detail::check_data_pointers(p));

  s.scale = p.scale ? *p.scale : 1.0f / std::sqrt(static_cast<float>(d));
  if (shape) *shape = s;
  return Status();
}

}  // namespace qwen3vl
