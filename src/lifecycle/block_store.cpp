// What every store shares: names, the per-request argument checks, and the synchronous helpers
// (one request through the store's own batch path, so they take the same code as a batch).
#include "qwen3vl/lifecycle/block_store.hpp"

namespace qwen3vl::lifecycle {

const char* to_string(IoOp op) {
  switch (op) {
    case IoOp::kRead: return "read";
    case IoOp::kWrite: return "write";
  }
  return "unknown op";
}

const char* to_string(IoEngine engine) {
  constexpr const char* kNames[] = {"auto", "io_uring", "thread-pool"};
  const auto i = static_cast<unsigned>(engine);
  return i < 3 ? kNames[i] : "unknown engine";
}

unsigned char* BlockStore::payload_address(int64_t) const { return nullptr; }

Status BlockStore::check_header(int64_t, uint64_t, uint64_t*) const {
  return make_error(StatusCode::kUnsupported, describe(), ": no direct access to slots");
}

Status BlockStore::seal(int64_t, uint64_t, uint64_t) {
  return make_error(StatusCode::kUnsupported, describe(), ": no direct access to slots");
}

Status BlockStore::check_request(const IoRequest& request) const {
  if (request.op != IoOp::kRead && request.op != IoOp::kWrite) {
    return make_error(StatusCode::kInvalidArgument, "request.op = ", static_cast<int>(request.op),
                      ": allowed read (0) or write (1)");
  }
  if (request.slot < 0 || request.slot >= slots_) {
    return make_error(StatusCode::kInvalidArgument, "slot = ", request.slot, ": allowed 0..",
                      slots_ - 1, " (the store has ", slots_, " slots)");
  }
  if (request.buffer == nullptr) {
    return make_error(StatusCode::kNullPointer, "buffer = null for the ", to_string(request.op),
                      " of slot ", request.slot, ": allowed any memory of ", block_bytes_,
                      " bytes");
  }
  return Status();
}

Status BlockStore::write(int64_t slot, const void* src, uint64_t tag, uint64_t version) {
  IoRequest request;
  request.op = IoOp::kWrite;
  request.slot = slot;
  request.buffer = const_cast<void*>(src);  // a write only reads the buffer
  request.tag = tag;
  request.version = version;
  QWEN3VL_RETURN_IF_ERROR(submit(&request, 1));
  QWEN3VL_RETURN_IF_ERROR(wait());
  return request.status;
}

Status BlockStore::read(int64_t slot, void* dst, const uint64_t* expected_tag,
                        uint64_t* version_out) {
  IoRequest request;
  request.op = IoOp::kRead;
  request.slot = slot;
  request.buffer = dst;
  request.check_tag = expected_tag != nullptr;
  request.tag = expected_tag != nullptr ? *expected_tag : 0;
  QWEN3VL_RETURN_IF_ERROR(submit(&request, 1));
  QWEN3VL_RETURN_IF_ERROR(wait());
  if (request.status.ok() && version_out != nullptr) *version_out = request.version;
  return request.status;
}

}  // namespace qwen3vl::lifecycle
