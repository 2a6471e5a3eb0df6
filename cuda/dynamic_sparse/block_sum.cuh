// Block-wide reductions for the dynamic-sparse kernels; every thread gets the result.
#pragma once

namespace qwen3vl::detail {

// `cell` is one shared word, zero on entry and zero again on exit (one cell serves a loop of sums).
template <class T>
__device__ T block_sum(T v, T* cell) {
  atomicAdd(cell, v);
  __syncthreads();
  const T all = *cell;
  __syncthreads();
  if (threadIdx.x == 0) *cell = T(0);
  __syncthreads();
  return all;
}

// Maximum; `warps` holds one float per warp (blockDim.x a multiple of 32, at most 1024).
__device__ inline float block_max(float v, float* warps) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = v;
  __syncthreads();
  float all = warps[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) all = fmaxf(all, warps[w]);
  return all;
}

}  // namespace qwen3vl::detail
