#include "device_context.hpp"

#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/check.cuh"

namespace qwen3vl {
namespace detail {

Status DeviceContext::create(const CudaOptions& options, DeviceContext* out) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky "no device" error
    return make_error(StatusCode::kDeviceError, "cudaGetDeviceCount found no usable CUDA device (",
                      cudaGetErrorString(err), ")");
  }
  DeviceContext c;
  c.device = options.device;
  if (c.device < 0) QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&c.device));
  if (c.device >= count)
    return make_error(StatusCode::kInvalidArgument, "CudaOptions.device = ", options.device,
                      ": allowed -1 (current) or 0..", count - 1);
  cudaDeviceProp prop{};
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, c.device));
  c.cc_major = prop.major;
  c.cc_minor = prop.minor;
  c.multiprocessors = prop.multiProcessorCount;
  c.max_grid_y = prop.maxGridSize[1];
  c.max_grid_z = prop.maxGridSize[2];
  c.name = prop.name;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(
      &c.max_shared_per_block_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c.device));
  *out = c;
  return Status();
}

std::string DeviceContext::to_string() const {
  return name + " (device " + std::to_string(device) + ", sm_" + std::to_string(cc_major) +
         std::to_string(cc_minor) + ", " + std::to_string(multiprocessors) + " SMs)";
}

Status check_device_tensor(const DeviceContext& ctx, const TensorView& t, const char* name,
                           bool query_pointers) {
  if (!t.present()) return Status();
  if (t.device != Device::kCUDA || t.device_index != ctx.device)
    return make_error(StatusCode::kUnsupported, name, ".device = ", qwen3vl::to_string(t.device),
                      ":", t.device_index, ": must be cuda:", ctx.device,
                      " (the variant's device)");
  if (t.data == nullptr || !query_pointers) return Status();  // validate() checked empty ones
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, t.data);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return make_error(StatusCode::kInvalidArgument, name, ".data = ", t.data,
                      ": not memory the CUDA runtime knows (", cudaGetErrorString(err), ")");
  }
  const bool device_memory =
      attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
  if (!device_memory || attr.device != ctx.device)
    return make_error(StatusCode::kInvalidArgument, name, ".data = ", t.data,
                      ": is not device memory of cuda:", ctx.device, " (memory type ",
                      static_cast<int>(attr.type), ", device ", attr.device, ")");
  return Status();
}

Status check_device_params(const DeviceContext& ctx, const AttentionParams& p,
                           bool query_pointers) {
  const TensorView* tensors[] = {&p.q,
                                 &p.k,
                                 &p.v,
                                 &p.out,
                                 &p.lse,
                                 &p.weights,
                                 &p.cu_seqlens_q,
                                 &p.cu_seqlens_k,
                                 &p.additive_mask,
                                 &p.key_lengths};
  const char* names[] = {"q",
                         "k",
                         "v",
                         "out",
                         "lse",
                         "weights",
                         "cu_seqlens_q",
                         "cu_seqlens_k",
                         "additive_mask",
                         "key_lengths"};
  for (int i = 0; i < 10; ++i)
    QWEN3VL_RETURN_IF_ERROR(check_device_tensor(ctx, *tensors[i], names[i], query_pointers));
  return Status();
}

Status pointer_queries_allowed(void* stream, bool* allowed) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &capture));
  *allowed = capture == cudaStreamCaptureStatusNone;
  return Status();
}

Status check_current_device(const DeviceContext& ctx) {
  int current = -1;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
  if (current != ctx.device)
    return make_error(StatusCode::kInvalidArgument, "current CUDA device = ", current, ": must be ",
                      ctx.device, " (the variant's device; call cudaSetDevice first)");
  return Status();
}

}  // namespace detail

Status cuda_compute_capability(int device, int* major, int* minor) {
  detail::DeviceContext ctx;
  QWEN3VL_RETURN_IF_ERROR(detail::DeviceContext::create(CudaOptions{device}, &ctx));
  *major = ctx.cc_major;
  *minor = ctx.cc_minor;
  return Status();
}

}  // namespace qwen3vl
