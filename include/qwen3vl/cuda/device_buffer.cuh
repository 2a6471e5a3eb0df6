// DeviceBuffer: an owning cudaMalloc allocation for tests, benchmarks and examples (the library
// itself never allocates), with checked host <-> device copies. Throws qwen3vl::Error on failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/cuda/check.cuh"

namespace qwen3vl {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes) throw_if_error(cuda_status(cudaMalloc(&data_, bytes), "cudaMalloc"));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

  void upload(const void* host, size_t bytes, size_t offset = 0) {
    check_range(bytes, offset);
    throw_if_error(cuda_status(
        cudaMemcpy(static_cast<char*>(data_) + offset, host, bytes, cudaMemcpyHostToDevice),
        "cudaMemcpy(host to device)"));
  }
  void download(void* host, size_t bytes, size_t offset = 0) const {
    check_range(bytes, offset);
    throw_if_error(cuda_status(
        cudaMemcpy(host, static_cast<const char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost),
        "cudaMemcpy(device to host)"));
  }
  // Every byte set to `value` (0xff gives NaN in f32, f16 and bf16: a poisoned output).
  void fill_bytes(int value) {
    throw_if_error(cuda_status(cudaMemset(data_, value, bytes_), "cudaMemset"));
  }

  // A device copy of a host tensor's memory, and a view of it with the host view's shape and
  // strides.
  static DeviceBuffer copy_of(const Tensor& host) {
    DeviceBuffer b(static_cast<size_t>(host.bytes()));
    if (host.bytes()) b.upload(host.view().data, static_cast<size_t>(host.bytes()));
    return b;
  }
  TensorView view_like(const TensorView& host, int device_index = 0) const {
    TensorView v = host;
    v.data = data_;
    v.device = Device::kCUDA;
    v.device_index = device_index;
    return v;
  }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
  }
  void check_range(size_t bytes, size_t offset) const {
    if (offset > bytes_ || bytes > bytes_ - offset)
      throw Error(StatusCode::kInvalidArgument,
                  detail::concat("copy of ", bytes, " bytes at offset ", offset,
                                 ": the buffer holds ", bytes_, " bytes"));
  }
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace qwen3vl
