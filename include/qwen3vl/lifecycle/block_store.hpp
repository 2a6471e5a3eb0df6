// Tier backends for the tiered KV store: fixed-size slots of one block each, behind one interface.
// HostStore keeps slots in (optionally pinned) host memory; FileStore keeps them in one
// preallocated file, read and written with io_uring + O_DIRECT or, where that is refused, a small
// pread/pwrite thread pool. Every slot carries a checksummed header (tag, version, payload
// checksum), so a read never serves bytes that are not the ones written (kDataCorrupt instead).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/lifecycle/host_allocator.hpp"
#include "qwen3vl/lifecycle/tier.hpp"

namespace qwen3vl::lifecycle {

enum class IoOp : uint8_t { kRead, kWrite };
const char* to_string(IoOp op);

// One slot transfer. The request, and the buffer it points to, must stay alive and untouched until
// the wait() (or the poll() returning true) that completes it.
struct IoRequest {
  IoOp op = IoOp::kRead;
  int64_t slot = -1;
  // block_bytes() bytes of caller memory, any alignment: the source of a write, the destination of
  // a read. After a failed read its contents are unspecified and must not be trusted.
  void* buffer = nullptr;
  // Write: stored in the slot header (e.g. the block's content hash). Read: when check_tag, the
  // stored tag must equal it (else kDataCorrupt); on success it holds the stored tag.
  uint64_t tag = 0;
  bool check_tag = false;
  // Write: stored in the slot header (a sequence number). Read: on success, the stored one.
  uint64_t version = 0;
  // Set when the request completes: ok, kIoError (the syscall, errno), kDataCorrupt (the check
  // that failed), or an argument error (then nothing was transferred).
  Status status;
};

// What recover() found in a store's slot headers.
struct SlotRecord {
  int64_t slot = 0;
  uint64_t tag = 0;
  uint64_t version = 0;
};
struct DroppedSlot {
  int64_t slot = 0;
  std::string reason;  // which check failed (header magic, header checksum, payload checksum, ...)
};
struct RecoveryReport {
  std::vector<SlotRecord> valid;     // every check passed: servable
  std::vector<DroppedSlot> dropped;  // written once but fails a check (torn or corrupt)
  int64_t empty = 0;                 // never written (an all-zero header)
};

// A store of slots() slots of block_bytes() payload bytes. Not thread-safe: one thread at a time
// submits and waits (a store may move between threads); the engines' own threads are internal.
class BlockStore {
 public:
  virtual ~BlockStore() = default;
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  virtual Tier tier() const = 0;
  size_t block_bytes() const { return block_bytes_; }
  int64_t slots() const { return slots_; }
  // Which engine runs and why, e.g. "io_uring + O_DIRECT, qd 16, 4096 B alignment".
  virtual std::string describe() const = 0;

  // Starts the requests. Each request's arguments are checked first: a bad one gets its status set
  // at once and is not run; the others run. Requests on the same slot that are in flight together
  // complete in no defined order. The returned Status is the first bad argument, if any.
  [[nodiscard]] virtual Status submit(IoRequest* requests, size_t count) = 0;
  // Blocks until every submitted request has completed; returns the first failed request's status
  // among those submit() started (every request carries its own).
  [[nodiscard]] virtual Status wait() = 0;
  // Advances completions without blocking; true when nothing submitted is still in flight.
  virtual bool poll() = 0;

  // One request, submitted and waited for (it also waits for anything else in flight).
  [[nodiscard]] Status write(int64_t slot, const void* src, uint64_t tag, uint64_t version);
  // Verifies magic, header checksum, tag (when expected_tag is given) and payload checksum. On any
  // error dst is not to be trusted. version_out (optional) receives the stored version.
  [[nodiscard]] Status read(int64_t slot, void* dst, const uint64_t* expected_tag = nullptr,
                            uint64_t* version_out = nullptr);

  // Reads every slot's header and payload and sorts the slots into valid, dropped and empty. A
  // torn or corrupt slot is never reported valid. Waits for anything in flight first.
  [[nodiscard]] virtual Status recover(RecoveryReport* out) = 0;

  // Direct access for a device that copies host memory itself (HostStore over pinned memory; null
  // and kUnsupported elsewhere): the payload of `slot`. Before a device reads it, check_header()
  // verifies the header (tag, geometry, slot) but not the payload checksum: a CPU pass over the
  // block would cost more than the copy. After a device wrote it, seal() writes the header, with
  // the payload marked unchecked.
  virtual unsigned char* payload_address(int64_t slot) const;
  [[nodiscard]] virtual Status check_header(int64_t slot, uint64_t expected_tag,
                                            uint64_t* version = nullptr) const;
  [[nodiscard]] virtual Status seal(int64_t slot, uint64_t tag, uint64_t version);

 protected:
  BlockStore(size_t block_bytes, int64_t slots) : block_bytes_(block_bytes), slots_(slots) {}
  // The argument checks every store shares: op, slot range, buffer.
  Status check_request(const IoRequest& request) const;
  // submit()'s shared loop: checks each request (a bad one gets its status and is skipped) and
  // hands the good ones to start(); returns the first bad argument, if any.
  template <class Start>
  Status start_each(IoRequest* requests, size_t count, Start&& start) const {
    if (requests == nullptr && count > 0)
      return make_error(StatusCode::kNullPointer, "requests = null with count = ", count);
    Status first_bad;
    for (size_t i = 0; i < count; ++i) {
      IoRequest& request = requests[i];
      request.status = check_request(request);
      if (request.status.ok())
        start(request);
      else if (first_bad.ok())
        first_bad = request.status;
    }
    return first_bad;
  }

 private:
  size_t block_bytes_;
  int64_t slots_;
};

// 64-byte aligned plain host memory

// Slots in one host allocation (64-byte aligned slot starts). Requests complete inside submit().
class HostStore final : public BlockStore {
 public:
  [[nodiscard]] static Status create(size_t block_bytes, int64_t slots,
                                     std::unique_ptr<HostStore>* out,
                                     HostAllocator allocator = default_host_allocator());
  ~HostStore() override;

  Tier tier() const override { return Tier::kHost; }
  std::string describe() const override;
  [[nodiscard]] Status submit(IoRequest* requests, size_t count) override;
  [[nodiscard]] Status wait() override;
  bool poll() override { return true; }
  [[nodiscard]] Status recover(RecoveryReport* out) override;
  unsigned char* payload_address(int64_t slot) const override;
  [[nodiscard]] Status check_header(int64_t slot, uint64_t expected_tag,
                                    uint64_t* version = nullptr) const override;
  [[nodiscard]] Status seal(int64_t slot, uint64_t tag, uint64_t version) override;

 private:
  HostStore(size_t block_bytes, int64_t slots, HostAllocator allocator, unsigned char* memory,
            size_t stride);
  Status run_one(IoRequest& request);

  HostAllocator allocator_;
  unsigned char* memory_;
  size_t stride_;
  Status first_error_;
};

enum class IoEngine : uint8_t {
  kAuto,        // io_uring when built, set up and O_DIRECT accepted; else the thread pool
  kIoUring,     // io_uring or a kUnsupported error (tests, benchmarks)
  kThreadPool,  // pread/pwrite on a few threads
};
const char* to_string(IoEngine engine);

struct FileStoreOptions {
  IoEngine engine = IoEngine::kAuto;
  bool direct_io = true;            // try O_DIRECT (bypasses the page cache)
  int queue_depth = 16;             // io_uring: transfers in flight; 1..4096
  size_t request_bytes = 1u << 20;  // the largest single transfer; a slot is split above it
  int threads = 2;                  // thread pool: worker threads; 1..64
};

// One preallocated slot file: a superblock (the geometry) then slots() slots, each rounded up to
// the file system's direct-I/O alignment. See docs/architecture.md, "Tiered KV store".
class FileStore final : public BlockStore {
 public:
  // Creates (or truncates) path and preallocates it; ENOSPC there is kIoError.
  [[nodiscard]] static Status create(const std::string& path, size_t block_bytes, int64_t slots,
                                     const FileStoreOptions& options,
                                     std::unique_ptr<FileStore>* out);
  // Opens a file create() made; its superblock gives the geometry. Call recover() to learn which
  // slots hold valid blocks.
  [[nodiscard]] static Status open(const std::string& path, const FileStoreOptions& options,
                                   std::unique_ptr<FileStore>* out);
  ~FileStore() override;

  Tier tier() const override { return Tier::kDisk; }
  std::string describe() const override;
  [[nodiscard]] Status submit(IoRequest* requests, size_t count) override;
  [[nodiscard]] Status wait() override;
  bool poll() override;
  [[nodiscard]] Status recover(RecoveryReport* out) override;

  IoEngine engine() const;     // the engine that runs (never kAuto)
  bool direct_io() const;      // whether the file is open with O_DIRECT
  size_t alignment() const;    // the direct-I/O alignment the slots are rounded to
  size_t slot_stride() const;  // bytes per slot in the file (header + payload + padding)
  uint64_t slot_offset(int64_t slot) const;  // where a slot starts in the file
  const std::string& path() const;

  struct Impl;

 private:
  FileStore(size_t block_bytes, int64_t slots, std::unique_ptr<Impl> impl);
  static Status create_file(const std::string& path, size_t block_bytes, int64_t slots,
                            const FileStoreOptions& options, std::unique_ptr<FileStore>* out,
                            bool* opened_out);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwen3vl::lifecycle
