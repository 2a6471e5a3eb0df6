// What the attention layers need from a device besides the attention kernels: memory for their
// fp32 weights, projections (y = x W^T + b), the per-head RMSNorm, RoPE, and a stream barrier.
// One implementation per device: CPU (Eigen per ISA + oneTBB) and CUDA (cuBLAS + own kernels).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/rope/apply.hpp"
#include "qwen3vl/rope/table.hpp"

namespace qwen3vl::layers::detail {

// Rows of a matrix, possibly in batches: element (b, i, c) is at
// data + b * batch_stride + i * row_stride + c (elements of `dtype`).
struct RowsView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t batch = 1, rows = 0, cols = 0;
  int64_t batch_stride = 0, row_stride = 0;
  int64_t count() const { return batch * rows; }
};

// [rows, cols] or [batch, rows, cols] with a contiguous last dimension.
inline RowsView rows_of(const TensorView& t) {
  RowsView r;
  r.data = t.data;
  r.dtype = t.dtype;
  if (t.rank == 3) {
    r.batch = t.shape[0];
    r.rows = t.shape[1];
    r.batch_stride = t.stride[0];
    r.row_stride = t.stride[1];
  } else {
    r.rows = t.shape[0];
    r.row_stride = t.stride[0];
    r.batch_stride = r.rows * r.row_stride;
  }
  r.cols = t.shape[t.rank - 1];
  return r;
}

// fp32 nn.Linear parameters in the ops' memory: w [out, in] row-major, bias [out] or null.
struct Linear {
  const float* w = nullptr;
  const float* bias = nullptr;
  int64_t out = 0, in = 0;
};

class LayerOps {
 public:
  virtual ~LayerOps() = default;
  virtual Device device() const = 0;
  // Copies host floats into memory the ops object owns for its lifetime.
  [[nodiscard]] virtual Status store(const std::vector<float>& host, const float** out) = 0;
  // The RoPE table as the device's kernels read it (the host table must outlive the ops).
  [[nodiscard]] virtual Status rope_table(const rope::RopeTable& table,
                                          rope::RopeTableView* out) = 0;
  virtual const rope::RopeApplier& rope() const = 0;
  // Scratch bytes linear() needs for x (fp32 staging when the activations are f16 / bf16).
  virtual size_t linear_scratch_bytes(const RowsView& x, int64_t out) const = 0;
  // y = x W^T (+ bias): fp32 accumulation, one rounding to y's dtype.
  [[nodiscard]] virtual Status linear(const RowsView& x, const Linear& w, const RowsView& y,
                                      void* scratch, void* stream) const = 0;
  // x [..., H, D] in place: x * rsqrt(mean(x^2) + eps) in fp32, rounded to x's dtype, times the
  // weight, rounded again (transformers' Qwen3VLTextRMSNorm on each head).
  [[nodiscard]] virtual Status rms_norm_heads(const TensorView& x, const float* weight, float eps,
                                              void* stream) const = 0;
  // Host bytes -> the ops' memory (stream-ordered on CUDA; a plain copy on the CPU).
  [[nodiscard]] virtual Status copy_from_host(void* dst, const void* src, size_t bytes,
                                              void* stream) const = 0;
  [[nodiscard]] virtual Status synchronize(void* stream) const = 0;
  virtual std::string describe() const = 0;
};

[[nodiscard]] Status create_cpu_layer_ops(const CpuOptions& options,
                                          std::unique_ptr<LayerOps>* out);
#if QWEN3VL_WITH_CUDA
[[nodiscard]] Status create_cuda_layer_ops(int device_index, std::unique_ptr<LayerOps>* out);
#endif

}  // namespace qwen3vl::layers::detail
