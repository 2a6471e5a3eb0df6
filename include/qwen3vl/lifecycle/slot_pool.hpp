// SlotPool: the slots of one tier (device, host or disk), handed out from a free list. Besides
// take-any it can take one named slot, because a move plan names its destination slots and
// begin_move claims exactly those. Every slot is either free or taken: taking a taken slot or
// releasing a free one is refused (returns false), so a slot is never handed out twice or lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qwen3vl {
namespace lifecycle {

class SlotPool {
 public:
  SlotPool() = default;
  // Slots 0 .. capacity - 1, all free; take_any() hands them out in ascending order.
  explicit SlotPool(int32_t capacity)
      : pos_(static_cast<std::size_t>(capacity > 0 ? capacity : 0), -1) {
    for (int32_t s = this->capacity() - 1; s >= 0; --s) push(s);
  }

  int32_t capacity() const { return static_cast<int32_t>(pos_.size()); }
  int32_t free_count() const { return static_cast<int32_t>(free_.size()); }
  int32_t used_count() const { return capacity() - free_count(); }
  bool valid(int32_t slot) const { return slot >= 0 && slot < capacity(); }
  bool is_free(int32_t slot) const {
    return valid(slot) && pos_[static_cast<std::size_t>(slot)] >= 0;
  }
  // The free slots, in the order take_any() would hand them out last-first.
  const std::vector<int32_t>& free_slots() const { return free_; }

  // -1 when none is free.
  int32_t take_any() {
    if (free_.empty()) return -1;
    int32_t slot = free_.back();
    free_.pop_back();
    pos_[static_cast<std::size_t>(slot)] = -1;
    return slot;
  }
  // Takes `slot` if it is free (O(1): the last free entry fills its place in the list).
  bool take(int32_t slot) {
    if (!is_free(slot)) return false;
    std::size_t at = static_cast<std::size_t>(pos_[static_cast<std::size_t>(slot)]);
    int32_t last = free_.back();
    free_[at] = last;
    pos_[static_cast<std::size_t>(last)] = static_cast<int32_t>(at);
    free_.pop_back();
    pos_[static_cast<std::size_t>(slot)] = -1;
    return true;
  }
  bool release(int32_t slot) {
    if (!valid(slot) || is_free(slot)) return false;
    push(slot);
    return true;
  }

 private:
  void push(int32_t slot) {
    pos_[static_cast<std::size_t>(slot)] = static_cast<int32_t>(free_.size());
    free_.push_back(slot);
  }

  std::vector<int32_t> pos_;   // index into free_, -1 while taken
  std::vector<int32_t> free_;  // a stack: the most recently released slot is reused first
};

}  // namespace lifecycle
}  // namespace qwen3vl
