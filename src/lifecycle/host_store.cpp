// HostStore: slots in one host allocation, in the same slot format as the file (so a block moves
// between tiers as the same bytes and is verified the same way). Requests complete in submit().
#include <cstdlib>
#include <cstring>

#include "qwen3vl/core/checked_math.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"
#include "src/lifecycle/slot_format.hpp"

namespace qwen3vl::lifecycle {

namespace {
constexpr size_t kHostAlignment = 64;  // cache line: slots never share one
}

HostAllocator default_host_allocator() {
  HostAllocator allocator;
  allocator.allocate = [](size_t bytes) -> void* {
    const size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
    return std::aligned_alloc(kHostAlignment, rounded);
  };
  allocator.deallocate = [](void* memory) { std::free(memory); };
  allocator.name = "aligned_alloc";
  return allocator;
}

Status HostStore::create(size_t block_bytes, int64_t slots, std::unique_ptr<HostStore>* out,
                         HostAllocator allocator) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null: allowed non-null");
  if (block_bytes == 0) {
    return make_error(StatusCode::kInvalidArgument, "block_bytes = 0: allowed >= 1");
  }
  if (slots <= 0) {
    return make_error(StatusCode::kInvalidArgument, "slots = ", slots, ": allowed >= 1");
  }
  if (!allocator.allocate || !allocator.deallocate) {
    return make_error(StatusCode::kInvalidArgument,
                      "allocator: allocate and deallocate must both be set");
  }
  const size_t limit = size_t{1} << 40;  // a sanity bound that also keeps the products exact
  if (block_bytes > limit || static_cast<uint64_t>(slots) > limit) {
    return make_error(StatusCode::kInvalidArgument, "block_bytes = ", block_bytes,
                      ", slots = ", slots, ": allowed up to 2^40 each");
  }
  const size_t stride = (detail::kSlotHeaderBytes + block_bytes + kHostAlignment - 1) /
                        kHostAlignment * kHostAlignment;
  int64_t total = 0;
  if (!checked_mul(static_cast<int64_t>(stride), slots, &total)) {
    return make_error(StatusCode::kInvalidArgument, "block_bytes = ", block_bytes,
                      " x slots = ", slots, ": the store's size overflows");
  }
  auto* memory = static_cast<unsigned char*>(allocator.allocate(static_cast<size_t>(total)));
  if (memory == nullptr) {
    return make_error(StatusCode::kOutOfMemory, "host store of ", total, " bytes (", allocator.name,
                      ")");
  }
  if (reinterpret_cast<uintptr_t>(memory) % kHostAlignment != 0) {
    allocator.deallocate(memory);
    return make_error(StatusCode::kInvalidArgument, "allocator ", allocator.name,
                      " returned memory not aligned to ", kHostAlignment, " bytes");
  }
  std::memset(memory, 0, static_cast<size_t>(total));  // all-zero headers: every slot empty
  out->reset(new HostStore(block_bytes, slots, std::move(allocator), memory, stride));
  return Status();
}

HostStore::HostStore(size_t block_bytes, int64_t slots, HostAllocator allocator,
                     unsigned char* memory, size_t stride)
    : BlockStore(block_bytes, slots),
      allocator_(std::move(allocator)),
      memory_(memory),
      stride_(stride) {}

HostStore::~HostStore() { allocator_.deallocate(memory_); }

std::string HostStore::describe() const {
  return detail::concat("host memory (", allocator_.name, "), ", slots(), " slots of ", stride_,
                        " B, copies in the caller's thread");
}

Status HostStore::run_one(IoRequest& request) {
  unsigned char* slot = memory_ + static_cast<size_t>(request.slot) * stride_;
  if (request.op == IoOp::kWrite) {
    detail::encode_slot(slot, request.buffer, block_bytes(), request.slot, request.tag,
                        request.version);
    return Status();
  }
  detail::SlotHeader header;
  const uint64_t* expected = request.check_tag ? &request.tag : nullptr;
  const detail::SlotCheck check =
      detail::check_slot(slot, block_bytes(), request.slot, expected, &header);
  if (check != detail::SlotCheck::kValid) {
    return detail::slot_error(check, request.slot, header, expected);
  }
  std::memcpy(request.buffer, slot + detail::kSlotHeaderBytes, block_bytes());
  request.tag = header.tag;
  request.version = header.version;
  return Status();
}

Status HostStore::submit(IoRequest* requests, size_t count) {
  return start_each(requests, count, [&](IoRequest& request) {
    request.status = run_one(request);
    if (!request.status.ok() && first_error_.ok()) first_error_ = request.status;
  });
}

Status HostStore::wait() {
  Status status = std::move(first_error_);
  first_error_ = Status();
  return status;
}

unsigned char* HostStore::payload_address(int64_t slot) const {
  if (slot < 0 || slot >= slots()) return nullptr;
  return memory_ + static_cast<size_t>(slot) * stride_ + detail::kSlotHeaderBytes;
}

Status HostStore::check_header(int64_t slot, uint64_t expected_tag, uint64_t* version) const {
  if (slot < 0 || slot >= slots())
    return make_error(StatusCode::kInvalidArgument, "slot = ", slot, ": allowed 0..", slots() - 1);
  detail::SlotHeader header;
  const detail::SlotCheck check =
      detail::check_slot(memory_ + static_cast<size_t>(slot) * stride_, block_bytes(), slot,
                         &expected_tag, &header, /*header_only=*/true);
  if (check != detail::SlotCheck::kValid)
    return detail::slot_error(check, slot, header, &expected_tag);
  if (version != nullptr) *version = header.version;
  return Status();
}

Status HostStore::seal(int64_t slot, uint64_t tag, uint64_t version) {
  if (slot < 0 || slot >= slots())
    return make_error(StatusCode::kInvalidArgument, "slot = ", slot, ": allowed 0..", slots() - 1);
  detail::encode_unchecked_header(memory_ + static_cast<size_t>(slot) * stride_, block_bytes(),
                                  slot, tag, version);
  return Status();
}

Status HostStore::recover(RecoveryReport* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null: allowed non-null");
  *out = RecoveryReport{};
  for (int64_t s = 0; s < slots(); ++s)
    detail::recover_slot(memory_ + static_cast<size_t>(s) * stride_, block_bytes(), s, out);
  return Status();
}

}  // namespace qwen3vl::lifecycle
