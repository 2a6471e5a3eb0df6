// CUDA runtime errors as qwen3vl::Status values (kDeviceError naming the call that failed). Host
// code only; needs the CUDA runtime headers, hence .cuh.
#pragma once

#include <cuda_runtime.h>

#include "qwen3vl/core/status.hpp"

namespace qwen3vl {

// Status for a runtime return code; `what` names the call (and, for launches, the kernel).
inline Status cuda_status(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status();
  return make_error(StatusCode::kDeviceError, what, " failed: ", cudaGetErrorName(error), " (",
                    cudaGetErrorString(error), ")");
}

}  // namespace qwen3vl

// Returns a kDeviceError Status from the enclosing function when a CUDA runtime call fails.
#define QWEN3VL_CUDA_RETURN_IF_ERROR(call) \
  QWEN3VL_RETURN_IF_ERROR(::qwen3vl::cuda_status((call), #call))

// After a launch: returns the launch error (bad configuration, missing kernel image), naming
// `what`.
#define QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR(what) \
  QWEN3VL_RETURN_IF_ERROR(::qwen3vl::cuda_status(cudaGetLastError(), "launch of " what))
