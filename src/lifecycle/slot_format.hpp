// The on-media format every store shares: a 64-byte slot header in front of each block, and the
// file superblock. Fields are stored little-endian at fixed offsets (see slot_format.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"

namespace qwen3vl::lifecycle::detail {

using ::qwen3vl::detail::concat;

constexpr size_t kSlotHeaderBytes = 64;
constexpr uint32_t kSlotMagic = 0x564B3351u;  // "Q3KV"
constexpr uint16_t kFormatVersion = 1;
constexpr size_t kSuperblockBytes = 64;  // stored at offset 0, padded to the alignment
constexpr uint64_t kFileMagic = 0x45524F5453564B33ull;  // "3KVSTORE"

struct SlotHeader {
  uint32_t magic = 0;
  uint16_t format = 0;
  uint64_t block_bytes = 0;
  uint64_t slot = 0;  // the slot it was written to: catches a misdirected write
  uint64_t tag = 0;
  uint64_t version = 0;
  uint32_t payload_crc = 0;
  uint32_t flags = 0;
};

// Writes header + payload into slot_memory (kSlotHeaderBytes + block_bytes bytes).
void encode_slot(unsigned char* slot_memory, const void* payload, size_t block_bytes, int64_t slot,
                 uint64_t tag, uint64_t version);

enum class SlotCheck : uint8_t {
  kValid,
  kEmpty,  // an all-zero header: never written
  kBadMagic,
  kBadFormat,
  kBadHeaderChecksum,
  kWrongGeometry,  // header written for another block size
  kWrongSlot,      // header names another slot
  kBadTag,
  kBadPayloadChecksum,
};

// A header for a payload a device wrote in place by DMA: flagged unchecked (no CPU pass computed
// its checksum), so the header alone verifies the slot.
void encode_unchecked_header(unsigned char* slot_memory, size_t block_bytes, int64_t slot,
                             uint64_t tag, uint64_t version);

// Checks the header and, when it passes, the payload checksum (unless header_only, or the header
// says the payload is unchecked). header receives the decoded fields.
SlotCheck check_slot(const unsigned char* slot_memory, size_t block_bytes, int64_t slot,
                     const uint64_t* expected_tag, SlotHeader* header, bool header_only = false);

// Sorts one slot image into out's valid, empty or dropped list (recover()'s verdict on a slot).
void recover_slot(const unsigned char* slot_memory, size_t block_bytes, int64_t slot,
                  RecoveryReport* out);

// "header checksum mismatch", ...: what recover() reports for a dropped slot.
std::string describe_check(SlotCheck check, const SlotHeader& header, const uint64_t* expected_tag);

// kDataCorrupt naming the slot and the failed check.
Status slot_error(SlotCheck check, int64_t slot, const SlotHeader& header,
                  const uint64_t* expected_tag);

struct Superblock {
  uint64_t block_bytes = 0;
  uint64_t slots = 0;
  uint64_t slot_stride = 0;
  uint64_t data_offset = 0;  // where slot 0 starts
  uint64_t alignment = 0;
};
void encode_superblock(unsigned char* memory, const Superblock& sb);  // kSuperblockBytes bytes
// Fails with kDataCorrupt (naming path) when magic, format or checksum do not match.
Status decode_superblock(const unsigned char* memory, const std::string& path, Superblock* out);

}  // namespace qwen3vl::lifecycle::detail
