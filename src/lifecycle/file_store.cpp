// FileStore: the slot file's geometry (superblock, alignment, preallocation), the choice of
// engine, and recovery. The transfers themselves live in the engines (uring_engine.cpp,
// pool_engine.cpp).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "qwen3vl/lifecycle/block_store.hpp"
#include "src/lifecycle/aligned_buffer.hpp"
#include "src/lifecycle/file_engine.hpp"
#include "src/lifecycle/file_io.hpp"
#include "src/lifecycle/slot_format.hpp"

namespace qwen3vl::lifecycle {

using detail::concat;

struct FileStore::Impl {
  std::string path;
  detail::FileLayout layout;
  std::string direct_reason;     // why O_DIRECT is off, when it is
  std::string alignment_source;  // which query gave the alignment
  IoEngine engine_kind = IoEngine::kThreadPool;
  std::string engine_reason;  // why this engine (and not io_uring)
  std::unique_ptr<detail::FileEngine> engine;
  std::vector<IoRequest*> submitted;  // since the last wait(): for its first error

  ~Impl() {
    engine.reset();  // joins threads / drains the ring before the descriptor goes
    if (layout.fd >= 0) ::close(layout.fd);
  }
};

namespace {

constexpr size_t kMaxBlockBytes = size_t{1} << 32;  // 4 GiB: far above any KV block
constexpr int64_t kMaxSlots = int64_t{1} << 32;

size_t round_up(size_t value, size_t to) { return (value + to - 1) / to * to; }

Status check_options(const FileStoreOptions& options) {
  if (options.engine != IoEngine::kAuto && options.engine != IoEngine::kIoUring &&
      options.engine != IoEngine::kThreadPool) {
    return make_error(StatusCode::kInvalidArgument,
                      "options.engine = ", static_cast<int>(options.engine),
                      ": allowed auto, io_uring, thread-pool");
  }
  if (options.queue_depth < 1 || options.queue_depth > 4096) {
    return make_error(StatusCode::kInvalidArgument, "options.queue_depth = ", options.queue_depth,
                      ": allowed 1..4096");
  }
  if (options.request_bytes == 0 || options.request_bytes > (size_t{1} << 30)) {
    return make_error(StatusCode::kInvalidArgument,
                      "options.request_bytes = ", options.request_bytes, ": allowed 1..2^30");
  }
  if (options.threads < 1 || options.threads > 64) {
    return make_error(StatusCode::kInvalidArgument, "options.threads = ", options.threads,
                      ": allowed 1..64");
  }
  return Status();
}

// A file system can accept O_DIRECT at open and refuse it at the first transfer: one aligned read
// of the superblock region finds out, and EINVAL there reopens the file buffered.
Status probe_direct(FileStore::Impl& impl) {
  detail::FileLayout& layout = impl.layout;
  if (!layout.direct) return Status();
  detail::AlignedBuffer probe(layout.alignment, layout.memory_alignment);
  if (probe.data() == nullptr) return make_error(StatusCode::kOutOfMemory, "O_DIRECT probe");
  const ssize_t n = ::pread(layout.fd, probe.data(), layout.alignment, 0);
  if (n >= 0) return Status();
  const int err = errno;
  if (err != EINVAL) {
    return make_error(StatusCode::kIoError, "path = \"", impl.path,
                      "\": first read failed: ", detail::errno_text(err));
  }
  ::close(layout.fd);
  layout.fd = -1;
  detail::OpenedFile reopened;
  QWEN3VL_RETURN_IF_ERROR(detail::open_file(impl.path, false, false, &reopened));
  layout.fd = reopened.fd;
  layout.direct = false;
  impl.direct_reason = concat("O_DIRECT refused on read: ", detail::errno_text(err));
  return Status();
}

Status pick_engine(FileStore::Impl& impl, const FileStoreOptions& options) {
  const detail::FileLayout& layout = impl.layout;
  if (options.engine == IoEngine::kThreadPool) {
    impl.engine_kind = IoEngine::kThreadPool;
    impl.engine_reason = "engine forced by options";
    return detail::make_pool_engine(layout, options.threads, &impl.engine);
  }
  if (options.engine == IoEngine::kIoUring) {
    Status status = detail::make_uring_engine(layout, options.queue_depth, &impl.engine);
    if (!status.ok()) {
      return make_error(status.code(), "options.engine = io_uring for \"", impl.path,
                        "\": ", status.message());
    }
    impl.engine_kind = IoEngine::kIoUring;
    impl.engine_reason = "engine forced by options";
    return Status();
  }
  // Auto: io_uring pays off for direct transfers; buffered ones mostly hit the page cache and
  // complete inline, where plain threads do as well with less machinery.
  if (layout.direct) {
    Status status = detail::make_uring_engine(layout, options.queue_depth, &impl.engine);
    if (status.ok()) {
      impl.engine_kind = IoEngine::kIoUring;
      return Status();
    }
    if (status.code() != StatusCode::kUnsupported) return status;
    impl.engine_reason = concat("io_uring unavailable: ", status.message());
  } else {
    impl.engine_reason = concat("io_uring not used without O_DIRECT");
  }
  impl.engine_kind = IoEngine::kThreadPool;
  return detail::make_pool_engine(layout, options.threads, &impl.engine);
}

// The layout fields that follow from the alignment and the options.
void finish_layout(detail::FileLayout& layout, const FileStoreOptions& options) {
  layout.memory_alignment = std::max<size_t>(layout.alignment, 4096);
  layout.request_bytes =
      round_up(std::max(options.request_bytes, layout.alignment), layout.alignment);
}

}  // namespace

Status FileStore::create(const std::string& path, size_t block_bytes, int64_t slots,
                         const FileStoreOptions& options, std::unique_ptr<FileStore>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null: allowed non-null");
  bool opened = false;
  Status status = create_file(path, block_bytes, slots, options, out, &opened);
  // A half-made file (ENOSPC while preallocating, say) is removed, never left to be opened.
  if (!status.ok() && opened) ::unlink(path.c_str());
  return status;
}

Status FileStore::create_file(const std::string& path, size_t block_bytes, int64_t slots,
                              const FileStoreOptions& options, std::unique_ptr<FileStore>* out,
                              bool* opened_out) {
  if (path.empty())
    return make_error(StatusCode::kInvalidArgument, "path = \"\": allowed a file path");
  if (block_bytes == 0 || block_bytes > kMaxBlockBytes) {
    return make_error(StatusCode::kInvalidArgument, "block_bytes = ", block_bytes, ": allowed 1..",
                      kMaxBlockBytes);
  }
  if (slots <= 0 || slots > kMaxSlots) {
    return make_error(StatusCode::kInvalidArgument, "slots = ", slots, ": allowed 1..", kMaxSlots);
  }
  QWEN3VL_RETURN_IF_ERROR(check_options(options));

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  detail::OpenedFile opened;
  QWEN3VL_RETURN_IF_ERROR(detail::open_file(path, true, options.direct_io, &opened));
  *opened_out = true;
  detail::FileLayout& layout = impl->layout;
  layout.fd = opened.fd;
  layout.direct = opened.direct;
  impl->direct_reason = opened.direct_reason;
  layout.alignment = detail::dio_alignment(layout.fd, &impl->alignment_source);
  layout.block_bytes = block_bytes;
  layout.slots = slots;
  layout.stride = round_up(detail::kSlotHeaderBytes + block_bytes, layout.alignment);
  layout.data_offset = round_up(detail::kSuperblockBytes, layout.alignment);
  finish_layout(layout, options);
  const uint64_t file_bytes = layout.data_offset + static_cast<uint64_t>(slots) * layout.stride;
  QWEN3VL_RETURN_IF_ERROR(detail::preallocate(layout.fd, file_bytes, path));
  QWEN3VL_RETURN_IF_ERROR(probe_direct(*impl));

  // The superblock is written (and made durable) before any slot, so open() can trust it.
  detail::AlignedBuffer super(layout.data_offset, layout.memory_alignment);
  if (super.data() == nullptr) return make_error(StatusCode::kOutOfMemory, "superblock buffer");
  detail::encode_superblock(
      super.data(), detail::Superblock{block_bytes, static_cast<uint64_t>(slots), layout.stride,
                                       layout.data_offset, layout.alignment});
  QWEN3VL_RETURN_IF_ERROR(detail::pwrite_full(layout.fd, super.data(), layout.data_offset, 0,
                                              layout.data_offset, layout.granularity(),
                                              detail::IoWhere{"superblock", -1}));
  if (::fdatasync(layout.fd) != 0) {
    return make_error(StatusCode::kIoError, "path = \"", path,
                      "\": fdatasync failed: ", detail::errno_text(errno));
  }
  QWEN3VL_RETURN_IF_ERROR(pick_engine(*impl, options));
  out->reset(new FileStore(block_bytes, slots, std::move(impl)));
  return Status();
}

Status FileStore::open(const std::string& path, const FileStoreOptions& options,
                       std::unique_ptr<FileStore>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null: allowed non-null");
  if (path.empty())
    return make_error(StatusCode::kInvalidArgument, "path = \"\": allowed a file path");
  QWEN3VL_RETURN_IF_ERROR(check_options(options));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  detail::OpenedFile opened;
  QWEN3VL_RETURN_IF_ERROR(detail::open_file(path, false, options.direct_io, &opened));
  detail::FileLayout& layout = impl->layout;
  layout.fd = opened.fd;
  layout.direct = opened.direct;
  impl->direct_reason = opened.direct_reason;
  layout.alignment = detail::dio_alignment(layout.fd, &impl->alignment_source);
  layout.memory_alignment = std::max<size_t>(layout.alignment, 4096);
  QWEN3VL_RETURN_IF_ERROR(probe_direct(*impl));

  detail::AlignedBuffer super(layout.alignment, layout.memory_alignment);
  if (super.data() == nullptr) return make_error(StatusCode::kOutOfMemory, "superblock buffer");
  QWEN3VL_RETURN_IF_ERROR(detail::pread_full(layout.fd, super.data(), layout.alignment, 0,
                                             layout.alignment, layout.granularity(),
                                             detail::IoWhere{"superblock", -1}));
  detail::Superblock sb;
  QWEN3VL_RETURN_IF_ERROR(detail::decode_superblock(super.data(), path, &sb));
  if (sb.block_bytes == 0 || sb.block_bytes > kMaxBlockBytes || sb.slots == 0 ||
      sb.slots > static_cast<uint64_t>(kMaxSlots) ||
      sb.slot_stride < detail::kSlotHeaderBytes + sb.block_bytes ||
      sb.data_offset < detail::kSuperblockBytes) {
    return make_error(StatusCode::kDataCorrupt, "path = \"", path,
                      "\": superblock geometry is inconsistent (block_bytes ", sb.block_bytes,
                      ", slots ", sb.slots, ", stride ", sb.slot_stride, ")");
  }
  struct stat st {};
  const uint64_t file_bytes = sb.data_offset + sb.slots * sb.slot_stride;
  if (::fstat(layout.fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < file_bytes) {
    return make_error(StatusCode::kDataCorrupt, "path = \"", path, "\": file is ", st.st_size,
                      " bytes, the superblock needs ", file_bytes, " (truncated)");
  }
  layout.block_bytes = sb.block_bytes;
  layout.slots = static_cast<int64_t>(sb.slots);
  layout.stride = sb.slot_stride;
  layout.data_offset = sb.data_offset;
  if (layout.direct &&
      (sb.slot_stride % layout.alignment != 0 || sb.data_offset % layout.alignment != 0)) {
    // Made on a file system with a smaller alignment: buffered I/O still reads it.
    ::close(layout.fd);
    layout.fd = -1;
    QWEN3VL_RETURN_IF_ERROR(detail::open_file(path, false, false, &opened));
    layout.fd = opened.fd;
    layout.direct = false;
    impl->direct_reason = concat("slot stride ", sb.slot_stride, " is not a multiple of the ",
                                 layout.alignment, " B direct-I/O alignment");
  }
  finish_layout(layout, options);
  QWEN3VL_RETURN_IF_ERROR(pick_engine(*impl, options));
  out->reset(new FileStore(layout.block_bytes, layout.slots, std::move(impl)));
  return Status();
}

FileStore::FileStore(size_t block_bytes, int64_t slots, std::unique_ptr<Impl> impl)
    : BlockStore(block_bytes, slots), impl_(std::move(impl)) {}

FileStore::~FileStore() = default;

std::string FileStore::describe() const {
  const detail::FileLayout& layout = impl_->layout;
  std::string text = concat(
      impl_->engine->describe(), ", ",
      layout.direct ? std::string("O_DIRECT") : concat("buffered (", impl_->direct_reason, ")"),
      ", ", layout.alignment, " B alignment (", impl_->alignment_source, ")");
  if (!impl_->engine_reason.empty()) text += concat("; ", impl_->engine_reason);
  return text;
}

Status FileStore::submit(IoRequest* requests, size_t count) {
  return start_each(requests, count, [&](IoRequest& request) {
    impl_->submitted.push_back(&request);
    impl_->engine->start(&request);
  });
}

Status FileStore::wait() {
  impl_->engine->wait();
  Status first;
  for (IoRequest* request : impl_->submitted) {
    if (!request->status.ok()) {
      first = request->status;
      break;
    }
  }
  impl_->submitted.clear();
  return first;
}

bool FileStore::poll() {
  // submitted stays until wait(): its first error is what wait() reports.
  return impl_->engine->poll();
}

Status FileStore::recover(RecoveryReport* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null: allowed non-null");
  (void)wait();  // the scan must see every write already submitted; their errors stay on them
  *out = RecoveryReport{};
  const detail::FileLayout& layout = impl_->layout;
  // Sequential reads of many slots at once: recovery runs once, at startup, and is read-bound.
  const int64_t batch =
      std::max<int64_t>(1, static_cast<int64_t>((size_t{8} << 20) / layout.stride));
  detail::AlignedBuffer buffer(static_cast<size_t>(std::min(batch, slots())) * layout.stride,
                               layout.memory_alignment);
  if (buffer.data() == nullptr) return make_error(StatusCode::kOutOfMemory, "recovery buffer");
  for (int64_t first = 0; first < slots(); first += batch) {
    const int64_t n = std::min(batch, slots() - first);
    const size_t bytes = static_cast<size_t>(n) * layout.stride;
    QWEN3VL_RETURN_IF_ERROR(detail::pread_full(
        layout.fd, buffer.data(), bytes, layout.offset(first), layout.request_bytes,
        layout.granularity(), detail::IoWhere{"recovery scan from slot", first}));
    for (int64_t i = 0; i < n; ++i) {
      detail::recover_slot(buffer.data() + static_cast<size_t>(i) * layout.stride, block_bytes(),
                           first + i, out);
    }
  }
  return Status();
}

IoEngine FileStore::engine() const { return impl_->engine_kind; }
bool FileStore::direct_io() const { return impl_->layout.direct; }
size_t FileStore::alignment() const { return impl_->layout.alignment; }
size_t FileStore::slot_stride() const { return impl_->layout.stride; }
uint64_t FileStore::slot_offset(int64_t slot) const { return impl_->layout.offset(slot); }
const std::string& FileStore::path() const { return impl_->path; }

}  // namespace qwen3vl::lifecycle
