// CUDA-event timing shared by the CUDA benchmarks: the median of repeated calls on the current
// stream (0) after untimed warm-ups.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "common/timing.hpp"

namespace qwen3vl::bench {

// The median milliseconds of `reps` calls of `call()` (which enqueues work on stream 0), each
// between two events, after `warmups` untimed calls; -1 if a CUDA call failed (cudaGetLastError()
// says which; the caller reports it).
template <class F>
double cuda_median_ms(int reps, F&& call, int warmups = 1) {
  cudaEvent_t start, stop;
  if (cudaEventCreate(&start) != cudaSuccess) return -1;
  if (cudaEventCreate(&stop) != cudaSuccess) {
    cudaEventDestroy(start);
    return -1;
  }
  bool ok = true;
  for (int w = 0; w < warmups; ++w) call();
  std::vector<double> samples;
  for (int r = 0; r < reps && ok; ++r) {
    float ms = 0;
    ok = cudaEventRecord(start) == cudaSuccess;
    call();
    ok = ok && cudaEventRecord(stop) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess &&
         cudaEventElapsedTime(&ms, start, stop) == cudaSuccess;
    samples.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (!ok || cudaPeekAtLastError() != cudaSuccess) return -1;
  return median(samples);
}

}  // namespace qwen3vl::bench
