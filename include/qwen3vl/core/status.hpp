// Status codes, the Status value every checked call returns, and the Error the convenience API
// throws.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace qwen3vl {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // a value outside its allowed range
  kShapeMismatch,      // tensors whose shapes do not agree
  kBadStride,          // a stride the kernel cannot use (e.g. last dimension not contiguous)
  kNullPointer,        // a required pointer is null
  kUnsupported,        // valid input that this implementation does not handle
  kNotImplemented,     // a variant or feature that is not built yet
  kWorkspaceTooSmall,  // the caller's workspace is smaller than workspace_size()
  kDeviceError,        // a CUDA / driver call failed
  kOutOfMemory,
  kInternal,
  kIoError,      // a read or write of a store failed (EIO, ENOSPC, a short transfer): errno named
  kDataCorrupt,  // stored bytes fail their checksum or header check: never served
};

inline const char* to_string(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kShapeMismatch: return "shape mismatch";
    case StatusCode::kBadStride: return "bad stride";
    case StatusCode::kNullPointer: return "null pointer";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kNotImplemented: return "not implemented";
    case StatusCode::kWorkspaceTooSmall: return "workspace too small";
    case StatusCode::kDeviceError: return "device error";
    case StatusCode::kOutOfMemory: return "out of memory";
    case StatusCode::kInternal: return "internal error";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kDataCorrupt: return "data corrupt";
  }
  return "unknown status";
}

// A code plus a message that names the argument, its value and what is allowed. The message is only
// built on the error path, so an ok Status costs nothing.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const {
    return ok() ? std::string("ok") : std::string(qwen3vl::to_string(code_)) + ": " + message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

class Error : public std::runtime_error {
 public:
  explicit Error(const Status& status)
      : std::runtime_error(status.to_string()), code_(status.code()) {}
  Error(StatusCode code, const std::string& message) : Error(Status(code, message)) {}
  StatusCode code() const { return code_; }

 private:
  StatusCode code_;
};

inline void throw_if_error(const Status& status) {
  if (!status.ok()) throw Error(status);
}

namespace detail {
// Builds "<argument> = <value>: <allowed>" messages from any streamable parts.
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

// error(code, "q.shape[3] (head_dim) = ", d, ": allowed 1..256")
template <class... Parts>
Status make_error(StatusCode code, const Parts&... parts) {
  return Status(code, detail::concat(parts...));
}

}  // namespace qwen3vl

// Returns early from the enclosing function when a Status-returning expression fails.
#define QWEN3VL_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::qwen3vl::Status qwen3vl_status_ = (expr);        \
    if (!qwen3vl_status_.ok()) return qwen3vl_status_; \
  } while (0)
