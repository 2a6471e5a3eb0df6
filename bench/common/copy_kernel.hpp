// The device copy the GPU bandwidth ratios divide by: one kernel, launched directly or replayed
// from a CUDA graph, so a pair of figures (event-timed, graph-timed) differs only in how the same
// kernel is launched (a graph's memcpy node and cudaMemcpyAsync take different paths).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "qwen3vl/core/status.hpp"

namespace qwen3vl::bench {

// Copies `bytes` from `src` to `dst` (device memory, 16-byte aligned) on `stream`.
Status launch_copy_kernel(void* dst, const void* src, size_t bytes, cudaStream_t stream);

}  // namespace qwen3vl::bench
