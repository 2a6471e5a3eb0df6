// BlockAllocator: host-side bookkeeping of a paged KV pool's blocks. A free list hands out block
// ids in O(1); a reference count per block lets several sequences share a prefix's blocks, and a
// block returns to the free list when its last user releases it. It never touches block data.
#pragma once

#include <cstdint>
#include <vector>

#include "qwen3vl/core/status.hpp"

namespace qwen3vl {

class BlockAllocator {
 public:
  BlockAllocator() = default;
  // A pool of `num_blocks` free blocks (ids 0 .. num_blocks - 1, handed out in ascending order).
  explicit BlockAllocator(int32_t num_blocks)
      : ref_count_(static_cast<size_t>(num_blocks > 0 ? num_blocks : 0), 0) {
    for (int32_t id = capacity() - 1; id >= 0; --id) free_.push_back(id);
  }

  int32_t capacity() const { return static_cast<int32_t>(ref_count_.size()); }
  int32_t free_count() const { return static_cast<int32_t>(free_.size()); }
  int32_t used_count() const { return capacity() - free_count(); }
  // 0 for a free block (and for an id outside the pool).
  int32_t ref_count(int32_t id) const {
    return valid(id) ? ref_count_[static_cast<size_t>(id)] : 0;
  }

  // Takes `n` free blocks (reference count 1 each) into ids[0..n), all or none.
  [[nodiscard]] Status allocate(int32_t n, int32_t* ids) {
    if (n < 0)
      return make_error(StatusCode::kInvalidArgument, "blocks requested = ", n, ": must be >= 0");
    if (n > 0 && ids == nullptr)
      return make_error(StatusCode::kNullPointer, "ids = null with ", n,
                        " blocks requested: needs room for n ids");
    if (n > free_count())
      return make_error(StatusCode::kOutOfMemory, "blocks requested = ", n, ": only ", free_count(),
                        " of ", capacity(), " blocks are free");
    for (int32_t i = 0; i < n; ++i) {
      ids[i] = free_.back();
      free_.pop_back();
      ref_count_[static_cast<size_t>(ids[i])] = 1;
    }
    return Status();
  }

  // One more user of a block in use (a forked sequence sharing it).
  [[nodiscard]] Status share(int32_t id) {
    QWEN3VL_RETURN_IF_ERROR(check_in_use(id, "share"));
    ++ref_count_[static_cast<size_t>(id)];
    return Status();
  }

  // One user fewer; the block is free again when none is left. Releasing a free block (a double
  // free) or an id outside the pool is an error that changes nothing.
  [[nodiscard]] Status release(int32_t id) {
    QWEN3VL_RETURN_IF_ERROR(check_in_use(id, "release"));
    if (--ref_count_[static_cast<size_t>(id)] == 0) free_.push_back(id);
    return Status();
  }

  // Errors for ids outside the pool or not in use, naming `what` was attempted.
  Status check_in_use(int32_t id, const char* what) const {
    if (!valid(id))
      return make_error(StatusCode::kInvalidArgument, what, ": block id = ", id, ": allowed 0..",
                        capacity() - 1);
    if (ref_count_[static_cast<size_t>(id)] == 0)
      return make_error(StatusCode::kInvalidArgument, what, ": block id = ", id,
                        " is free: only blocks in use can be shared or released");
    return Status();
  }

 private:
  bool valid(int32_t id) const { return id >= 0 && id < capacity(); }

  std::vector<int32_t> ref_count_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
};

}  // namespace qwen3vl
