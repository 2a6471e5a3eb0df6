// What a CUDA variant knows about its device (read once, at creation) and the checks supports()
// makes with it: every tensor must be memory of that device.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "qwen3vl/core/params.hpp"
#include "qwen3vl/cuda/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::detail {

struct DeviceContext {
  int device = 0;
  int cc_major = 0, cc_minor = 0;
  int multiprocessors = 0;
  int max_shared_per_block_optin = 0;  // bytes
  int max_grid_y = 0, max_grid_z = 0;
  std::string name;

  // Resolves options.device (-1: current) and reads the device's properties.
  static Status create(const CudaOptions& options, DeviceContext* out);
  std::string to_string() const;  // "NVIDIA H100 ... (sm_90, 132 SMs)"
};

// Status unless `t` (when present) is device memory of ctx.device: by its tag, and with
// query_pointers by the runtime's pointer attributes too.
Status check_device_tensor(const DeviceContext& ctx, const TensorView& t, const char* name,
                           bool query_pointers = true);
// The same for every tensor of the params (q, k, v, out, lse, weights, masks, cu_seqlens, ...).
Status check_device_params(const DeviceContext& ctx, const AttentionParams& p,
                           bool query_pointers = true);
// Whether forward() may query pointer attributes: not while `stream` is being captured into a
// graph (the tags are still checked then).
Status pointer_queries_allowed(void* stream, bool* allowed);
// The device that is current on this thread must be ctx.device (launches go to the current one).
Status check_current_device(const DeviceContext& ctx);

// Makes Outer(ctx, inner, config): a CUDA variant that drives another CUDA attention object
// (mixture-of-heads over flash2, dynamic sparse over block-sparse), made by
// make_inner(options, &inner) on the device the context resolved.
template <class Outer, class Made, class Config, class MakeInner>
Status create_over_inner(const CudaOptions& options, const Config& config, MakeInner&& make_inner,
                         std::unique_ptr<Made>* out) {
  DeviceContext ctx;
  QWEN3VL_RETURN_IF_ERROR(DeviceContext::create(options, &ctx));
  CudaOptions bound = options;
  bound.device = ctx.device;
  std::unique_ptr<Attention> inner;
  QWEN3VL_RETURN_IF_ERROR(make_inner(bound, &inner));
  *out = std::make_unique<Outer>(ctx, std::move(inner), config);
  return Status();
}

}  // namespace qwen3vl::detail
