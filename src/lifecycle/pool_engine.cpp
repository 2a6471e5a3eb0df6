// The fallback engine: a few threads doing pread/pwrite, each with its own aligned staging buffer
// (so O_DIRECT works when the file has it). The caller's thread only queues and waits; statuses
// are written by a worker before it decrements the in-flight count under the mutex, so the
// caller reads them after wait() with a happens-before edge.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "src/lifecycle/aligned_buffer.hpp"
#include "src/lifecycle/file_engine.hpp"
#include "src/lifecycle/file_io.hpp"

namespace qwen3vl::lifecycle::detail {
namespace {

class PoolEngine final : public FileEngine {
 public:
  PoolEngine(const FileLayout& layout, int threads) : layout_(layout), threads_(threads) {}

  Status init() {
    for (int i = 0; i < threads_; ++i) {
      AlignedBuffer staging(layout_.stride, layout_.memory_alignment);
      if (staging.data() == nullptr) {
        return make_error(StatusCode::kOutOfMemory, "thread-pool staging buffer of ",
                          layout_.stride, " bytes");
      }
      staging_.push_back(std::move(staging));
    }
    for (int i = 0; i < threads_; ++i) workers_.emplace_back([this, i] { run(i); });
    return Status();
  }

  ~PoolEngine() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  void start(IoRequest* request) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(request);
      ++in_flight_;
    }
    work_cv_.notify_one();
  }

  bool poll() override {
    std::lock_guard<std::mutex> lock(mutex_);
    return in_flight_ == 0;
  }

  void wait() override {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, [this] { return in_flight_ == 0; });
  }

  std::string describe() const override {
    return concat("thread-pool pread/pwrite, ", threads_, " threads");
  }

 private:
  void run(int index) {
    unsigned char* staging = staging_[index].data();
    for (;;) {
      IoRequest* request;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        request = queue_.front();
        queue_.pop_front();
      }
      Status status = transfer(*request, staging);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        request->status = std::move(status);
        --in_flight_;
      }
      done_cv_.notify_all();
    }
  }

  Status transfer(IoRequest& request, unsigned char* staging) const {
    const IoWhere where{"slot", request.slot};
    const uint64_t offset = layout_.offset(request.slot);
    if (request.op == IoOp::kWrite) {
      stage_write(layout_, request, staging);
      return pwrite_full(layout_.fd, staging, layout_.stride, offset, layout_.request_bytes,
                         layout_.granularity(), where);
    }
    QWEN3VL_RETURN_IF_ERROR(pread_full(layout_.fd, staging, layout_.stride, offset,
                                       layout_.request_bytes, layout_.granularity(), where));
    return finish_read(layout_, request, staging);
  }

  const FileLayout layout_;
  const int threads_;
  std::vector<AlignedBuffer> staging_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<IoRequest*> queue_;
  size_t in_flight_ = 0;
  bool stopping_ = false;
};

}  // namespace

Status make_pool_engine(const FileLayout& layout, int threads, std::unique_ptr<FileEngine>* out) {
  auto engine = std::make_unique<PoolEngine>(layout, threads);
  QWEN3VL_RETURN_IF_ERROR(engine->init());
  *out = std::move(engine);
  return Status();
}

}  // namespace qwen3vl::lifecycle::detail
