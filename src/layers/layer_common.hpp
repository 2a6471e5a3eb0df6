// Checks and helpers both attention layers share: options, host weight views, activation views,
// building the device ops, and the step timer behind LayerProfile.
#pragma once

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "layer_ops.hpp"
#include "qwen3vl/core/params.hpp"
#include "qwen3vl/layers/options.hpp"
#include "qwen3vl/layers/text_attention.hpp"

namespace qwen3vl::layers::detail {

inline Status check_options(const LayerOptions& o) {
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16)
    return make_error(StatusCode::kInvalidArgument, "options.dtype = ", to_string(o.dtype),
                      ": allowed f32, f16, bf16");
#if !QWEN3VL_WITH_CUDA
  if (o.device == Device::kCUDA)
    return make_error(StatusCode::kNotImplemented,
                      "options.device = cuda: this build has no CUDA backend (QWEN3VL_CUDA=OFF)");
#endif
  return Status();
}

inline Status make_layer_ops(const LayerOptions& o, std::unique_ptr<LayerOps>* out) {
#if QWEN3VL_WITH_CUDA
  if (o.device == Device::kCUDA) return create_cuda_layer_ops(o.device_index, out);
#endif
  return create_cpu_layer_ops(o.cpu, out);
}

// A host weight of `dims` (any float dtype, last dimension contiguous), appended to `out` as fp32.
inline Status append_host_weight(const TensorView& t, const char* name,
                                 std::initializer_list<int64_t> dims, std::vector<float>* out) {
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_present(t, name));
  QWEN3VL_RETURN_IF_ERROR(
      qwen3vl::detail::check_dims(t, name, static_cast<int>(dims.size()), dims));
  if (!is_floating(t.dtype))
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype),
                      ": allowed f32, f16, bf16");
  if (t.device != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument, name, ".device = ", to_string(t.device),
                      ": weights are given in host memory (create() copies them to the device)");
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_last_contiguous(t, name));
  const int64_t rows = t.rank == 2 ? t.shape[0] : 1, cols = t.shape[t.rank - 1];
  const int64_t row_stride = t.rank == 2 ? t.stride[0] : 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out->push_back(load_float(t, r * row_stride + c));
  return Status();
}

// An activation view: present, the layer's dtype and device, `dims`, last dimension contiguous.
inline Status check_activation(const TensorView& t, const char* name, const LayerOptions& o,
                               std::initializer_list<int64_t> dims) {
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_present(t, name));
  if (t.dtype != o.dtype)
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype),
                      ": must be the layer's dtype ", to_string(o.dtype));
  if (t.device != o.device || (o.device == Device::kCUDA && t.device_index != o.device_index))
    return make_error(StatusCode::kInvalidArgument, name, ".device = ", to_string(t.device), ":",
                      t.device_index, ": must be the layer's device ", to_string(o.device), ":",
                      o.device_index);
  QWEN3VL_RETURN_IF_ERROR(
      qwen3vl::detail::check_dims(t, name, static_cast<int>(dims.size()), dims));
  return qwen3vl::detail::check_last_contiguous(t, name);
}

// Adds the wall time of each step to a LayerProfile (synchronising the stream first on CUDA).
class StepTimer {
 public:
  StepTimer(LayerProfile* profile, const LayerOps& ops, void* stream)
      : profile_(profile), ops_(ops), stream_(stream), last_(now()) {
    if (profile_) ++profile_->calls;
  }
  Status mark(double LayerProfile::*field) {
    if (!profile_) return Status();
    QWEN3VL_RETURN_IF_ERROR(ops_.synchronize(stream_));
    const auto t = now();
    profile_->*field += std::chrono::duration<double>(t - last_).count();
    last_ = t;
    return Status();
  }

 private:
  static std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }
  LayerProfile* profile_;
  const LayerOps& ops_;
  void* stream_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace qwen3vl::layers::detail
