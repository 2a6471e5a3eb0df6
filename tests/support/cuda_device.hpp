// Whether a CUDA device can be used: GPU tests skip cleanly (GTEST_SKIP) where none is.
#pragma once

#include <cuda_runtime.h>

namespace qwen3vl::testing {

inline bool cuda_device_present() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error for later calls
    return false;
  }
  return count > 0;
}

}  // namespace qwen3vl::testing
