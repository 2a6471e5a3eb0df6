// Tensor: an owning, 64-byte aligned host buffer with a shape, for tests, benchmarks and examples.
// Kernels never take a Tensor; they take its view().
#pragma once

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"

namespace qwen3vl {

class Tensor {
 public:
  static constexpr size_t kAlignment = 64;

  Tensor() = default;
  Tensor(DType dtype, std::initializer_list<int64_t> dims)
      : Tensor(dtype, std::vector<int64_t>(dims)) {}
  Tensor(DType dtype, const std::vector<int64_t>& dims) {
    if (dims.empty() || dims.size() > TensorView::kMaxRank)
      throw Error(StatusCode::kInvalidArgument,
                  detail::concat("Tensor rank = ", dims.size(), ": allowed 1..4"));
    view_.dtype = dtype;
    view_.rank = static_cast<int>(dims.size());
    int64_t n = 1;
    for (int d = view_.rank - 1; d >= 0; --d) {
      if (dims[d] < 0)
        throw Error(StatusCode::kInvalidArgument,
                    detail::concat("Tensor shape[", d, "] = ", dims[d], ": must be >= 0"));
      view_.shape[d] = dims[d];
      view_.stride[d] = n;
      n *= dims[d];
    }
    const size_t bytes = static_cast<size_t>(n * size_of(dtype));
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = rounded ? std::aligned_alloc(kAlignment, rounded) : nullptr;
    if (rounded && !p)
      throw Error(StatusCode::kOutOfMemory, detail::concat("Tensor of ", bytes, " bytes"));
    if (p) std::memset(p, 0, rounded);
    storage_.reset(p);
    view_.data = p;
  }

  const TensorView& view() const { return view_; }
  operator const TensorView&() const { return view_; }
  int64_t numel() const { return view_.numel(); }
  int64_t bytes() const { return numel() * size_of(view_.dtype); }
  DType dtype() const { return view_.dtype; }
  int64_t size(int d) const { return view_.shape[d]; }
  template <class T>
  T* data() const {
    return view_.ptr<T>();
  }

  float get(int64_t i) const { return load_float(view_, i); }
  void set(int64_t i, float x) { store_float(view_, i, x); }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> storage_;
  TensorView view_;
};

}  // namespace qwen3vl
