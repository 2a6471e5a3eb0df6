// What every CPU variant shares: the chosen ISA, a oneTBB arena with the chosen thread count, and
// per-thread slots carved out of the caller's workspace (no allocation inside forward()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <tbb/task_arena.h>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "src/core/workspace_carver.hpp"

namespace qwen3vl::detail {

// The carver's alignment, under the names the decode kernels use for their partial sums.
constexpr size_t kSlotAlignment = kCarveAlignment;
inline size_t align_up(size_t bytes) { return align_bytes(bytes); }

class CpuBackend {
 public:
  static Status create(const CpuOptions& options, std::unique_ptr<CpuBackend>* out);

  CpuIsa isa() const { return isa_; }
  int threads() const { return threads_; }
  tbb::task_arena& arena() const { return *arena_; }

  // Thread slots of the arena: oneTBB gives an arena with one slot reserved for an external thread
  // at least 2 slots, so with 1 thread a second caller of forward() on the same object enters as
  // thread index 1 and can run the first call's tasks. Slots are unique while threads run in it.
  int slots() const { return threads_ < 2 ? 2 : threads_; }
  // The workspace of a variant whose only scratch is one slot of `slot_bytes` per arena slot:
  // the carver's slot array over the caller's buffer. Its size, plus room to align the pointer:
  size_t workspace_bytes(size_t slot_bytes) const {
    Carver sizing;
    sizing.slots(slots(), slot_bytes);
    return sizing.used() + kAlignSlack;
  }
  // The slot of the thread calling this (inside arena().execute): its arena slot index, in the
  // same slot array (a slot's place does not depend on how many follow it).
  static void* thread_slot(Workspace ws, size_t slot_bytes) {
    const int index = tbb::this_task_arena::current_thread_index();
    Carver carver = carve(ws.data);
    return carver.slots(index + 1, slot_bytes).slot(index);
  }
  Status check_workspace(Workspace ws, size_t slot_bytes) const;
  std::string describe() const;

 private:
  CpuIsa isa_ = CpuIsa::kScalar;
  int threads_ = 1;
  std::unique_ptr<tbb::task_arena> arena_;
};

}  // namespace qwen3vl::detail
