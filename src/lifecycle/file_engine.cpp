// Staging shared by both engines: a write is encoded (header, payload, zero padding) into aligned
// memory and goes out as one slot image; a read comes into aligned memory and only a verified
// payload is copied to the caller.
#include "src/lifecycle/file_engine.hpp"

#include <cstring>

#include "src/lifecycle/slot_format.hpp"

namespace qwen3vl::lifecycle::detail {

void stage_write(const FileLayout& layout, const IoRequest& request, unsigned char* staging) {
  encode_slot(staging, request.buffer, layout.block_bytes, request.slot, request.tag,
              request.version);
  const size_t used = kSlotHeaderBytes + layout.block_bytes;
  std::memset(staging + used, 0, layout.stride - used);
}

Status finish_read(const FileLayout& layout, IoRequest& request, const unsigned char* staging) {
  SlotHeader header;
  const uint64_t* expected = request.check_tag ? &request.tag : nullptr;
  const SlotCheck check = check_slot(staging, layout.block_bytes, request.slot, expected, &header);
  if (check != SlotCheck::kValid) return slot_error(check, request.slot, header, expected);
  std::memcpy(request.buffer, staging + kSlotHeaderBytes, layout.block_bytes);
  request.tag = header.tag;
  request.version = header.version;
  return Status();
}

}  // namespace qwen3vl::lifecycle::detail
