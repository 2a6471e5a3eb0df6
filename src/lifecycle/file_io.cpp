// System calls of the file store. Linux only (O_DIRECT, fallocate, statx).
#include "src/lifecycle/file_io.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace qwen3vl::lifecycle::detail {

std::string errno_text(int err) {
  const char* name = strerrorname_np(err);
  return concat(std::strerror(err), " (", name != nullptr ? name : "errno", " ", err, ")");
}

std::string where_text(const IoWhere& where, FaultOp op) {
  const char* verb = op == FaultOp::kWrite ? "write" : "read";
  if (where.slot >= 0) return concat(where.what, " ", where.slot, " ", verb);
  return concat(where.what, " ", verb);
}

Status io_error(const IoWhere& where, FaultOp op, uint64_t offset, size_t length, int err) {
  return make_error(StatusCode::kIoError, where_text(where, op), " at file offset ", offset, " (",
                    length, " bytes) failed: ", errno_text(err));
}

Status short_error(const IoWhere& where, FaultOp op, uint64_t offset, size_t done, size_t length) {
  return make_error(StatusCode::kIoError, where_text(where, op), " at file offset ", offset,
                    " stayed short: ", done, " of ", length, " bytes after retries");
}

namespace {

Status open_error(const std::string& path, bool create, int err) {
  if (err == ENOENT) {
    return make_error(StatusCode::kInvalidArgument, "path = \"", path,
                      "\": ", create ? "its directory does not exist" : "no such file", " (",
                      errno_text(err), ")");
  }
  return make_error(StatusCode::kIoError, "path = \"", path, "\": open failed: ", errno_text(err));
}

}  // namespace

Status open_file(const std::string& path, bool create, bool want_direct, OpenedFile* out) {
  const int base = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
  int fd = -1;
  out->direct = false;
  if (want_direct) {
    const FaultAction fault = io_faults().next(FaultOp::kOpenDirect, 0, 1);
    int err = fault.error;
    if (err == 0) {
      fd = ::open(path.c_str(), base | O_DIRECT, 0644);
      if (fd < 0) err = errno;
    }
    if (fd >= 0) {
      out->direct = true;
    } else if (err == EINVAL) {
      // The file system refuses direct I/O (tmpfs before Linux 6.6, some FUSE mounts): buffered.
      out->direct_reason = concat("O_DIRECT refused: ", errno_text(EINVAL));
    } else {
      return open_error(path, create, err);
    }
  } else {
    out->direct_reason = "O_DIRECT off by option";
  }
  if (fd < 0) fd = ::open(path.c_str(), base, 0644);
  if (fd < 0) return open_error(path, create, errno);
  out->fd = fd;
  return Status();
}

namespace {

size_t block_device_sector(dev_t dev, std::string* source) {
  const std::string node = concat("/dev/block/", major(dev), ":", minor(dev));
  const int bfd = ::open(node.c_str(), O_RDONLY | O_CLOEXEC);
  if (bfd >= 0) {
    int sector = 0;
    const int rc = ::ioctl(bfd, BLKSSZGET, &sector);
    ::close(bfd);
    if (rc == 0 && sector > 0) {
      *source = "BLKSSZGET";
      return static_cast<size_t>(sector);
    }
  }
  // No device node to open (containers): the same number from sysfs, for a disk or a partition.
  for (const char* rel : {"/queue/logical_block_size", "/../queue/logical_block_size"}) {
    std::ifstream in(concat("/sys/dev/block/", major(dev), ":", minor(dev), rel));
    size_t value = 0;
    if (in >> value && value > 0) {
      *source = "sysfs logical_block_size";
      return value;
    }
  }
  return 0;
}

}  // namespace

size_t dio_alignment(int fd, std::string* source) {
#ifdef STATX_DIOALIGN
  struct statx sx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
      (sx.stx_mask & STATX_DIOALIGN) != 0 && sx.stx_dio_offset_align != 0) {
    *source = "statx DIOALIGN";
    return std::max<size_t>(sx.stx_dio_offset_align, sx.stx_dio_mem_align);
  }
#endif
  struct stat st {};
  if (::fstat(fd, &st) == 0 && major(st.st_dev) != 0) {
    const size_t sector = block_device_sector(st.st_dev, source);
    if (sector != 0) return sector;
  }
  *source = "default";
  return 4096;
}

Status preallocate(int fd, uint64_t bytes, const std::string& path) {
  const FaultAction fault = io_faults().next(FaultOp::kPreallocate, 0, 1);
  int err = fault.error;
  if (err == 0 && ::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0) err = errno;
  if (err == EOPNOTSUPP) {
    // No fallocate on this file system: the size alone (sparse), so ENOSPC may come at write time.
    if (::ftruncate(fd, static_cast<off_t>(bytes)) == 0) return Status();
    err = errno;
  }
  if (err != 0) {
    return make_error(StatusCode::kIoError, "path = \"", path, "\": preallocating ", bytes,
                      " bytes failed: ", errno_text(err));
  }
  return Status();
}

namespace {

template <bool kWrite, class Buffer>
Status transfer_full(int fd, Buffer buffer, size_t length, uint64_t offset, size_t max_piece,
                     size_t granularity, const IoWhere& where) {
  const FaultOp op = kWrite ? FaultOp::kWrite : FaultOp::kRead;
  size_t done = 0;
  int short_runs = 0;
  while (done < length) {
    const size_t want = std::min(length - done, max_piece);
    const FaultAction fault = io_faults().next(op, want, granularity);
    if (fault.error != 0) return io_error(where, op, offset + done, want, fault.error);
    ssize_t n;
    if constexpr (kWrite) {
      n = ::pwrite(fd, static_cast<const unsigned char*>(buffer) + done, fault.length,
                   static_cast<off_t>(offset + done));
    } else {
      n = ::pread(fd, static_cast<unsigned char*>(buffer) + done, fault.length,
                  static_cast<off_t>(offset + done));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(where, op, offset + done, want, errno);
    }
    done += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < want) {
      // Short: retry the remainder; no progress, or too many short pieces, is an error.
      if (n == 0 || ++short_runs > kMaxShortRetries) {
        return short_error(where, op, offset, done, length);
      }
    }
  }
  return Status();
}

}  // namespace

Status pread_full(int fd, void* buffer, size_t length, uint64_t offset, size_t max_piece,
                  size_t granularity, const IoWhere& where) {
  return transfer_full<false>(fd, buffer, length, offset, max_piece, granularity, where);
}

Status pwrite_full(int fd, const void* buffer, size_t length, uint64_t offset, size_t max_piece,
                   size_t granularity, const IoWhere& where) {
  return transfer_full<true>(fd, buffer, length, offset, max_piece, granularity, where);
}

}  // namespace qwen3vl::lifecycle::detail
