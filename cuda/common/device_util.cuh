// Device-side helpers every CUDA kernel shares: the sequence a block works on (cu_seqlens and
// key_lengths read on the device, clamped so bad values cannot reach outside the tensors), and
// loads/stores of f32/f16/bf16 storage with fp32 arithmetic.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernel_args.hpp"
#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/mask.hpp"

namespace qwen3vl::detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct DeviceSpan {
  int64_t q_start = 0, q_len = 0;  // query tokens [q_start, q_start + q_len)
  int64_t k_start = 0, k_len = 0;  // valid keys (after key padding)
  int64_t k_full = 0;              // keys in the sequence, padding included
};

__device__ inline int64_t clamp64(int64_t x, int64_t lo, int64_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

__device__ inline DeviceSpan sequence_span(const AttentionArgs& a, int64_t b) {
  DeviceSpan s;
  if (a.cu_q) {
    s.q_start = clamp64(a.cu_q[b * a.cu_q_stride], 0, a.total_q);
    s.q_len = clamp64(a.cu_q[(b + 1) * a.cu_q_stride], s.q_start, a.total_q) - s.q_start;
    s.k_start = clamp64(a.cu_k[b * a.cu_k_stride], 0, a.total_k);
    s.k_full = clamp64(a.cu_k[(b + 1) * a.cu_k_stride], s.k_start, a.total_k) - s.k_start;
  } else {
    s.q_len = a.seq_q;
    s.k_full = a.seq_k;
  }
  s.k_len = s.k_full;
  if (a.key_lengths) s.k_len = clamp64(a.key_lengths[b * a.key_lengths_stride], 0, s.k_full);
  return s;
}

// The hull [*begin, *end) of the keys that query rows [r0, r1) of a sequence see, reduced over the
// thread block into shared ints (empty: *end <= *begin). Every thread of the block calls it; it
// synchronises the block before and after.
__device__ inline void rows_key_hull(const AttentionArgs& a, const DeviceSpan& span, int64_t r0,
                                     int64_t r1, int* begin, int* end) {
  if (threadIdx.x == 0) *begin = 0x7fffffff, *end = 0;
  __syncthreads();
  for (int64_t i = r0 + threadIdx.x; i < r1; i += blockDim.x) {
    const KeyRange k =
        visible_keys(a.mask_kind, a.window_left, a.window_right, i, span.q_len, span.k_len);
    if (k.end > k.begin) {
      atomicMin(begin, static_cast<int>(k.begin));
      atomicMax(end, static_cast<int>(k.end));
    }
  }
  __syncthreads();
}

__device__ inline int64_t row_offset(const RowTensor& t, int64_t b, int64_t token, int64_t h) {
  return b * t.batch + token * t.token + h * t.head;
}

__device__ inline float load_element(const void* base, int64_t offset, DType t) {
  switch (t) {
    case DType::kF16:
      return __half2float(
          __ushort_as_half(__ldg(static_cast<const unsigned short*>(base) + offset)));
    case DType::kBF16:
      return __uint_as_float(
          static_cast<uint32_t>(__ldg(static_cast<const unsigned short*>(base) + offset)) << 16);
    default: return __ldg(static_cast<const float*>(base) + offset);
  }
}

__device__ inline void store_element(void* base, int64_t offset, DType t, float x) {
  switch (t) {
    case DType::kF16: static_cast<__half*>(base)[offset] = __float2half_rn(x); break;
    case DType::kBF16: static_cast<uint16_t*>(base)[offset] = to_bf16(x).bits; break;
    default: static_cast<float*>(base)[offset] = x; break;
  }
}

// The additive mask at (b, h, i, j), in natural units.
__device__ inline float load_mask(const AttentionArgs& a, int64_t b, int64_t h, int64_t i,
                                  int64_t j) {
  const int64_t off =
      b * a.mask_stride[0] + h * a.mask_stride[1] + i * a.mask_stride[2] + j * a.mask_stride[3];
  return load_element(a.mask, off, a.mask_dtype);
}

}  // namespace qwen3vl::detail
