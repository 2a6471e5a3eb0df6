// merge_states: combines two partial attention results computed over disjoint key sets into the
// result over their union. Split-KV decode, chunked prefill and shared prefixes all reduce to it.
//
// A partial state is (o, lse): o the softmax-normalised output over its keys, lse the natural-log
// sum of exp(scores) over them (-inf when the partial saw no key). Merging weighs each o by
// exp(lse_i - lse) where lse = log(exp(lse1) + exp(lse2)). An empty partial (lse = -inf) has weight
// exactly 0 and its o is never read, so merging with it is the identity, bit for bit; two empty
// partials give o = 0 and lse = -inf, never NaN. A NaN LSE gives a NaN merge.
#pragma once

#include <cmath>
#include <cstdint>

#include "qwen3vl/core/macros.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"

namespace qwen3vl {

namespace detail {

// The weights of two partials and the merged LSE. w1 == 0 means "do not read o1" (likewise w2).
struct MergeWeights {
  float w1, w2, lse;
};

QWEN3VL_HOST_DEVICE inline MergeWeights merge_weights(float lse1, float lse2) {
  const float neg_inf = -INFINITY;
  // A NaN LSE (the partial's rows saw an Inf or NaN) makes the merge NaN: weights NaN, so the
  // merged o is NaN too, as if one kernel had seen every key.
  if (lse1 != lse1 || lse2 != lse2) {
    const float nan = lse1 + lse2;  // NaN plus anything is NaN
    return MergeWeights{nan, nan, nan};
  }
  const bool has1 = lse1 > neg_inf, has2 = lse2 > neg_inf;
  if (!has1) return MergeWeights{0.0f, has2 ? 1.0f : 0.0f, has2 ? lse2 : neg_inf};
  if (!has2) return MergeWeights{1.0f, 0.0f, lse1};
  const float m = lse1 > lse2 ? lse1 : lse2;
  const float e1 = expf(lse1 - m), e2 = expf(lse2 - m);  // the larger one is exactly 1
  const float sum = e1 + e2;
  return MergeWeights{e1 / sum, e2 / sum, m + logf(sum)};
}

// out[c] = w1 * o1[c] + w2 * o2[c], never touching a side whose weight is 0 (NaN there stays out).
QWEN3VL_HOST_DEVICE inline float merge_value(const MergeWeights& w, float o1, float o2) {
  float x = 0.0f;
  if (w.w1 != 0.0f) x = w.w1 == 1.0f ? o1 : w.w1 * o1;
  if (w.w2 != 0.0f) x += w.w2 == 1.0f ? o2 : w.w2 * o2;
  return x;
}

// One partial state's checks; `device`: where the merge runs (host memory for merge_states,
// CUDA memory for merge_states_cuda, qwen3vl/cuda/merge_states.hpp).
inline Status check_state(const TensorView& o, const TensorView& lse, const char* o_name,
                          const char* lse_name, const TensorView& like,
                          Device device = Device::kCPU) {
  if (!o.present() || (o.data == nullptr && o.numel() > 0))
    return make_error(StatusCode::kNullPointer, o_name, " is absent or null: it is required");
  if (!lse.present() || (lse.data == nullptr && lse.numel() > 0))
    return make_error(StatusCode::kNullPointer, lse_name, " is absent or null: it is required");
  if (o.rank != 3)
    return make_error(StatusCode::kShapeMismatch, o_name, ".rank = ", o.rank, " (shape ",
                      o.shape_string(), "): expected 3 ([tokens, heads, head_dim])");
  if (o.shape[0] != like.shape[0] || o.shape[1] != like.shape[1] || o.shape[2] != like.shape[2])
    return make_error(StatusCode::kShapeMismatch, o_name, ".shape = ", o.shape_string(),
                      ": must equal o1.shape = ", like.shape_string());
  if (!is_floating(o.dtype))
    return make_error(StatusCode::kInvalidArgument, o_name, ".dtype = ", to_string(o.dtype),
                      ": allowed f32, f16, bf16");
  if (o.shape[2] > 1 && o.stride[2] != 1)
    return make_error(StatusCode::kBadStride, o_name, ".stride[2] = ", o.stride[2],
                      ": the last dimension must be contiguous (stride 1)");
  if (lse.dtype != DType::kF32)
    return make_error(StatusCode::kInvalidArgument, lse_name, ".dtype = ", to_string(lse.dtype),
                      ": must be f32");
  if (lse.rank != 2 || lse.shape[0] != like.shape[0] || lse.shape[1] != like.shape[1])
    return make_error(StatusCode::kShapeMismatch, lse_name, ".shape = ", lse.shape_string(),
                      ": expected [", like.shape[0], ", ", like.shape[1], "] ([tokens, heads])");
  if (o.device != device || lse.device != device)
    return make_error(StatusCode::kUnsupported, o_name, "/", lse_name, " on ", to_string(o.device),
                      "/", to_string(lse.device),
                      device == Device::kCPU
                          ? ": merge_states runs on host memory (merge_states_cuda on a GPU)"
                          : ": merge_states_cuda runs on device memory (merge_states on the host)");
  return Status();
}

}  // namespace detail

// Merges (o1, lse1) and (o2, lse2) into (out, lse_out) on the host.
//   o1, o2, out:         [tokens, heads, head_dim], any float dtype each, last dimension contiguous
//   lse1, lse2, lse_out: f32 [tokens, heads], natural log, -inf for an empty partial
// out / lse_out may alias o1 / lse1 or o2 / lse2 (each element is read before it is written).
inline Status merge_states(const TensorView& o1, const TensorView& lse1, const TensorView& o2,
                           const TensorView& lse2, const TensorView& out,
                           const TensorView& lse_out) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_state(o1, lse1, "o1", "lse1", o1));
  QWEN3VL_RETURN_IF_ERROR(detail::check_state(o2, lse2, "o2", "lse2", o1));
  QWEN3VL_RETURN_IF_ERROR(detail::check_state(out, lse_out, "out", "lse_out", o1));
  const float* l1 = lse1.ptr<const float>();
  const float* l2 = lse2.ptr<const float>();
  float* lo = lse_out.ptr<float>();
  for (int64_t t = 0; t < o1.shape[0]; ++t)
    for (int64_t h = 0; h < o1.shape[1]; ++h) {
      const detail::MergeWeights w =
          detail::merge_weights(l1[lse1.offset(t, h)], l2[lse2.offset(t, h)]);
      const int64_t a = o1.offset(t, h), b = o2.offset(t, h), c = out.offset(t, h);
      for (int64_t d = 0; d < o1.shape[2]; ++d) {
        const float x1 = w.w1 != 0.0f ? load_float(o1, a + d) : 0.0f;
        const float x2 = w.w2 != 0.0f ? load_float(o2, b + d) : 0.0f;
        store_float(out, c + d, detail::merge_value(w, x1, x2));
      }
      lo[lse_out.offset(t, h)] = w.lse;
    }
  return Status();
}

}  // namespace qwen3vl
