// CUDA device detection through the runtime API. No device (or no driver) is not an error: the
// list is empty and CPU variants are chosen.
#include <cuda_runtime.h>

#include "qwen3vl/hardware/hardware_info.hpp"

namespace qwen3vl {

std::vector<GpuInfo> detect_gpus() {
  std::vector<GpuInfo> gpus;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return gpus;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    GpuInfo g;
    g.index = i;
    g.name = prop.name;
    g.sm_major = prop.major;
    g.sm_minor = prop.minor;
    g.multiprocessors = prop.multiProcessorCount;
    g.global_memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    g.shared_memory_per_block = static_cast<int64_t>(prop.sharedMemPerBlock);
    gpus.push_back(g);
  }
  return gpus;
}

}  // namespace qwen3vl
