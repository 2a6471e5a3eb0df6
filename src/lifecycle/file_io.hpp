// The file store's system calls: opening with or without O_DIRECT, the direct-I/O alignment,
// preallocation, and full-length pread/pwrite with retry of short transfers. Each consults the
// test fault table (io_faults.hpp) first, so injected and real failures take the same path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "qwen3vl/core/status.hpp"
#include "src/lifecycle/io_faults.hpp"

namespace qwen3vl::lifecycle::detail {

using ::qwen3vl::detail::concat;

// "Input/output error (EIO)"
std::string errno_text(int err);

// The transfer's context, for messages: "slot 3 write" or "superblock read".
struct IoWhere {
  const char* what = "slot";  // "slot" or "superblock"
  int64_t slot = -1;
};
std::string where_text(const IoWhere& where, FaultOp op);

// How the file ended up open. direct_reason says why O_DIRECT is off when it is.
struct OpenedFile {
  int fd = -1;
  bool direct = false;
  std::string direct_reason;
};
// Opens path read-write (creating and truncating it when create), with O_DIRECT when asked and the
// file system accepts it; refused (EINVAL) it reopens buffered and records why.
Status open_file(const std::string& path, bool create, bool want_direct, OpenedFile* out);

// The direct-I/O alignment: statx STATX_DIOALIGN where the kernel reports it, else the backing
// device's logical block size (BLKSSZGET), else 4096. source names which answered.
size_t dio_alignment(int fd, std::string* source);

// Preallocates bytes (fallocate); ENOSPC and other failures are kIoError naming path.
Status preallocate(int fd, uint64_t bytes, const std::string& path);

// Transfers exactly length bytes at offset, in pieces of at most max_piece bytes. A short transfer
// is retried for the remainder; one that makes no progress (or too many in a row) is kIoError,
// as is any failed call (errno named). granularity: what an O_DIRECT remainder must stay aligned
// to.
Status pread_full(int fd, void* buffer, size_t length, uint64_t offset, size_t max_piece,
                  size_t granularity, const IoWhere& where);
Status pwrite_full(int fd, const void* buffer, size_t length, uint64_t offset, size_t max_piece,
                   size_t granularity, const IoWhere& where);

// kIoError for a failed transfer: "slot 3 write at offset 8192 (4096 bytes): Input/output error".
Status io_error(const IoWhere& where, FaultOp op, uint64_t offset, size_t length, int err);
Status short_error(const IoWhere& where, FaultOp op, uint64_t offset, size_t done, size_t length);

constexpr int kMaxShortRetries = 32;

}  // namespace qwen3vl::lifecycle::detail
