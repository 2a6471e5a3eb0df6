// An owned, aligned, zeroed byte buffer: O_DIRECT staging memory (alignment >= the file system's
// direct-I/O memory alignment) and host slots.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace qwen3vl::lifecycle::detail {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // Empty (data() == nullptr) when the allocation fails; the caller reports kOutOfMemory.
  AlignedBuffer(size_t bytes, size_t alignment) {
    const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    data_ = static_cast<unsigned char*>(
        std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded));
    if (data_ != nullptr) {
      std::memset(data_, 0, rounded);
      size_ = rounded;
    }
  }
  AlignedBuffer(AlignedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  unsigned char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qwen3vl::lifecycle::detail
