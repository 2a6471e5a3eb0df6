// Linear variant: feature counts, the Performer projection, and the checks both backends share.
#include "linear_common.hpp"

#include <cmath>
#include <random>

namespace qwen3vl {

int64_t linear_feature_count(const LinearConfig& config, int64_t head_dim) {
  if (config.feature_map == LinearFeatureMap::kEluPlusOne) return head_dim;
  if (config.performer_features > 0) return config.performer_features;
  const double m = static_cast<double>(head_dim) * std::log(static_cast<double>(head_dim));
  const int64_t rounded = (static_cast<int64_t>(std::ceil(m)) + 15) / 16 * 16;
  return rounded < 16 ? 16 : rounded;
}

Status make_performer_projection(const LinearConfig& config, int64_t head_dim,
                                 std::vector<float>* omega) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_linear_config(config));
  if (head_dim < 1 || head_dim > 256)
    return make_error(StatusCode::kInvalidArgument, "head_dim = ", head_dim, ": allowed 1..256");
  const int64_t d = head_dim, m = linear_feature_count(config, head_dim);
  std::mt19937_64 rng(config.performer_seed);
  std::normal_distribution<double> gauss(0.0, 1.0);
  omega->assign(static_cast<size_t>(m * d), 0.0f);
  std::vector<double> block(static_cast<size_t>(d * d));
  for (int64_t first = 0; first < m; first += d) {
    for (double& x : block) x = gauss(rng);
    // Gram-Schmidt (twice, for orthogonality in double) over the rows of a Gaussian D x D block.
    for (int64_t r = 0; r < d; ++r) {
      double* row = &block[static_cast<size_t>(r * d)];
      for (int pass = 0; pass < 2; ++pass)
        for (int64_t p = 0; p < r; ++p) {
          const double* prev = &block[static_cast<size_t>(p * d)];
          double dot = 0.0;
          for (int64_t c = 0; c < d; ++c) dot += row[c] * prev[c];
          for (int64_t c = 0; c < d; ++c) row[c] -= dot * prev[c];
        }
      double norm = 0.0;
      for (int64_t c = 0; c < d; ++c) norm += row[c] * row[c];
      norm = std::sqrt(norm);
      for (int64_t c = 0; c < d; ++c) row[c] /= norm;
    }
    for (int64_t r = 0; r < d && first + r < m; ++r) {
      double length = std::sqrt(static_cast<double>(d));
      if (config.performer_norm == PerformerNorm::kChi) {
        double sq = 0.0;
        for (int64_t c = 0; c < d; ++c) {
          const double g = gauss(rng);
          sq += g * g;
        }
        length = std::sqrt(sq);
      }
      for (int64_t c = 0; c < d; ++c)
        (*omega)[static_cast<size_t>((first + r) * d + c)] =
            static_cast<float>(block[static_cast<size_t>(r * d + c)] * length);
    }
  }
  return Status();
}

namespace detail {

Status check_linear_config(const LinearConfig& c) {
  if (c.chunk < 1 || c.chunk > 256)
    return make_error(StatusCode::kInvalidArgument, "LinearConfig.chunk = ", c.chunk,
                      ": allowed 1..256");
  if (!(c.eps >= 0.0f) || !std::isfinite(c.eps))
    return make_error(StatusCode::kInvalidArgument, "LinearConfig.eps = ", c.eps,
                      ": must be finite and >= 0");
  if (c.feature_map == LinearFeatureMap::kPerformer &&
      (c.performer_features < 0 || c.performer_features > 4096))
    return make_error(StatusCode::kInvalidArgument,
                      "LinearConfig.performer_features = ", c.performer_features,
                      ": allowed 0 (D ln D) or 1..4096");
  return Status();
}

namespace {

Status refuse(const char* what, const std::string& value) {
  return make_error(StatusCode::kUnsupported, what, " = ", value,
                    ": the linear variant computes no softmax, so it takes none");
}

// Causal linear attention pairs query i with key i, so every sequence needs Lq == Lk.
Status check_square(const AttentionParams& p, Device device) {
  if (!p.varlen()) {
    if (p.q.shape[1] != p.k.shape[1])
      return make_error(StatusCode::kShapeMismatch, "q.shape[1] = ", p.q.shape[1],
                        ", k.shape[1] = ", p.k.shape[1],
                        ": causal linear attention needs Lq == Lk");
    return Status();
  }
  if (device != Device::kCPU || p.cu_seqlens_q.device != Device::kCPU) {
    if (p.cu_seqlens_q.data != p.cu_seqlens_k.data)
      return make_error(StatusCode::kInvalidArgument,
                        "cu_seqlens_k: causal linear attention on device memory needs the same "
                        "tensor as cu_seqlens_q (Lq == Lk per sequence)");
    return Status();
  }
  const int32_t* cq = p.cu_seqlens_q.ptr<const int32_t>();
  const int32_t* ck = p.cu_seqlens_k.ptr<const int32_t>();
  for (int64_t b = 0; b < p.cu_seqlens_q.shape[0]; ++b) {
    const int64_t a = cq[b * p.cu_seqlens_q.stride[0]], k = ck[b * p.cu_seqlens_k.stride[0]];
    if (a != k)
      return make_error(StatusCode::kShapeMismatch, "cu_seqlens_k[", b, "] = ", k,
                        ", cu_seqlens_q[", b, "] = ", a,
                        ": causal linear attention needs Lq == Lk");
  }
  return Status();
}

}  // namespace

Status check_linear_params(const AttentionParams& p, const LinearConfig& config, Device device,
                           LinearCall* call) {
  QWEN3VL_RETURN_IF_ERROR(check_linear_config(config));
  QWEN3VL_RETURN_IF_ERROR(validate(p, &call->shape));
  return check_linear_problem(p, config, device, call);
}

Status check_linear_problem(const AttentionParams& p, const LinearConfig& config, Device device,
                            LinearCall* call) {
  if (p.q.device != device)
    return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                      ": this linear variant runs on ", to_string(device));
  if (p.mask != MaskKind::kNone && p.mask != MaskKind::kCausal &&
      p.mask != MaskKind::kCausalTopLeft)
    return make_error(StatusCode::kUnsupported, "mask = ", to_string(p.mask),
                      ": the linear variant supports none, causal and causal_top_left");
  if (p.additive_mask.present())
    return make_error(StatusCode::kUnsupported, "additive_mask = ", p.additive_mask.shape_string(),
                      ": the linear variant cannot apply per-score masks");
  if (p.weights.present()) return refuse("weights", p.weights.shape_string());
  if (p.lse.present()) return refuse("lse", p.lse.shape_string());
  if (p.softcap > 0.0f) return refuse("softcap", std::to_string(p.softcap));
  if (p.scale.has_value() && config.feature_map == LinearFeatureMap::kEluPlusOne)
    return make_error(StatusCode::kUnsupported, "scale = ", *p.scale,
                      ": elu+1 features take no scale (leave it unset)");
  if (p.key_lengths.present() && p.varlen())
    return make_error(
        StatusCode::kUnsupported,
        "key_lengths with cu_seqlens: the linear variant pads fixed-length batches only");
  QWEN3VL_RETURN_IF_ERROR(refuse_sparse_rows(p, "linear"));
  call->causal = p.mask != MaskKind::kNone;
  if (call->causal) QWEN3VL_RETURN_IF_ERROR(check_square(p, device));
  if (config.feature_map == LinearFeatureMap::kPerformer && call->shape.head_dim != config.head_dim)
    return make_error(StatusCode::kInvalidArgument,
                      "q.shape[-1] (head_dim) = ", call->shape.head_dim,
                      ": this Performer was built for LinearConfig.head_dim = ", config.head_dim);
  call->features = linear_feature_count(config, call->shape.head_dim);
  return Status();
}

Status check_linear_state(const AttentionParams& p, const LinearConfig& config,
                          const LinearState& state, Device device, LinearCall* call) {
  QWEN3VL_RETURN_IF_ERROR(check_linear_params(p, config, device, call));
  if (config.feature_map != LinearFeatureMap::kEluPlusOne)
    return make_error(StatusCode::kUnsupported,
                      "LinearConfig.feature_map = performer: the state API needs elu+1 features "
                      "(the Performer's key stabiliser is a max over the call's keys)");
  if (!call->causal)
    return make_error(StatusCode::kUnsupported, "mask = ", to_string(p.mask),
                      ": the state API is causal (kCausal or kCausalTopLeft)");
  const AttentionShape& s = call->shape;
  const TensorView* views[] = {&state.s, &state.z};
  const char* names[] = {"state.s", "state.z"};
  for (int t = 0; t < 2; ++t) {
    QWEN3VL_RETURN_IF_ERROR(check_present(*views[t], names[t]));
    if (views[t]->dtype != DType::kF32)
      return make_error(StatusCode::kInvalidArgument, names[t],
                        ".dtype = ", to_string(views[t]->dtype), ": must be f32");
    if (views[t]->device != device)
      return make_error(StatusCode::kInvalidArgument, names[t],
                        ".device = ", to_string(views[t]->device), ": must be ", to_string(device));
    QWEN3VL_RETURN_IF_ERROR(check_last_contiguous(*views[t], names[t]));
  }
  QWEN3VL_RETURN_IF_ERROR(
      check_dims(state.s, "state.s", 4, {s.batch, s.kv_heads, call->features, s.head_dim}));
  QWEN3VL_RETURN_IF_ERROR(check_dims(state.z, "state.z", 3, {s.batch, s.kv_heads, call->features}));
  return Status();
}

}  // namespace detail
}  // namespace qwen3vl
