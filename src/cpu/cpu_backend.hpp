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

namespace qwen3vl::detail {

constexpr size_t kSlotAlignment = 64;

inline size_t align_up(size_t bytes) { return (bytes + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment; }

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
  // Workspace for `slots()` slots of `slot_bytes`, plus room to align the caller's pointer.
  size_t workspace_bytes(size_t slot_bytes) const {
    return align_up(slot_bytes) * static_cast<size_t>(slots()) + kSlotAlignment;
  }
  // The slot of the thread calling this (inside arena().execute): its arena slot index.
  static void* thread_slot(Workspace ws, size_t slot_bytes) {
    const auto base = (reinterpret_cast<uintptr_t>(ws.data) + kSlotAlignment - 1) & ~uintptr_t(kSlotAlignment - 1);
    const int index = tbb::this_task_arena::current_thread_index();
    return reinterpret_cast<void*>(base + static_cast<uintptr_t>(index) * align_up(slot_bytes));
  }
  Status check_workspace(Workspace ws, size_t slot_bytes) const;
  std::string describe() const;

 private:
  CpuIsa isa_ = CpuIsa::kScalar;
  int threads_ = 1;
  std::unique_ptr<tbb::task_arena> arena_;
};

}  // namespace qwen3vl::detail
