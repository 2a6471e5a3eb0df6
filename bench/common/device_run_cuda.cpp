// The CUDA side of DeviceRun: device copies of the problem, CUDA-event timing, cuBLAS SGEMM.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <random>

#include "cuda_timing.hpp"
#include "device_run.hpp"
#include "timing.hpp"

namespace qwen3vl::bench {
namespace {

#define QWEN3VL_BENCH_CUDA_CHECK(call)                                                    \
  do {                                                                                    \
    const cudaError_t err_ = (call);                                                      \
    if (err_ != cudaSuccess)                                                              \
      return make_error(StatusCode::kDeviceError, #call, ": ", cudaGetErrorString(err_)); \
  } while (0)

#define QWEN3VL_BENCH_CUBLAS_CHECK(call)                                     \
  do {                                                                       \
    const cublasStatus_t err_ = (call);                                      \
    if (err_ != CUBLAS_STATUS_SUCCESS)                                       \
      return make_error(StatusCode::kDeviceError, #call, ": cuBLAS status ", \
                        static_cast<int>(err_));                             \
  } while (0)

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DevicePtr = std::unique_ptr<void, DeviceFree>;

Status device_alloc(size_t bytes, DevicePtr* out) {
  void* p = nullptr;
  if (bytes) QWEN3VL_BENCH_CUDA_CHECK(cudaMalloc(&p, bytes));
  out->reset(p);
  return Status();
}

// Bytes from a view's data pointer to one past its last element (strides are non-negative).
size_t extent_bytes(const TensorView& t) {
  int64_t last = 0;
  for (int d = 0; d < t.rank; ++d) {
    if (t.shape[d] == 0) return 0;
    last += (t.shape[d] - 1) * t.stride[d];
  }
  return static_cast<size_t>((last + 1) * size_of(t.dtype));
}

class CudaRun final : public DeviceRun {
 public:
  ~CudaRun() override {
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init(const testing::Problem& host) {
    QWEN3VL_BENCH_CUDA_CHECK(cudaStreamCreate(&stream_));
    AttentionShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(host.params, &s));
    params_ = host.params;
    for (TensorView* t : {&params_.q, &params_.k, &params_.v, &params_.out, &params_.lse,
                          &params_.weights, &params_.cu_seqlens_q, &params_.cu_seqlens_k,
                          &params_.additive_mask, &params_.key_lengths})
      QWEN3VL_RETURN_IF_ERROR(upload(t));
    if (params_.varlen()) {  // device cu_seqlens need the host maxima
      params_.max_seqlen_q = s.max_q;
      params_.max_seqlen_k = s.max_k;
    }
    return Status();
  }

  const AttentionParams& params() const override { return params_; }
  void* stream() const override { return stream_; }

  Status workspace(size_t bytes, Workspace* ws) override {
    QWEN3VL_RETURN_IF_ERROR(device_alloc(bytes, &workspace_));
    *ws = Workspace{workspace_.get(), bytes};
    return Status();
  }

  Status time(const std::function<Status()>& call, int warmup, int repeats,
              std::vector<double>* ms) override {
    return cuda_event_samples(stream_, warmup, repeats, 1, call, ms);
  }

  Status fetch_output(testing::Problem* host) override {
    QWEN3VL_BENCH_CUDA_CHECK(cudaMemcpy(host->params.out.data, params_.out.data,
                                        extent_bytes(params_.out), cudaMemcpyDeviceToHost));
    return Status();
  }

 private:
  // Replaces a present host view by a device copy with the same shape and strides.
  Status upload(TensorView* t) {
    if (!t->present()) return Status();
    const size_t bytes = extent_bytes(*t);
    DevicePtr copy;
    QWEN3VL_RETURN_IF_ERROR(device_alloc(bytes, &copy));
    if (bytes)
      QWEN3VL_BENCH_CUDA_CHECK(cudaMemcpy(copy.get(), t->data, bytes, cudaMemcpyHostToDevice));
    t->data = copy.get();
    t->device = Device::kCUDA;
    t->device_index = 0;
    buffers_.push_back(std::move(copy));
    return Status();
  }

  AttentionParams params_;
  std::vector<DevicePtr> buffers_;
  DevicePtr workspace_;
  cudaStream_t stream_ = nullptr;
};

// One cuBLAS SGEMM size: C = A B on n x n fp32 matrices, timed with events.
struct CublasSgemm {
  Status init(int64_t size) {
    n = size;
    const size_t elements = static_cast<size_t>(n * n);
    std::vector<float> host(elements);
    std::mt19937 rng(12345);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& x : host) x = dist(rng);
    for (DevicePtr* m : {&a, &b, &c}) {
      QWEN3VL_RETURN_IF_ERROR(device_alloc(elements * sizeof(float), m));
      QWEN3VL_BENCH_CUDA_CHECK(
          cudaMemcpy(m->get(), host.data(), elements * sizeof(float), cudaMemcpyHostToDevice));
    }
    return Status();
  }
  Status run(cublasHandle_t handle, double* gflops) {
    const float one = 1.0f, zero = 0.0f;
    const int m = static_cast<int>(n);
    std::vector<double> ms;
    QWEN3VL_RETURN_IF_ERROR(cuda_event_samples(
        nullptr, 0, 1, 1,
        [&]() -> Status {
          QWEN3VL_BENCH_CUBLAS_CHECK(cublasSgemm(
              handle, CUBLAS_OP_N, CUBLAS_OP_N, m, m, m, &one, static_cast<const float*>(a.get()),
              m, static_cast<const float*>(b.get()), m, &zero, static_cast<float*>(c.get()), m));
          return Status();
        },
        &ms));
    *gflops = 2.0 * static_cast<double>(n) * n * n / (ms[0] * 1e6);
    return Status();
  }
  int64_t n = 0;
  DevicePtr a, b, c;
};

}  // namespace

Status make_cuda_run(testing::Problem* host, std::unique_ptr<DeviceRun>* out) {
  auto run = std::make_unique<CudaRun>();
  QWEN3VL_RETURN_IF_ERROR(run->init(*host));
  *out = std::move(run);
  return Status();
}

Status measure_cuda_sgemm(SgemmRate* out) {
  cublasHandle_t handle = nullptr;
  QWEN3VL_BENCH_CUBLAS_CHECK(cublasCreate(&handle));
  std::unique_ptr<cublasContext, decltype(&cublasDestroy)> owner(handle, &cublasDestroy);
  // Default math: cublasSgemm stays on fp32 CUDA cores (TF32 only with CUBLAS_TF32_TENSOR_OP_MATH).
  QWEN3VL_BENCH_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  double estimate = 0.0;
  {
    CublasSgemm probe;
    QWEN3VL_RETURN_IF_ERROR(probe.init(2048));
    QWEN3VL_RETURN_IF_ERROR(probe.run(handle, &estimate));  // warm-up: library load, clocks
    QWEN3VL_RETURN_IF_ERROR(probe.run(handle, &estimate));
  }
  CublasSgemm gemm;
  QWEN3VL_RETURN_IF_ERROR(gemm.init(sgemm_size_for(estimate, 0.05, 1024, 16384)));
  std::vector<double> rates(7);
  double warm = 0.0;
  QWEN3VL_RETURN_IF_ERROR(gemm.run(handle, &warm));
  for (double& r : rates) QWEN3VL_RETURN_IF_ERROR(gemm.run(handle, &r));
  int version = 0;
  QWEN3VL_BENCH_CUBLAS_CHECK(cublasGetVersion(handle, &version));
  *out = SgemmRate{median(rates), gemm.n, 0,
                   "cuBLAS " + std::to_string(version) + " SGEMM (fp32, no TF32)"};
  return Status();
}

}  // namespace qwen3vl::bench
