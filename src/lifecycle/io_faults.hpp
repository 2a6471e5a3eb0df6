// Test-only fault injection for the file store's I/O (not part of the public API): the next N
// transfers of a kind fail with an errno or come back short, and opening with O_DIRECT can be
// refused as a file system without direct I/O refuses it. Both engines consult it before every
// transfer (each pread/pwrite, each io_uring read/write), so a test drives them the same way.
// Process-wide; atomics keep it race-free with the engines' threads.
#pragma once

#include <atomic>
#include <cstddef>

namespace qwen3vl::lifecycle::detail {

enum class FaultOp : int { kRead = 0, kWrite = 1, kPreallocate = 2, kOpenDirect = 3 };

struct FaultAction {
  int error = 0;      // nonzero: fail with this errno and transfer nothing
  size_t length = 0;  // the bytes to actually transfer (shortened when a short fault fires)
};

class IoFaults {
 public:
  // After skip more operations of op succeed, the next count fail with err (EIO, ENOSPC...).
  // skip > 0 tears a multi-piece slot write: its first pieces land, a later one fails.
  void fail_next(FaultOp op, int count, int err, int skip = 0);
  // The next count transfers of op move only half their bytes (rounded down to granularity).
  void short_next(FaultOp op, int count);
  void reset();

  // Called by the engines: what this transfer of length bytes should do. granularity is the
  // alignment a shortened O_DIRECT transfer must keep (1 when buffered).
  FaultAction next(FaultOp op, size_t length, size_t granularity);
  int fired() const { return fired_.load(); }  // how many faults have fired since reset()

 private:
  static constexpr int kOps = 4;
  std::atomic<int> fail_count_[kOps] = {};
  std::atomic<int> fail_errno_[kOps] = {};
  std::atomic<int> fail_skip_[kOps] = {};
  std::atomic<int> short_count_[kOps] = {};
  std::atomic<int> fired_{0};
};

IoFaults& io_faults();

}  // namespace qwen3vl::lifecycle::detail
