// The io_uring engine. The caller's thread drives everything: start() stages requests into
// registered, aligned buffers and submits their pieces; poll()/wait() reap completions, resubmit
// the remainder of short transfers and verify reads. No thread of its own, so nothing to
// synchronise (ThreadSanitizer has nothing to see); the kernel runs up to queue_depth transfers
// while the caller computes. A slot larger than request_bytes goes out as several pieces.
#include <algorithm>
#include <cerrno>
#include <deque>
#include <vector>

#include "src/lifecycle/aligned_buffer.hpp"
#include "src/lifecycle/file_engine.hpp"
#include "src/lifecycle/file_io.hpp"

#ifdef QWEN3VL_WITH_LIBURING
#include <liburing.h>
#include <sys/uio.h>
#endif

namespace qwen3vl::lifecycle::detail {

#ifndef QWEN3VL_WITH_LIBURING

Status make_uring_engine(const FileLayout&, int, std::unique_ptr<FileEngine>*) {
  return make_error(StatusCode::kUnsupported, "io_uring: built without liburing");
}

#else

namespace {

struct Piece {
  int buffer = 0;    // the staging buffer (= the op) it belongs to
  size_t begin = 0;  // within the slot image
  size_t length = 0;
  size_t done = 0;
  int short_runs = 0;
  int injected = 0;      // a fault's -errno, reported instead of the nop's result
  size_t submitted = 0;  // the bytes the last submission asked for
};

struct Op {
  IoRequest* request = nullptr;
  int pieces_left = 0;
  Status status;
};

class UringEngine final : public FileEngine {
 public:
  UringEngine(const FileLayout& layout, int queue_depth)
      : layout_(layout), queue_depth_(queue_depth) {}

  Status init() {
    pieces_per_op_ =
        static_cast<int>((layout_.stride + layout_.request_bytes - 1) / layout_.request_bytes);
    // Enough staging buffers to keep queue_depth pieces in flight, never more than queue_depth.
    const int buffers = std::max(1, std::min(queue_depth_, queue_depth_ / pieces_per_op_));
    // Twice the queue depth in completion entries (the default): in flight never exceeds it.
    const int ret = io_uring_queue_init(static_cast<unsigned>(queue_depth_), &ring_, 0);
    if (ret < 0) {
      return make_error(StatusCode::kUnsupported, "io_uring setup failed: ", errno_text(-ret));
    }
    ring_ready_ = true;
    std::vector<iovec> iovecs;
    for (int i = 0; i < buffers; ++i) {
      AlignedBuffer staging(layout_.stride, layout_.memory_alignment);
      if (staging.data() == nullptr) {
        return make_error(StatusCode::kOutOfMemory, "io_uring staging buffer of ", layout_.stride,
                          " bytes");
      }
      iovecs.push_back(iovec{staging.data(), staging.size()});
      staging_.push_back(std::move(staging));
      free_.push_back(i);
    }
    ops_.resize(buffers);
    pieces_.resize(static_cast<size_t>(buffers) * pieces_per_op_);
    // Registered buffers are pinned once, so each transfer skips the per-I/O page mapping. The
    // kernel may refuse (RLIMIT_MEMLOCK): then plain read/write on the same buffers.
    const int reg = io_uring_register_buffers(&ring_, iovecs.data(), iovecs.size());
    registered_ = reg == 0;
    if (!registered_) register_reason_ = errno_text(-reg);
    return Status();
  }

  ~UringEngine() override {
    if (!ring_ready_) return;
    if (!broken_)
      wait();  // the kernel may still write into staging: never free it under a transfer
    io_uring_queue_exit(&ring_);
  }

  void start(IoRequest* request) override {
    if (broken_) {
      request->status = broken_error(request->slot);
      return;
    }
    pending_.push_back(request);
    pump();
  }

  bool poll() override {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
      handle(cqe);
      pump();
    }
    pump();
    return idle();
  }

  void wait() override {
    pump();
    while (!idle()) {
      io_uring_cqe* cqe = nullptr;
      // submit_and_wait also pushes entries an earlier submit could not (EAGAIN).
      const int ret =
          unsubmitted_ ? io_uring_submit_and_wait(&ring_, 1) : io_uring_wait_cqe(&ring_, &cqe);
      if (ret == -EINTR || ret == -EAGAIN || ret == -EBUSY) continue;
      if (ret < 0) {
        break_engine(ret);
        break;
      }
      unsubmitted_ = false;
      while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) handle(cqe);
      pump();
    }
  }

  std::string describe() const override {
    std::string text = concat("io_uring, qd ", queue_depth_, ", ", staging_.size(), " ",
                              registered_ ? "registered" : "unregistered", " staging buffers of ",
                              layout_.stride, " B, requests up to ", layout_.request_bytes, " B");
    if (!registered_) text += concat(" (register_buffers failed: ", register_reason_, ")");
    return text;
  }

 private:
  bool idle() const { return pending_.empty() && active_ == 0; }

  // Stages waiting requests into free buffers, then submits ready pieces up to the queue depth.
  void pump() {
    while (!pending_.empty() && !free_.empty()) {
      const int b = free_.back();
      free_.pop_back();
      IoRequest* request = pending_.front();
      pending_.pop_front();
      ops_[b] = Op{request, pieces_per_op_, Status()};
      ++active_;
      if (request->op == IoOp::kWrite) stage_write(layout_, *request, staging_[b].data());
      for (int k = 0; k < pieces_per_op_; ++k) {
        Piece& p = pieces_[static_cast<size_t>(b) * pieces_per_op_ + k];
        p = Piece{};
        p.buffer = b;
        p.begin = static_cast<size_t>(k) * layout_.request_bytes;
        p.length = std::min(layout_.request_bytes, layout_.stride - p.begin);
        ready_.push_back(static_cast<int>(static_cast<size_t>(b) * pieces_per_op_ + k));
      }
    }
    int prepared = 0;
    while (!ready_.empty() && in_flight_ < queue_depth_) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      const int id = ready_.front();
      ready_.pop_front();
      prepare(sqe, id);
      ++in_flight_;
      ++prepared;
    }
    if (prepared > 0 || unsubmitted_) {
      const int ret = io_uring_submit(&ring_);
      // EAGAIN / EBUSY: the entries stay queued and go out with the next submit.
      unsubmitted_ = ret < 0;
      if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -EINTR) break_engine(ret);
    }
  }

  void prepare(io_uring_sqe* sqe, int id) {
    Piece& p = pieces_[id];
    const Op& op = ops_[p.buffer];
    const bool write = op.request->op == IoOp::kWrite;
    const size_t want = p.length - p.done;
    const FaultAction fault =
        io_faults().next(write ? FaultOp::kWrite : FaultOp::kRead, want, layout_.granularity());
    p.submitted = want;
    io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(id));
    if (fault.error != 0) {
      p.injected = -fault.error;
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(id));
      return;
    }
    unsigned char* memory = staging_[p.buffer].data() + p.begin + p.done;
    const uint64_t offset = layout_.offset(op.request->slot) + p.begin + p.done;
    const auto length = static_cast<unsigned>(fault.length);
    if (registered_) {
      if (write) {
        io_uring_prep_write_fixed(sqe, layout_.fd, memory, length, offset, p.buffer);
      } else {
        io_uring_prep_read_fixed(sqe, layout_.fd, memory, length, offset, p.buffer);
      }
    } else if (write) {
      io_uring_prep_write(sqe, layout_.fd, memory, length, offset);
    } else {
      io_uring_prep_read(sqe, layout_.fd, memory, length, offset);
    }
    io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(id));
  }

  void handle(io_uring_cqe* cqe) {
    const int id = static_cast<int>(io_uring_cqe_get_data64(cqe));
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    --in_flight_;
    Piece& p = pieces_[id];
    if (p.injected != 0) {
      res = p.injected;
      p.injected = 0;
    }
    Op& op = ops_[p.buffer];
    const FaultOp kind = op.request->op == IoOp::kWrite ? FaultOp::kWrite : FaultOp::kRead;
    const IoWhere where{"slot", op.request->slot};
    const uint64_t offset = layout_.offset(op.request->slot) + p.begin;
    if (res == -EINTR || res == -EAGAIN) {
      ready_.push_back(id);
      return;
    }
    if (res < 0) {
      fail(op, io_error(where, kind, offset + p.done, p.submitted, -res));
    } else {
      p.done += static_cast<size_t>(res);
      if (p.done < p.length) {
        // Short: the remainder goes out again unless no progress was made or it keeps happening.
        if (res == 0 || ++p.short_runs > kMaxShortRetries) {
          fail(op, short_error(where, kind, offset, p.done, p.length));
        } else {
          ready_.push_back(id);
          return;
        }
      }
    }
    if (--op.pieces_left == 0) finish(p.buffer);
  }

  static void fail(Op& op, Status status) {
    if (op.status.ok()) op.status = std::move(status);
  }

  void finish(int b) {
    Op& op = ops_[b];
    if (op.status.ok() && op.request->op == IoOp::kRead) {
      op.status = finish_read(layout_, *op.request, staging_[b].data());
    }
    op.request->status = std::move(op.status);
    op.request = nullptr;
    --active_;
    free_.push_back(b);
  }

  Status broken_error(int64_t slot) const {
    return make_error(StatusCode::kIoError, "slot ", slot,
                      ": io_uring submission failed: ", errno_text(-submit_error_));
  }

  // The ring refused a submission outright: every request in flight or waiting fails. Their
  // staging buffers are never reused, since the kernel may still own queued entries on them.
  void break_engine(int error) {
    broken_ = true;
    submit_error_ = error;
    for (Op& op : ops_) {
      if (op.request == nullptr) continue;
      op.request->status = broken_error(op.request->slot);
      op.request = nullptr;
    }
    for (IoRequest* request : pending_) request->status = broken_error(request->slot);
    pending_.clear();
    ready_.clear();
    active_ = 0;
  }

  const FileLayout layout_;
  const int queue_depth_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool registered_ = false;
  std::string register_reason_;
  int pieces_per_op_ = 1;
  std::vector<AlignedBuffer> staging_;
  std::vector<Op> ops_;
  std::vector<Piece> pieces_;
  std::vector<int> free_;
  std::deque<IoRequest*> pending_;
  std::deque<int> ready_;
  int in_flight_ = 0;
  int active_ = 0;
  bool unsubmitted_ = false;
  bool broken_ = false;
  int submit_error_ = -EIO;
};

}  // namespace

Status make_uring_engine(const FileLayout& layout, int queue_depth,
                         std::unique_ptr<FileEngine>* out) {
  auto engine = std::make_unique<UringEngine>(layout, queue_depth);
  QWEN3VL_RETURN_IF_ERROR(engine->init());
  *out = std::move(engine);
  return Status();
}

#endif

}  // namespace qwen3vl::lifecycle::detail
