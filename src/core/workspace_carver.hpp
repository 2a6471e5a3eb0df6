// The one way the library lays out a caller's workspace: aligned regions taken in order (64 bytes
// by default; CUDA layouts ask for 256). With no base it only counts, so a plan sizes the workspace
// with the same code that the run carves it with (no placeholder pointers). Header-only, and plain
// C++ that nvcc compiles in .cu host code.
//
//   Carver c;                        // counting
//   lay_out(c); bytes = c.used() + kAlignSlack;
//   Carver real = carve(ws.data);    // the same calls over the caller's buffer
//   lay_out(real);
//
// Layouts that are planned once and resolved per call (CUDA plans) keep offset()s instead of
// pointers; per-thread scratch is slots(): equal, aligned slots, one per worker.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qwen3vl::detail {

constexpr size_t kCarveAlignment = 64;
// Callers size buffers used() + kAlignSlack: carve() aligns the caller's pointer up.
constexpr size_t kAlignSlack = kCarveAlignment;

inline size_t align_bytes(size_t bytes, size_t alignment = kCarveAlignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

// `count` slots of `stride` bytes each (a multiple of the alignment), from `base`.
struct SlotArray {
  char* base = nullptr;
  size_t stride = 0;
  char* slot(int64_t index) const { return base + stride * static_cast<size_t>(index); }
};

class Carver {
 public:
  // alignment: a power of two; the base must be aligned to it (carve() does that).
  explicit Carver(void* base = nullptr, size_t alignment = kCarveAlignment)
      : base_(static_cast<char*>(base)), alignment_(alignment) {}

  template <class T>
  T* take(int64_t count) {
    const size_t at = offset(static_cast<size_t>(count) * sizeof(T));
    return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
  }
  // Takes `bytes` and returns their offset from the base: for layouts planned once and resolved
  // against each call's workspace.
  size_t offset(size_t bytes) {
    const size_t at = align_bytes(offset_, alignment_);
    offset_ = at + bytes;
    return at;
  }
  // `count` slots of `slot_bytes` each, every slot aligned (per-thread scratch).
  SlotArray slots(int64_t count, size_t slot_bytes) {
    SlotArray s;
    s.stride = align_bytes(slot_bytes, alignment_);
    s.base = take<char>(static_cast<int64_t>(s.stride * static_cast<size_t>(count)));
    return s;
  }

  bool sizing() const { return base_ == nullptr; }
  // Bytes taken so far (from an aligned base), and the first free byte.
  size_t used() const { return align_bytes(offset_, alignment_); }
  char* cursor() const { return base_ + used(); }
  size_t alignment() const { return alignment_; }

 private:
  char* base_;
  size_t alignment_;
  size_t offset_ = 0;
};

// The caller's pointer aligned up (a buffer of used() + alignment bytes holds the layout).
inline char* align_pointer(void* data, size_t alignment = kCarveAlignment) {
  return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(data) + alignment - 1) &
                                 ~uintptr_t(alignment - 1));
}

// A carver over the aligned start of a caller's buffer.
inline Carver carve(void* data, size_t alignment = kCarveAlignment) {
  return Carver(align_pointer(data, alignment), alignment);
}

}  // namespace qwen3vl::detail
