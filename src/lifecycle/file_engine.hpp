// What the file store's two engines share: the file layout, the per-request staging (encode a
// write, verify and copy out a read) and the engine interface FileStore drives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "qwen3vl/lifecycle/block_store.hpp"

namespace qwen3vl::lifecycle::detail {

struct FileLayout {
  int fd = -1;
  size_t block_bytes = 0;
  int64_t slots = 0;
  size_t stride = 0;               // header + payload rounded up to alignment
  uint64_t data_offset = 0;        // slot 0 starts here (after the superblock)
  size_t alignment = 4096;         // offsets and lengths of O_DIRECT transfers
  size_t memory_alignment = 4096;  // staging buffers
  bool direct = false;
  size_t request_bytes = 1u << 20;  // the largest single transfer (a multiple of alignment)
  uint64_t offset(int64_t slot) const { return data_offset + static_cast<uint64_t>(slot) * stride; }
  size_t granularity() const { return direct ? alignment : 1; }
};

// Fills staging (stride bytes) with the slot image of a write request.
void stage_write(const FileLayout& layout, const IoRequest& request, unsigned char* staging);
// Verifies the slot image in staging and, when valid, copies the payload out and reports the
// stored tag and version. Returns the request's status.
Status finish_read(const FileLayout& layout, IoRequest& request, const unsigned char* staging);

// One engine per store. start() takes requests whose arguments are already checked; every started
// request has its status set by the time poll() returns true or wait() returns.
class FileEngine {
 public:
  virtual ~FileEngine() = default;
  virtual void start(IoRequest* request) = 0;
  virtual bool poll() = 0;
  virtual void wait() = 0;
  virtual std::string describe() const = 0;
};

Status make_pool_engine(const FileLayout& layout, int threads, std::unique_ptr<FileEngine>* out);
// kUnsupported when the library was built without liburing or the ring cannot be set up (reason
// in the message, for the fallback's describe()).
Status make_uring_engine(const FileLayout& layout, int queue_depth,
                         std::unique_ptr<FileEngine>* out);

}  // namespace qwen3vl::lifecycle::detail
