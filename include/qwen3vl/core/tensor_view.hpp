// TensorView: a non-owning view of up to 4 dimensions with int64 element strides and a device tag.
// Kernels receive views; the caller owns the memory.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "qwen3vl/core/checked_math.hpp"
#include "qwen3vl/core/dtype.hpp"

namespace qwen3vl {

enum class Device : uint8_t { kCPU, kCUDA };

inline const char* to_string(Device d) { return d == Device::kCPU ? "cpu" : "cuda"; }

struct TensorView {
  static constexpr int kMaxRank = 4;

  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kCPU;
  int device_index = 0;
  int rank = 0;  // 0 means "absent" for optional arguments
  int64_t shape[kMaxRank] = {0, 0, 0, 0};
  int64_t stride[kMaxRank] = {0, 0, 0, 0};  // in elements, not bytes

  // A row-major contiguous view.
  static TensorView contiguous(void* data, DType dtype, std::initializer_list<int64_t> dims,
                               Device device = Device::kCPU) {
    TensorView v;
    v.data = data;
    v.dtype = dtype;
    v.device = device;
    v.rank = static_cast<int>(dims.size() > kMaxRank ? kMaxRank : dims.size());
    int i = 0;
    for (int64_t d : dims) {
      if (i == v.rank) break;
      v.shape[i++] = d;
    }
    int64_t s = 1;
    for (int d = v.rank - 1; d >= 0; --d) {
      v.stride[d] = s;
      if (!checked_mul(s, v.shape[d], &s)) s = INT64_MAX;  // validate() refuses such a view
    }
    return v;
  }

  static TensorView strided(void* data, DType dtype, std::initializer_list<int64_t> dims,
                            std::initializer_list<int64_t> strides, Device device = Device::kCPU) {
    TensorView v = contiguous(data, dtype, dims, device);
    int i = 0;
    for (int64_t s : strides) {
      if (i == v.rank) break;
      v.stride[i++] = s;
    }
    return v;
  }

  bool present() const { return rank > 0; }
  int64_t size(int d) const { return shape[d]; }
  // Elements of the view; INT64_MAX when the product of the shape overflows int64 (validate()
  // rejects such views).
  int64_t numel() const {
    if (rank <= 0) return 0;
    const int r = rank < kMaxRank ? rank : kMaxRank;
    for (int d = 0; d < r; ++d)
      if (shape[d] == 0) return 0;
    int64_t n = 1;
    for (int d = 0; d < r; ++d)
      if (!checked_mul(n, shape[d], &n)) return INT64_MAX;
    return n;
  }
  // The bytes the elements occupy, relative to data: [*lo, *hi) (both 0 for an empty view).
  // False when an element offset or its byte offset overflows int64 (huge strides or shapes), or
  // for a negative shape.
  bool byte_range(int64_t* lo, int64_t* hi) const {
    int64_t low = 0, high = 0;
    const int r = rank < kMaxRank ? rank : kMaxRank;
    for (int d = 0; d < r; ++d)
      if (shape[d] < 0) return false;
    if (numel() == 0) {
      *lo = *hi = 0;
      return true;
    }
    for (int d = 0; d < r; ++d) {
      int64_t reach = 0;  // (shape - 1) * stride: the offset of this dimension's last index
      if (!checked_mul(shape[d] - 1, stride[d], &reach)) return false;
      if (!checked_add(reach < 0 ? low : high, reach, reach < 0 ? &low : &high)) return false;
    }
    const int64_t bytes = static_cast<int64_t>(size_of(dtype));
    if (!checked_mul(low, bytes, &low) || !checked_mul(high, bytes, &high) ||
        !checked_add(high, bytes, &high))
      return false;
    *lo = low;
    *hi = high;
    return true;
  }
  // View with dimensions d0 and d1 swapped (e.g. BHSD memory seen as BSHD).
  TensorView transposed(int d0, int d1) const {
    TensorView v = *this;
    v.shape[d0] = shape[d1];
    v.shape[d1] = shape[d0];
    v.stride[d0] = stride[d1];
    v.stride[d1] = stride[d0];
    return v;
  }
  // View of indices [start, start + n) of dimension d (the same memory).
  TensorView narrowed(int d, int64_t start, int64_t n) const {
    TensorView v = *this;
    if (!present()) return v;
    v.data = static_cast<char*>(data) + start * stride[d] * static_cast<int64_t>(size_of(dtype));
    v.shape[d] = n;
    return v;
  }
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  // Element offset of an index; all offset arithmetic is 64-bit.
  int64_t offset(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
    return i0 * stride[0] + i1 * stride[1] + i2 * stride[2] + i3 * stride[3];
  }
  std::string shape_string() const { return list_string(shape); }
  std::string stride_string() const { return list_string(stride); }

 private:
  std::string list_string(const int64_t* values) const {
    std::string s = "[";
    const int r = rank < kMaxRank ? rank : kMaxRank;
    for (int d = 0; d < r; ++d) s += (d ? ", " : "") + std::to_string(values[d]);
    return s + "]";
  }
};

// Reads element `offset` of a floating view as float (any storage dtype).
inline float load_float(const TensorView& v, int64_t offset) {
  switch (v.dtype) {
    case DType::kF32: return v.ptr<const float>()[offset];
    case DType::kF16: return to_float(v.ptr<const half>()[offset]);
    case DType::kBF16: return to_float(v.ptr<const bfloat16>()[offset]);
    case DType::kI32: return static_cast<float>(v.ptr<const int32_t>()[offset]);
    case DType::kU8: return static_cast<float>(v.ptr<const uint8_t>()[offset]);
  }
  return 0.0f;
}

inline void store_float(const TensorView& v, int64_t offset, float x) {
  switch (v.dtype) {
    case DType::kF32: v.ptr<float>()[offset] = x; break;
    case DType::kF16: v.ptr<half>()[offset] = to_half(x); break;
    case DType::kBF16: v.ptr<bfloat16>()[offset] = to_bf16(x); break;
    case DType::kI32: v.ptr<int32_t>()[offset] = static_cast<int32_t>(x); break;
    case DType::kU8: v.ptr<uint8_t>()[offset] = static_cast<uint8_t>(x); break;
  }
}

// Calls f(T{}) with the storage type matching a floating dtype: one switch for every templated
// kernel.
template <class F>
decltype(auto) dispatch_float_dtype(DType t, F&& f) {
  switch (t) {
    case DType::kF16: return f(half{});
    case DType::kBF16: return f(bfloat16{});
    default: return f(float{});
  }
}

}  // namespace qwen3vl
