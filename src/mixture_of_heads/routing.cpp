// Mixture-of-heads routing: config and routing checks, and the MoH router (gates from logits).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "qwen3vl/variants/mixture_of_heads.hpp"

namespace qwen3vl {
namespace {

Status check_logits(const TensorView& t, const char* name, int64_t tokens, int64_t width) {
  if (width == 0) {
    if (t.present())
      return make_error(StatusCode::kInvalidArgument, name, " = ", t.shape_string(),
                        ": must be absent (this config has no such heads)");
    return Status();
  }
  if (!t.present())
    return make_error(StatusCode::kNullPointer, name, " is absent: expected f32 [", tokens, ", ",
                      width, "]");
  if (t.dtype != DType::kF32 || t.device != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype), " on ",
                      to_string(t.device), ": must be f32 host memory");
  if (t.rank != 2 || t.shape[0] != tokens || t.shape[1] != width)
    return make_error(StatusCode::kShapeMismatch, name, ".shape = ", t.shape_string(),
                      ": expected [", tokens, ", ", width, "]");
  if (t.data == nullptr && tokens > 0)
    return make_error(StatusCode::kNullPointer, name,
                      ".data = null: a non-empty tensor needs memory");
  if (width > 1 && t.stride[1] != 1)
    return make_error(StatusCode::kBadStride, name, ".stride[1] = ", t.stride[1], ": must be 1");
  for (int64_t r = 0; r < tokens; ++r)  // NaN would break the top-k order
    for (int64_t i = 0; i < width; ++i)
      if (!std::isfinite(t.ptr<const float>()[r * t.stride[0] + i]))
        return make_error(StatusCode::kInvalidArgument, name, "[", r, ", ", i,
                          "] = ", t.ptr<const float>()[r * t.stride[0] + i], ": must be finite");
  return Status();
}

// Softmax of n logits (f64 accumulation, max-subtracted) into `p`.
void softmax(const float* x, int64_t n, std::vector<double>* p) {
  p->resize(static_cast<size_t>(n));
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += (*p)[i] = std::exp(x[i] - mx);
  for (double& v : *p) v /= sum;
}

}  // namespace

Status validate_moh_config(const MoHConfig& c) {
  if (c.num_heads < 1)
    return make_error(StatusCode::kInvalidArgument, "MoHConfig.num_heads = ", c.num_heads,
                      ": must be >= 1");
  if (c.num_shared_heads < 0 || c.num_shared_heads > c.num_heads)
    return make_error(StatusCode::kInvalidArgument,
                      "MoHConfig.num_shared_heads = ", c.num_shared_heads, ": allowed 0..",
                      c.num_heads, " (num_heads)");
  const int64_t routed = c.routed_heads();
  if (routed == 0 ? c.top_k != 0 : (c.top_k < 1 || c.top_k > routed))
    return make_error(StatusCode::kInvalidArgument, "MoHConfig.top_k = ", c.top_k, ": allowed ",
                      routed == 0 ? "0 (no routed heads)" : "1..",
                      routed == 0 ? "" : std::to_string(routed).c_str(),
                      routed == 0 ? "" : " (the routed heads)");
  return Status();
}

Status validate_head_routing(const HeadRouting& r, int64_t tokens, int64_t heads) {
  const TensorView& idx = r.head_index;
  const TensorView& w = r.head_weight;
  if (!idx.present() || !w.present())
    return make_error(StatusCode::kNullPointer, "routing.",
                      idx.present() ? "head_weight" : "head_index",
                      " is absent: head_index i32 [T, k] and head_weight f32 [T, k] come together");
  if (idx.dtype != DType::kI32)
    return make_error(StatusCode::kInvalidArgument,
                      "routing.head_index.dtype = ", to_string(idx.dtype), ": must be i32");
  if (w.dtype != DType::kF32)
    return make_error(StatusCode::kInvalidArgument,
                      "routing.head_weight.dtype = ", to_string(w.dtype), ": must be f32");
  if (idx.rank != 2 || idx.shape[0] != tokens || idx.shape[1] < 1 || idx.shape[1] > heads)
    return make_error(StatusCode::kShapeMismatch, "routing.head_index.shape = ", idx.shape_string(),
                      ": expected [", tokens, " (query rows), k] with 1 <= k <= ", heads);
  if (w.rank != 2 || w.shape[0] != idx.shape[0] || w.shape[1] != idx.shape[1])
    return make_error(StatusCode::kShapeMismatch, "routing.head_weight.shape = ", w.shape_string(),
                      ": must equal routing.head_index.shape ", idx.shape_string());
  if (tokens > 0 && (idx.data == nullptr || w.data == nullptr))
    return make_error(StatusCode::kNullPointer, "routing.", idx.data ? "head_weight" : "head_index",
                      ".data = null: a non-empty routing needs memory");
  if (idx.device != w.device || idx.device_index != w.device_index)
    return make_error(StatusCode::kInvalidArgument,
                      "routing.head_weight.device = ", to_string(w.device),
                      ": must equal routing.head_index.device");
  if (idx.device != Device::kCPU) return Status();  // values are checked where they live
  const int64_t k = idx.shape[1];
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < k; ++e) {
      const int32_t h = idx.ptr<const int32_t>()[t * idx.stride[0] + e * idx.stride[1]];
      if (h < 0 || h >= heads)
        return make_error(StatusCode::kInvalidArgument, "routing.head_index[", t, ", ", e,
                          "] = ", h, ": allowed 0..", heads - 1, " (query heads)");
      for (int64_t f = 0; f < e; ++f)
        if (idx.ptr<const int32_t>()[t * idx.stride[0] + f * idx.stride[1]] == h)
          return make_error(StatusCode::kInvalidArgument, "routing.head_index[", t, ", ", e,
                            "] = ", h, ": head already listed at [", t, ", ", f,
                            "]; a token lists each head once");
      const float g = w.ptr<const float>()[t * w.stride[0] + e * w.stride[1]];
      if (!std::isfinite(g))
        return make_error(StatusCode::kInvalidArgument, "routing.head_weight[", t, ", ", e,
                          "] = ", g, ": must be finite");
    }
  return Status();
}

Status route_mixture_of_heads(const MoHConfig& c, const MoHRouterLogits& logits,
                              const HeadRouting& out) {
  QWEN3VL_RETURN_IF_ERROR(validate_moh_config(c));
  const int64_t tokens = out.head_index.present() ? out.head_index.shape[0] : 0;
  const int64_t shared = c.num_shared_heads, routed = c.routed_heads();
  QWEN3VL_RETURN_IF_ERROR(check_logits(logits.shared, "logits.shared", tokens, shared));
  QWEN3VL_RETURN_IF_ERROR(check_logits(logits.routed, "logits.routed", tokens, routed));
  QWEN3VL_RETURN_IF_ERROR(
      check_logits(logits.mix, "logits.mix", tokens, shared > 0 && routed > 0 ? 2 : 0));
  const int64_t k = c.heads_per_token();
  for (const TensorView* t : {&out.head_index, &out.head_weight})
    if (!t->present() || t->rank != 2 || t->shape[1] != k || t->device != Device::kCPU)
      return make_error(StatusCode::kShapeMismatch, "out.",
                        t == &out.head_index ? "head_index" : "head_weight",
                        ".shape = ", t->shape_string(), ": expected host [T, ", k,
                        "] (num_shared_heads + top_k)");
  if (out.head_weight.shape[0] != tokens)
    return make_error(StatusCode::kShapeMismatch,
                      "out.head_weight.shape = ", out.head_weight.shape_string(),
                      ": must equal out.head_index.shape");
  if (out.head_index.dtype != DType::kI32 || out.head_weight.dtype != DType::kF32)
    return make_error(StatusCode::kInvalidArgument,
                      "out dtypes = ", to_string(out.head_index.dtype), "/",
                      to_string(out.head_weight.dtype), ": must be i32/f32");

  std::vector<double> p_shared, p_routed, p_mix;
  std::vector<int32_t> order(static_cast<size_t>(routed));
  for (int64_t t = 0; t < tokens; ++t) {
    double a_shared = 1.0, a_routed = 1.0;
    if (shared > 0 && routed > 0) {
      softmax(logits.mix.ptr<const float>() + t * logits.mix.stride[0], 2, &p_mix);
      a_shared = p_mix[0];
      a_routed = p_mix[1];
    }
    int32_t* idx = out.head_index.ptr<int32_t>() + t * out.head_index.stride[0];
    float* w = out.head_weight.ptr<float>() + t * out.head_weight.stride[0];
    const int64_t si = out.head_index.stride[1], sw = out.head_weight.stride[1];
    if (shared > 0) {
      softmax(logits.shared.ptr<const float>() + t * logits.shared.stride[0], shared, &p_shared);
      for (int64_t i = 0; i < shared; ++i) {
        idx[i * si] = static_cast<int32_t>(i);
        w[i * sw] = static_cast<float>(a_shared * p_shared[i]);
      }
    }
    if (routed > 0) {
      const float* x = logits.routed.ptr<const float>() + t * logits.routed.stride[0];
      softmax(x, routed, &p_routed);
      std::iota(order.begin(), order.end(), 0);
      // Decreasing logit, ties to the lower head: a strict weak order, so the top_k are unique.
      std::partial_sort(
          order.begin(), order.begin() + c.top_k, order.end(),
          [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
      for (int64_t e = 0; e < c.top_k; ++e) {
        idx[(shared + e) * si] = static_cast<int32_t>(shared + order[e]);
        w[(shared + e) * sw] = static_cast<float>(a_routed * p_routed[order[e]]);
      }
    }
  }
  return Status();
}

}  // namespace qwen3vl
