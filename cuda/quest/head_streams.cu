// Side-by-side per-KV-head decodes for Quest on CUDA. Each forward() takes a set of internal
// streams from a pool, forks them from the caller's stream with an event, runs lane i on stream
// i % kHeadStreams, and joins them back with events, so a graph capture of the caller's stream
// follows the whole fan. A set is lent to one forward() at a time, and not while a capture it
// joined is still open (its streams stay in that capture until the capture ends), so concurrent
// forward() calls, captured or not, never share streams or events.
#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <vector>

#include "../../src/quest/quest_select.hpp"
#include "qwen3vl/cuda/check.cuh"

namespace qwen3vl::detail::quest {
namespace {

struct StreamSet {
  int device = -1;
  cudaEvent_t fork = nullptr;
  cudaStream_t streams[kHeadStreams] = {};
  cudaEvent_t joined[kHeadStreams] = {};

  StreamSet() = default;
  StreamSet(const StreamSet&) = delete;
  StreamSet& operator=(const StreamSet&) = delete;
  ~StreamSet() {
    for (int i = 0; i < kHeadStreams; ++i) {
      if (streams[i]) cudaStreamDestroy(streams[i]);
      if (joined[i]) cudaEventDestroy(joined[i]);
    }
    if (fork) cudaEventDestroy(fork);
  }

  Status create() {  // on the current device
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
    for (int i = 0; i < kHeadStreams; ++i) {
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking));
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&joined[i], cudaEventDisableTiming));
    }
    return Status();
  }

  // Whether a capture that these streams joined is still open.
  bool capturing() const {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(streams[0], &status) != cudaSuccess) return true;
    return status != cudaStreamCaptureStatusNone;
  }
};

}  // namespace

class HeadStreams {
 public:
  // A set of the current device that no forward() holds and no open capture holds, made when
  // none is free.
  Status lend(std::unique_ptr<StreamSet>* out) {
    int device = -1;
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i]->device == device && !free_[i]->capturing()) {
          *out = std::move(free_[i]);
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          return Status();
        }
    }
    auto set = std::make_unique<StreamSet>();
    QWEN3VL_RETURN_IF_ERROR(set->create());
    *out = std::move(set);
    return Status();
  }
  void give_back(std::unique_ptr<StreamSet> set) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(set));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<StreamSet>> free_;
};

Status create_head_streams(std::shared_ptr<HeadStreams>* out) {
  auto pool = std::make_shared<HeadStreams>();
  std::unique_ptr<StreamSet> first;  // one set made up front, outside any capture
  QWEN3VL_RETURN_IF_ERROR(pool->lend(&first));
  pool->give_back(std::move(first));
  *out = std::move(pool);
  return Status();
}

Status run_on_head_streams(HeadStreams& pool, void* origin, int64_t lanes,
                           const std::function<Status(int64_t lane, void* stream)>& body) {
  std::unique_ptr<StreamSet> set;
  QWEN3VL_RETURN_IF_ERROR(pool.lend(&set));
  const auto caller = static_cast<cudaStream_t>(origin);
  const int used = static_cast<int>(lanes < kHeadStreams ? lanes : kHeadStreams);
  Status status = [&]() -> Status {
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(set->fork, caller));
    for (int i = 0; i < used; ++i)
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(set->streams[i], set->fork, 0));
    const auto run_lanes = [&]() -> Status {
      for (int64_t lane = 0; lane < lanes; ++lane)
        QWEN3VL_RETURN_IF_ERROR(body(lane, set->streams[lane % kHeadStreams]));
      return Status();
    };
    const Status ran = run_lanes();
    // Joined even after an error, so that no capture is left with an unjoined stream.
    for (int i = 0; i < used; ++i) {
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(set->joined[i], set->streams[i]));
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(caller, set->joined[i], 0));
    }
    return ran;
  }();
  pool.give_back(std::move(set));
  return status;
}

}  // namespace qwen3vl::detail::quest
