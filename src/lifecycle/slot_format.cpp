// Slot header layout (64 bytes, little-endian):
//   0 magic u32 | 4 format u16 | 6 header bytes u16 | 8 block_bytes u64 | 16 slot u64 | 24 tag u64
//   32 version u64 | 40 payload CRC32C u32 | 44 flags u32 | 48..59 zero | 60 CRC32C of 0..59
// Flag kPayloadUnchecked: a device wrote the payload by DMA and no CPU pass computed its checksum
// (seal()); such a slot is verified by its header alone.
// The header checksum makes a torn or stale header detectable on its own; the payload checksum
// then covers the block. A write is one transfer of header + payload, so a crash can leave a new
// header over an old (or half-new) payload: the payload checksum catches that.
#include "src/lifecycle/slot_format.hpp"

#include <cstring>

#include "src/lifecycle/crc32c.hpp"

namespace qwen3vl::lifecycle::detail {
namespace {

template <class T>
void put(unsigned char* p, size_t offset, T value) {
  std::memcpy(p + offset, &value, sizeof(T));  // little-endian hosts only
}
template <class T>
T get(const unsigned char* p, size_t offset) {
  T value;
  std::memcpy(&value, p + offset, sizeof(T));
  return value;
}

constexpr size_t kHeaderCrcOffset = kSlotHeaderBytes - 4;
constexpr uint32_t kPayloadUnchecked = 1;

void put_header(unsigned char* h, size_t block_bytes, int64_t slot, uint64_t tag, uint64_t version,
                uint32_t payload_crc, uint32_t flags) {
  std::memset(h, 0, kSlotHeaderBytes);
  put<uint32_t>(h, 0, kSlotMagic);
  put<uint16_t>(h, 4, kFormatVersion);
  put<uint16_t>(h, 6, static_cast<uint16_t>(kSlotHeaderBytes));
  put<uint64_t>(h, 8, block_bytes);
  put<uint64_t>(h, 16, static_cast<uint64_t>(slot));
  put<uint64_t>(h, 24, tag);
  put<uint64_t>(h, 32, version);
  put<uint32_t>(h, 40, payload_crc);
  put<uint32_t>(h, 44, flags);
  put<uint32_t>(h, kHeaderCrcOffset, crc32c(h, kHeaderCrcOffset));
}

}  // namespace

void encode_slot(unsigned char* slot_memory, const void* payload, size_t block_bytes, int64_t slot,
                 uint64_t tag, uint64_t version) {
  unsigned char* h = slot_memory;
  std::memcpy(h + kSlotHeaderBytes, payload, block_bytes);
  // The checksum of the copy, not of the caller's buffer: what is stored is what is covered.
  put_header(h, block_bytes, slot, tag, version, crc32c(h + kSlotHeaderBytes, block_bytes), 0);
}

void encode_unchecked_header(unsigned char* slot_memory, size_t block_bytes, int64_t slot,
                             uint64_t tag, uint64_t version) {
  put_header(slot_memory, block_bytes, slot, tag, version, 0, kPayloadUnchecked);
}

SlotCheck check_slot(const unsigned char* slot_memory, size_t block_bytes, int64_t slot,
                     const uint64_t* expected_tag, SlotHeader* header, bool header_only) {
  const unsigned char* h = slot_memory;
  SlotHeader d;
  d.magic = get<uint32_t>(h, 0);
  d.format = get<uint16_t>(h, 4);
  d.block_bytes = get<uint64_t>(h, 8);
  d.slot = get<uint64_t>(h, 16);
  d.tag = get<uint64_t>(h, 24);
  d.version = get<uint64_t>(h, 32);
  d.payload_crc = get<uint32_t>(h, 40);
  d.flags = get<uint32_t>(h, 44);
  *header = d;
  if (d.magic != kSlotMagic) {
    bool zero = true;
    for (size_t i = 0; i < kSlotHeaderBytes && zero; ++i) zero = h[i] == 0;
    return zero ? SlotCheck::kEmpty : SlotCheck::kBadMagic;
  }
  if (get<uint32_t>(h, kHeaderCrcOffset) != crc32c(h, kHeaderCrcOffset)) {
    return SlotCheck::kBadHeaderChecksum;
  }
  if (d.format != kFormatVersion) return SlotCheck::kBadFormat;
  if (d.block_bytes != block_bytes) return SlotCheck::kWrongGeometry;
  if (d.slot != static_cast<uint64_t>(slot)) return SlotCheck::kWrongSlot;
  if (expected_tag != nullptr && d.tag != *expected_tag) return SlotCheck::kBadTag;
  if (header_only || (d.flags & kPayloadUnchecked) != 0) return SlotCheck::kValid;
  if (crc32c(h + kSlotHeaderBytes, block_bytes) != d.payload_crc) {
    return SlotCheck::kBadPayloadChecksum;
  }
  return SlotCheck::kValid;
}

void recover_slot(const unsigned char* slot_memory, size_t block_bytes, int64_t slot,
                  RecoveryReport* out) {
  SlotHeader header;
  const SlotCheck check = check_slot(slot_memory, block_bytes, slot, nullptr, &header);
  if (check == SlotCheck::kValid)
    out->valid.push_back(SlotRecord{slot, header.tag, header.version});
  else if (check == SlotCheck::kEmpty)
    ++out->empty;
  else
    out->dropped.push_back(DroppedSlot{slot, describe_check(check, header, nullptr)});
}

std::string describe_check(SlotCheck check, const SlotHeader& header,
                           const uint64_t* expected_tag) {
  switch (check) {
    case SlotCheck::kValid: return "valid";
    case SlotCheck::kEmpty: return "empty (never written)";
    case SlotCheck::kBadMagic:
      return concat("header magic 0x", std::hex, header.magic, " (expected 0x", kSlotMagic, ")");
    case SlotCheck::kBadFormat:
      return concat("header format ", header.format, " (this build reads ", kFormatVersion, ")");
    case SlotCheck::kBadHeaderChecksum: return "header checksum mismatch (torn or corrupt header)";
    case SlotCheck::kWrongGeometry:
      return concat("header block_bytes ", header.block_bytes, " differs from the store's");
    case SlotCheck::kWrongSlot:
      return concat("header names slot ", header.slot, " (misdirected write)");
    case SlotCheck::kBadTag:
      return concat("tag 0x", std::hex, header.tag, " != expected 0x",
                    expected_tag != nullptr ? *expected_tag : 0);
    case SlotCheck::kBadPayloadChecksum:
      return "payload checksum mismatch (torn or corrupt payload)";
  }
  return "unknown check";
}

Status slot_error(SlotCheck check, int64_t slot, const SlotHeader& header,
                  const uint64_t* expected_tag) {
  return make_error(StatusCode::kDataCorrupt, "slot ", slot, ": ",
                    describe_check(check, header, expected_tag),
                    "; the read buffer is not to be trusted");
}

void encode_superblock(unsigned char* memory, const Superblock& sb) {
  std::memset(memory, 0, kSuperblockBytes);
  put<uint64_t>(memory, 0, kFileMagic);
  put<uint16_t>(memory, 8, kFormatVersion);
  put<uint64_t>(memory, 16, sb.block_bytes);
  put<uint64_t>(memory, 24, sb.slots);
  put<uint64_t>(memory, 32, sb.slot_stride);
  put<uint64_t>(memory, 40, sb.data_offset);
  put<uint64_t>(memory, 48, sb.alignment);
  put<uint32_t>(memory, kSuperblockBytes - 4, crc32c(memory, kSuperblockBytes - 4));
}

Status decode_superblock(const unsigned char* memory, const std::string& path, Superblock* out) {
  if (get<uint64_t>(memory, 0) != kFileMagic) {
    return make_error(StatusCode::kDataCorrupt, "path = \"", path,
                      "\": no block-store superblock (file magic 0x", std::hex,
                      get<uint64_t>(memory, 0), ", expected 0x", kFileMagic, ")");
  }
  if (get<uint32_t>(memory, kSuperblockBytes - 4) != crc32c(memory, kSuperblockBytes - 4)) {
    return make_error(StatusCode::kDataCorrupt, "path = \"", path,
                      "\": superblock checksum mismatch");
  }
  if (get<uint16_t>(memory, 8) != kFormatVersion) {
    return make_error(StatusCode::kUnsupported, "path = \"", path, "\": store format ",
                      get<uint16_t>(memory, 8), " (this build reads ", kFormatVersion, ")");
  }
  out->block_bytes = get<uint64_t>(memory, 16);
  out->slots = get<uint64_t>(memory, 24);
  out->slot_stride = get<uint64_t>(memory, 32);
  out->data_offset = get<uint64_t>(memory, 40);
  out->alignment = get<uint64_t>(memory, 48);
  return Status();
}

}  // namespace qwen3vl::lifecycle::detail
