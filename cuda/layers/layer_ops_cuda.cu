// The CUDA LayerOps: projections through cuBLAS SGEMM (fp32, no TF32: f16/bf16 activations are
// widened into fp32 staging first), a bias + rounding kernel, the per-head RMSNorm kernel (one
// warp a head row, shuffles for the sum of squares) and the CUDA RoPE applier. Every kernel
// computes in fp32 and compiles for sm_61 and up.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "qwen3vl/cuda/check.cuh"
#include "qwen3vl/rope/cuda.hpp"
#include "src/core/workspace_carver.hpp"
#include "src/layers/layer_ops.hpp"

namespace qwen3vl::layers::detail {
namespace {

Status cublas_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status();
  return make_error(StatusCode::kDeviceError, what, " failed: cuBLAS status ", static_cast<int>(s));
}

template <class T>
__device__ inline float load(const T* p) {
  return to_float(*p);
}

// x32[r, c] = x[b, i, c] for r = b * rows + i: one thread an element.
template <class T>
__global__ void widen_rows(const T* x, int64_t rows, int64_t cols, int64_t batch_stride,
                           int64_t row_stride, int64_t count, float* x32) {
  const int64_t at = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (at >= count * cols) return;
  const int64_t r = at / cols, c = at % cols;
  x32[at] = load(x + (r / rows) * batch_stride + (r % rows) * row_stride + c);
}

// y[b, i, c] = round(src[r, c] + bias[c]) where src rows are contiguous (ld = cols) when
// `staged`, else src is y itself (fp32, in place).
template <class T>
__global__ void finish_rows(const float* src, const float* bias, T* y, int64_t rows, int64_t cols,
                            int64_t batch_stride, int64_t row_stride, int64_t count, bool staged) {
  const int64_t at = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (at >= count * cols) return;
  const int64_t r = at / cols, c = at % cols;
  const int64_t dst = (r / rows) * batch_stride + (r % rows) * row_stride + c;
  const float v = staged ? src[at] : to_float(y[dst]);
  y[dst] = from_float<T>(bias ? v + bias[c] : v);
}

// One warp per (token, head) row of x [outer, rows, H, D]: x * rsqrt(mean(x^2) + eps), rounded to
// T, times the weight, rounded again.
template <class T>
__global__ void rms_norm_rows(T* x, const float* weight, float eps, int64_t outer, int64_t rows,
                              int64_t heads, int64_t dim, int64_t s0, int64_t s1, int64_t s2) {
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= outer * rows * heads) return;
  const int64_t h = warp % heads, i = warp / heads % rows, o = warp / heads / rows;
  T* v = x + o * s0 + i * s1 + h * s2;
  float sum = 0.0f;
  for (int64_t d = lane; d < dim; d += 32) {
    const float f = to_float(v[d]);
    sum += f * f;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const float scale = 1.0f / sqrtf(sum / static_cast<float>(dim) + eps);
  for (int64_t d = lane; d < dim; d += 32) {
    const float normed = to_float(from_float<T>(to_float(v[d]) * scale));
    v[d] = from_float<T>(weight[d] * normed);
  }
}

unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

class CudaLayerOps final : public LayerOps {
 public:
  ~CudaLayerOps() override {
    for (void* p : buffers_) cudaFree(p);
    if (handle_) cublasDestroy(handle_);
  }

  Status init(int device_index) {
    if (device_index < 0) QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device_index));
    device_ = device_index;
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    QWEN3VL_RETURN_IF_ERROR(cublas_status(cublasCreate(&handle_), "cublasCreate"));
    // Plain fp32 FMA (no TF32 tensor-op rounding): results stay comparable with the CPU's.
    QWEN3VL_RETURN_IF_ERROR(
        cublas_status(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode"));
    return rope::create_rope_cuda(device_, &rope_);
  }

  Device device() const override { return Device::kCUDA; }

  Status store(const std::vector<float>& host, const float** out) override {
    void* p = nullptr;
    const size_t bytes = host.size() * sizeof(float);
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes > 0 ? bytes : 1));
    buffers_.push_back(p);
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice));
    *out = static_cast<const float*>(p);
    return Status();
  }

  Status rope_table(const rope::RopeTable& table, rope::RopeTableView* out) override {
    QWEN3VL_RETURN_IF_ERROR(rope::DeviceRopeTable::upload(table, device_, &table_));
    *out = table_.view();
    return Status();
  }

  const rope::RopeApplier& rope() const override { return *rope_; }

  // f16 / bf16 staging: x widened to fp32, then fp32 y, 256-byte aligned for cuBLAS (sizing
  // carves what linear() carves).
  static constexpr size_t kStagingAlign = 256;
  static void carve_staging(qwen3vl::detail::Carver& c, const RowsView& x, int64_t out, float** x32,
                            float** y32) {
    *x32 = c.take<float>(x.count() * x.cols);
    *y32 = c.take<float>(x.count() * out);
  }

  size_t linear_scratch_bytes(const RowsView& x, int64_t out) const override {
    if (x.dtype == DType::kF32) return 0;
    qwen3vl::detail::Carver sizing(nullptr, kStagingAlign);
    float *x32, *y32;
    carve_staging(sizing, x, out, &x32, &y32);
    return sizing.used() + kStagingAlign;
  }

  Status linear(const RowsView& x, const Linear& w, const RowsView& y, void* scratch,
                void* stream) const override {
    if (x.cols != w.in || y.cols != w.out || x.count() != y.count())
      return make_error(StatusCode::kInternal, "linear: x [", x.count(), ", ", x.cols, "], W [",
                        w.out, ", ", w.in, "], y [", y.count(), ", ", y.cols, "] do not agree");
    const auto s = static_cast<cudaStream_t>(stream);
    QWEN3VL_RETURN_IF_ERROR(cublas_status(cublasSetStream(handle_, s), "cublasSetStream"));
    const float one = 1.0f, zero = 0.0f;
    const int64_t n = x.count() * w.out;
    constexpr int kThreads = 256;
    if (x.dtype == DType::kF32 && y.dtype == DType::kF32) {
      // Row-major y[T, N] = x[T, K] W^T is column-major y^T = W x^T: op(A) = W (A = w^T, ld K).
      QWEN3VL_RETURN_IF_ERROR(cublas_status(
          cublasSgemmStridedBatched(
              handle_, CUBLAS_OP_T, CUBLAS_OP_N, int(w.out), int(x.rows), int(w.in), &one, w.w,
              int(w.in), 0, static_cast<const float*>(x.data), int(x.row_stride), x.batch_stride,
              &zero, static_cast<float*>(y.data), int(y.row_stride), y.batch_stride, int(x.batch)),
          "cublasSgemmStridedBatched"));
      if (w.bias) {
        finish_rows<float><<<blocks_for(n, kThreads), kThreads, 0, s>>>(
            nullptr, w.bias, static_cast<float*>(y.data), y.rows, y.cols, y.batch_stride,
            y.row_stride, y.count(), false);
        QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("finish_rows");
      }
      return Status();
    }
    qwen3vl::detail::Carver carver = qwen3vl::detail::carve(scratch, kStagingAlign);
    float *x32, *y32;
    carve_staging(carver, x, y.cols, &x32, &y32);
    QWEN3VL_RETURN_IF_ERROR(dispatch_float_dtype(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      widen_rows<T><<<blocks_for(x.count() * x.cols, kThreads), kThreads, 0, s>>>(
          static_cast<const T*>(x.data), x.rows, x.cols, x.batch_stride, x.row_stride, x.count(),
          x32);
      return cuda_status(cudaGetLastError(), "launch of widen_rows");
    }));
    QWEN3VL_RETURN_IF_ERROR(cublas_status(
        cublasSgemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, int(w.out), int(x.count()), int(w.in), &one,
                    w.w, int(w.in), x32, int(x.cols), &zero, y32, int(w.out)),
        "cublasSgemm"));
    return dispatch_float_dtype(y.dtype, [&](auto tag) {
      using T = decltype(tag);
      finish_rows<T><<<blocks_for(n, kThreads), kThreads, 0, s>>>(
          y32, w.bias, static_cast<T*>(y.data), y.rows, y.cols, y.batch_stride, y.row_stride,
          y.count(), true);
      return cuda_status(cudaGetLastError(), "launch of finish_rows");
    });
  }

  Status rms_norm_heads(const TensorView& x, const float* weight, float eps,
                        void* stream) const override {
    const int r = x.rank;
    const int64_t outer = r == 4 ? x.shape[0] : 1, rows = x.shape[r - 3];
    const int64_t heads = x.shape[r - 2], dim = x.shape[r - 1];
    const int64_t s0 = r == 4 ? x.stride[0] : 0, s1 = x.stride[r - 3], s2 = x.stride[r - 2];
    const int64_t threads = outer * rows * heads * 32;
    constexpr int kThreads = 256;
    const auto s = static_cast<cudaStream_t>(stream);
    return dispatch_float_dtype(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      rms_norm_rows<T><<<blocks_for(threads, kThreads), kThreads, 0, s>>>(
          x.ptr<T>(), weight, eps, outer, rows, heads, dim, s0, s1, s2);
      return cuda_status(cudaGetLastError(), "launch of rms_norm_rows");
    });
  }

  Status copy_from_host(void* dst, const void* src, size_t bytes, void* stream) const override {
    if (bytes == 0) return Status();
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                                 static_cast<cudaStream_t>(stream)));
    return Status();
  }

  Status synchronize(void* stream) const override {
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
    return Status();
  }

  std::string describe() const override {
    return "cuda layer ops (cuBLAS SGEMM, fp32 RMSNorm kernel; device " + std::to_string(device_) +
           ")";
  }

 private:
  int device_ = 0;
  cublasHandle_t handle_ = nullptr;
  std::unique_ptr<rope::RopeApplier> rope_;
  rope::DeviceRopeTable table_;
  std::vector<void*> buffers_;
};

}  // namespace

Status create_cuda_layer_ops(int device_index, std::unique_ptr<LayerOps>* out) {
  auto ops = std::make_unique<CudaLayerOps>();
  QWEN3VL_RETURN_IF_ERROR(ops->init(device_index));
  *out = std::move(ops);
  return Status();
}

}  // namespace qwen3vl::layers::detail
