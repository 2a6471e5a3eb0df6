// The fault table: a count per kind, decremented atomically so that exactly count operations fire
// even when several I/O threads ask at once.
#include "src/lifecycle/io_faults.hpp"

namespace qwen3vl::lifecycle::detail {
namespace {

bool take(std::atomic<int>& counter) {
  int n = counter.load();
  while (n > 0) {
    if (counter.compare_exchange_weak(n, n - 1)) return true;
  }
  return false;
}

}  // namespace

void IoFaults::fail_next(FaultOp op, int count, int err, int skip) {
  fail_errno_[static_cast<int>(op)].store(err);
  fail_skip_[static_cast<int>(op)].store(skip);
  fail_count_[static_cast<int>(op)].store(count);
}

void IoFaults::short_next(FaultOp op, int count) {
  short_count_[static_cast<int>(op)].store(count);
}

void IoFaults::reset() {
  for (int i = 0; i < kOps; ++i) {
    fail_count_[i].store(0);
    fail_errno_[i].store(0);
    fail_skip_[i].store(0);
    short_count_[i].store(0);
  }
  fired_.store(0);
}

FaultAction IoFaults::next(FaultOp op, size_t length, size_t granularity) {
  const int i = static_cast<int>(op);
  FaultAction action;
  action.length = length;
  if (fail_count_[i].load() > 0 && take(fail_skip_[i])) {
    return action;  // one of the operations let through before the failures
  }
  if (take(fail_count_[i])) {
    action.error = fail_errno_[i].load();
    action.length = 0;
    fired_.fetch_add(1);
  } else if (take(short_count_[i])) {
    const size_t g = granularity == 0 ? 1 : granularity;
    action.length = (length / 2) / g * g;
    fired_.fetch_add(1);
  }
  return action;
}

IoFaults& io_faults() {
  static IoFaults faults;
  return faults;
}

}  // namespace qwen3vl::lifecycle::detail
