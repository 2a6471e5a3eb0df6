// The one way variants lay out a caller's workspace: 64-byte aligned regions taken in order. With
// no base it only counts, so plan() sizes the workspace with the same code that run() carves it
// with (no placeholder pointers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qwen3vl::detail {

constexpr size_t kCarveAlignment = 64;
// Callers size buffers used() + kAlignSlack: carve() aligns the caller's pointer up.
constexpr size_t kAlignSlack = kCarveAlignment;

class Carver {
 public:
  explicit Carver(void* base = nullptr) : base_(static_cast<char*>(base)) {}
  template <class T>
  T* take(int64_t count) {
    offset_ = align(offset_);
    T* p = base_ ? reinterpret_cast<T*>(base_ + offset_) : nullptr;
    offset_ += static_cast<size_t>(count) * sizeof(T);
    return p;
  }
  bool sizing() const { return base_ == nullptr; }
  // Bytes taken so far (from an aligned base), and the first free byte.
  size_t used() const { return align(offset_); }
  char* cursor() const { return base_ + used(); }

 private:
  static size_t align(size_t bytes) {
    return (bytes + kCarveAlignment - 1) / kCarveAlignment * kCarveAlignment;
  }
  char* base_;
  size_t offset_ = 0;
};

// A carver over the aligned start of a caller's buffer.
inline Carver carve(void* data) {
  return Carver(reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(data) + kCarveAlignment - 1) &
                                        ~uintptr_t(kCarveAlignment - 1)));
}

}  // namespace qwen3vl::detail
