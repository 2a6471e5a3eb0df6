// A testing::Problem copied to the device: the same shapes and strides, device views in `params`,
// and download() to bring out / lse / weights back into the host problem for the float64 checks.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "qwen3vl/cuda/device_buffer.cuh"
#include "support/cuda_device.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

inline int cuda_current_device() {
  int device = 0;
  throw_if_error(cuda_status(cudaGetDevice(&device), "cudaGetDevice"));
  return device;
}

class DeviceProblem {
 public:
  explicit DeviceProblem(Problem& host) {
    params = host.params;
    // Poison every output so that an unwritten element shows (output_poison_value()).
    for (Tensor* t : {&host.out, &host.lse, &host.weights}) poison(*t);
    place(host.q, &params.q, false);
    place(host.k, &params.k, false);
    place(host.v, &params.v, false);
    place(host.out, &params.out, true);
    place(host.lse, &params.lse, true);
    place(host.weights, &params.weights, true);
    place(host.mask, &params.additive_mask, false);
    place(host.cu_q, &params.cu_seqlens_q, false);
    place(host.cu_k, &params.cu_seqlens_k, false);
    place(host.key_len, &params.key_lengths, false);
    if (host.params.varlen()) {  // device cu_seqlens: the maxima come from the host
      AttentionShape s;
      throw_if_error(validate(host.params, &s));
      params.max_seqlen_q = s.max_q;
      params.max_seqlen_k = s.max_k;
    }
  }
  DeviceProblem(const DeviceProblem&) = delete;
  DeviceProblem& operator=(const DeviceProblem&) = delete;

  // Copies the outputs back into the host problem's tensors.
  void download() {
    for (const Placed& p : placed_)
      if (p.output) p.buffer.download(p.host->view().data, static_cast<size_t>(p.host->bytes()));
  }

  AttentionParams params;

 private:
  struct Placed {
    Tensor* host;
    DeviceBuffer buffer;
    bool output;
  };

  void place(Tensor& t, TensorView* view, bool output) {
    if (!view->present()) return;
    DeviceBuffer b = DeviceBuffer::copy_of(t);
    const auto offset =
        static_cast<const char*>(view->data) - static_cast<const char*>(t.view().data);
    view->data = static_cast<char*>(b.data()) + offset;
    view->device = Device::kCUDA;
    view->device_index = cuda_current_device();
    placed_.push_back(Placed{&t, std::move(b), output});
  }

  std::vector<Placed> placed_;
};

}  // namespace qwen3vl::testing
