// The CUDA runner of the linear routine: device buffers, CUDA-event timing of forward()
// (bench/common/cuda_timing.hpp).
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "common/cuda_timing.hpp"
#include "linear/linear_bench.hpp"
#include "qwen3vl/attention.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"

namespace qwen3vl::bench {
namespace {

struct DeviceMemory {
  void* ptr = nullptr;
  explicit DeviceMemory(size_t bytes) {
    if (bytes) cudaMalloc(&ptr, bytes);
  }
  ~DeviceMemory() {
    if (ptr) cudaFree(ptr);
  }
};

TensorView device_view(void* ptr, std::initializer_list<int64_t> dims) {
  TensorView t = TensorView::contiguous(ptr, DType::kF32, dims);
  t.device = Device::kCUDA;
  cudaGetDevice(&t.device_index);
  return t;
}

double time_forward(const Attention& attn, const AttentionParams& p, int reps, std::string* why) {
  DeviceMemory ws(attn.workspace_size(p));
  const Workspace w{ws.ptr, attn.workspace_size(p)};
  if (Status s = attn.forward(p, w); !s.ok()) {
    *why = s.to_string();
    return -1;
  }
  // The checked call above was the warm-up.
  std::vector<double> ms;
  if (Status s = cuda_event_samples(
          nullptr, /*warmups=*/0, reps, 1, [&] { return attn.forward(p, w); }, &ms);
      !s.ok()) {
    *why = s.to_string();
    return -1;
  }
  return median(ms);
}

}  // namespace

bool run_linear_cuda(const LinearCase& c, LinearTimes* t, std::string* why) {
  const size_t q_bytes = sizeof(float) * c.n * c.heads * c.head_dim;
  const size_t kv_bytes = sizeof(float) * c.n * c.kv_heads * c.head_dim;
  DeviceMemory q(q_bytes), k(kv_bytes), v(kv_bytes), out(q_bytes);
  if (!q.ptr || !k.ptr || !v.ptr || !out.ptr) {
    *why = "cudaMalloc failed (no device?)";
    return false;
  }
  std::vector<float> host(q_bytes / sizeof(float));
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = static_cast<float>((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  cudaMemcpy(q.ptr, host.data(), q_bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(k.ptr, host.data(), kv_bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(v.ptr, host.data() + 7, kv_bytes - 7 * sizeof(float), cudaMemcpyHostToDevice);
  AttentionParams p;
  p.q = device_view(q.ptr, {1, c.n, c.heads, c.head_dim});
  p.k = device_view(k.ptr, {1, c.n, c.kv_heads, c.head_dim});
  p.v = device_view(v.ptr, {1, c.n, c.kv_heads, c.head_dim});
  p.out = device_view(out.ptr, {1, c.n, c.heads, c.head_dim});
  p.mask = MaskKind::kCausal;
  std::unique_ptr<Attention> linear, flash;
  if (Status s = create_linear_cuda(CudaOptions{}, LinearConfig{}, &linear); !s.ok()) {
    *why = s.to_string();
    return false;
  }
  t->linear_ms = time_forward(*linear, p, c.reps, why);
  if (t->linear_ms < 0) return false;
  if (c.flash) {
    if (Status s = create_flash2_cuda(CudaOptions{}, &flash); !s.ok()) {
      *why = s.to_string();
      return false;
    }
    t->flash_ms = time_forward(*flash, p, c.reps, why);
    if (t->flash_ms < 0) return false;
  }
  return true;
}

}  // namespace qwen3vl::bench
