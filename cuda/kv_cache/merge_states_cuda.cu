// merge_states_cuda (qwen3vl/cuda/merge_states.hpp): one thread block per (token, head) row, its
// threads over head_dim, with the host merge's weights (detail::merge_weights / merge_value).
#include <cuda_runtime.h>

#include "qwen3vl/cuda/check.cuh"
#include "qwen3vl/cuda/merge_states.hpp"

namespace qwen3vl {
namespace {

constexpr int kMergeThreads = 128;

struct StateView {  // [tokens, heads, D] o (any float dtype) and f32 [tokens, heads] lse
  void* o;
  DType dtype;
  int64_t o_stride[2];
  float* lse;
  int64_t lse_stride[2];
};

StateView state_view(const TensorView& o, const TensorView& lse) {
  return StateView{o.data,
                   o.dtype,
                   {o.stride[0], o.stride[1]},
                   static_cast<float*>(lse.data),
                   {lse.stride[0], lse.stride[1]}};
}

__device__ float load(const StateView& s, int64_t i) {
  switch (s.dtype) {
    case DType::kF16: return to_float(static_cast<const half*>(s.o)[i]);
    case DType::kBF16: return to_float(static_cast<const bfloat16*>(s.o)[i]);
    default: return static_cast<const float*>(s.o)[i];
  }
}

__device__ void store(const StateView& s, int64_t i, float x) {
  switch (s.dtype) {
    case DType::kF16: static_cast<half*>(s.o)[i] = from_float<half>(x); break;
    case DType::kBF16: static_cast<bfloat16*>(s.o)[i] = from_float<bfloat16>(x); break;
    default: static_cast<float*>(s.o)[i] = x; break;
  }
}

// blockIdx.x: the row (token * heads + head). Every thread reads both LSEs before thread 0 writes
// lse_out (which may alias either); each element of o is read before the same thread writes it.
__global__ void merge_kernel(StateView a, StateView b, StateView out, int64_t heads, int64_t dim) {
  const int64_t t = blockIdx.x / heads, h = blockIdx.x % heads;
  const detail::MergeWeights w =
      detail::merge_weights(a.lse[t * a.lse_stride[0] + h * a.lse_stride[1]],
                            b.lse[t * b.lse_stride[0] + h * b.lse_stride[1]]);
  const int64_t ia = t * a.o_stride[0] + h * a.o_stride[1];
  const int64_t ib = t * b.o_stride[0] + h * b.o_stride[1];
  const int64_t io = t * out.o_stride[0] + h * out.o_stride[1];
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
    const float x1 = w.w1 != 0.0f ? load(a, ia + c) : 0.0f;
    const float x2 = w.w2 != 0.0f ? load(b, ib + c) : 0.0f;
    store(out, io + c, detail::merge_value(w, x1, x2));
  }
  __syncthreads();
  if (threadIdx.x == 0) out.lse[t * out.lse_stride[0] + h * out.lse_stride[1]] = w.lse;
}

}  // namespace

Status merge_states_cuda(const TensorView& o1, const TensorView& lse1, const TensorView& o2,
                         const TensorView& lse2, const TensorView& out, const TensorView& lse_out,
                         void* stream) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_state(o1, lse1, "o1", "lse1", o1, Device::kCUDA));
  QWEN3VL_RETURN_IF_ERROR(detail::check_state(o2, lse2, "o2", "lse2", o1, Device::kCUDA));
  QWEN3VL_RETURN_IF_ERROR(detail::check_state(out, lse_out, "out", "lse_out", o1, Device::kCUDA));
  const int64_t rows = o1.shape[0] * o1.shape[1];
  if (rows == 0 || o1.shape[2] == 0) return Status();
  if (rows > 0x7fffffff)
    return make_error(StatusCode::kInvalidArgument, "o1.shape = ", o1.shape_string(),
                      ": at most 2^31 - 1 (token, head) rows a call");
  merge_kernel<<<static_cast<unsigned>(rows), kMergeThreads, 0,
                 static_cast<cudaStream_t>(stream)>>>(state_view(o1, lse1), state_view(o2, lse2),
                                                      state_view(out, lse_out), o1.shape[1],
                                                      o1.shape[2]);
  QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("merge_kernel (merge_states_cuda)");
  return Status();
}

}  // namespace qwen3vl
