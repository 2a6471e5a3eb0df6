// The static-sparse CUDA variant: the pattern's layout, built on the host and copied to the device
// once per problem shape (the first call for a shape allocates and copies synchronously; later
// calls allocate nothing), run by the block-sparse CUDA object.
#include <memory>

#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "src/static_sparse/layout_cache.hpp"

namespace qwen3vl {
namespace {

// Makes `device` current for its lifetime (the layout lives on the device of q).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != device) {
      ok_ = cudaSetDevice(device) == cudaSuccess;
      switched_ = ok_;
    }
  }
  ~DeviceScope() {
    if (switched_) cudaSetDevice(previous_);
  }
  bool ok() const { return ok_; }

 private:
  int previous_ = 0;
  bool ok_ = true;
  bool switched_ = false;
};

Status place_on_device(int device, detail::PatternLayout* layout) {
  const DeviceScope scope(device);
  if (!scope.ok())
    return make_error(StatusCode::kDeviceError, "cudaSetDevice(", device, ") failed");
  const BlockLayoutData& host = layout->host;
  const size_t ptr_bytes = host.indptr.size() * sizeof(int32_t);
  const size_t col_bytes = host.indices.size() * sizeof(int32_t);
  void* memory = nullptr;
  if (cudaMalloc(&memory, ptr_bytes + col_bytes + sizeof(int32_t)) != cudaSuccess)
    return make_error(StatusCode::kOutOfMemory, "cudaMalloc of ", ptr_bytes + col_bytes,
                      " bytes for the static-sparse layout on device ", device, " failed");
  layout->device_memory = std::shared_ptr<void>(memory, [device](void* p) {
    const DeviceScope free_scope(device);
    cudaFree(p);  // synchronizes the device: no kernel still reads it
  });
  int32_t* indptr = static_cast<int32_t*>(memory);
  int32_t* indices = indptr + host.indptr.size();
  QWEN3VL_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(indptr, host.indptr.data(), ptr_bytes, cudaMemcpyHostToDevice));
  if (col_bytes > 0)
    QWEN3VL_CUDA_RETURN_IF_ERROR(
        cudaMemcpy(indices, host.indices.data(), col_bytes, cudaMemcpyHostToDevice));
  layout->view = host.view();
  for (TensorView* v : {&layout->view.indptr, &layout->view.indices}) {
    v->device = Device::kCUDA;
    v->device_index = device;
  }
  layout->view.indptr.data = indptr;
  layout->view.indices.data = indices;
  return Status();
}

}  // namespace

Status create_static_sparse_cuda(const CudaOptions& options, const StaticSparseConfig& config,
                                 std::unique_ptr<Attention>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  std::unique_ptr<Attention> block_sparse;
  QWEN3VL_RETURN_IF_ERROR(create_block_sparse_cuda(options, &block_sparse));
  // No density: block_layout_density lives in the CPU library, which this one does not link.
  *out = std::make_unique<detail::StaticSparseAttention>(std::move(block_sparse), config,
                                                         place_on_device, nullptr);
  return Status();
}

}  // namespace qwen3vl
