// A tensor's values inside a larger buffer, seen through a view with the buffer's strides: every
// dimension grown by some padding, so rows are neither densely packed nor vector-aligned (a fused
// QKV projection's output looks like this). The padding holds a finite sentinel that a kernel must
// neither read into a result nor overwrite.
#pragma once

#include <cstdint>
#include <vector>

#include "qwen3vl/core/tensor.hpp"

namespace qwen3vl::testing::sweep {

// Calls f(multi-index) for every element of `shape` (rank 1..4), last dimension fastest.
template <class F>
void for_each_index(const TensorView& shape, F f) {
  int64_t idx[TensorView::kMaxRank] = {0, 0, 0, 0};
  if (shape.numel() == 0) return;
  for (;;) {
    f(idx);
    int d = shape.rank - 1;
    while (d >= 0 && ++idx[d] == shape.shape[d]) idx[d--] = 0;
    if (d < 0) return;
  }
}

inline int64_t offset_of(const TensorView& v, const int64_t* idx) {
  int64_t off = 0;
  for (int d = 0; d < v.rank; ++d) off += idx[d] * v.stride[d];
  return off;
}

class PaddedCopy {
 public:
  static constexpr float kSentinel = 77.0f;  // exact in f16 and bf16

  PaddedCopy() = default;
  // `src` copied into a buffer of shape src.shape + pad (pad has src.rank entries).
  PaddedCopy(const TensorView& src, const std::vector<int64_t>& pad) {
    std::vector<int64_t> dims;
    for (int d = 0; d < src.rank; ++d) dims.push_back(src.shape[d] + pad[static_cast<size_t>(d)]);
    buffer_ = Tensor(src.dtype, dims);
    for (int64_t i = 0; i < buffer_.numel(); ++i) buffer_.set(i, kSentinel);
    view_ = buffer_.view();
    for (int d = 0; d < src.rank; ++d) view_.shape[d] = src.shape[d];
    for_each_index(src, [&](const int64_t* idx) {
      store_float(view_, offset_of(view_, idx), load_float(src, offset_of(src, idx)));
    });
  }

  const TensorView& view() const { return view_; }

  // Whether every element outside the view still holds the sentinel.
  bool padding_intact() const {
    bool intact = true;
    for_each_index(buffer_.view(), [&](const int64_t* idx) {
      bool inside = true;
      for (int d = 0; d < view_.rank; ++d) inside = inside && idx[d] < view_.shape[d];
      if (!inside && load_float(buffer_.view(), offset_of(buffer_.view(), idx)) != kSentinel)
        intact = false;
    });
    return intact;
  }

 private:
  Tensor buffer_;
  TensorView view_;
};

}  // namespace qwen3vl::testing::sweep
