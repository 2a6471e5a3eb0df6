// CRC32C (Castagnoli): the slot checksums. SSE4.2's crc32 instruction where the CPU has it, a
// slicing table elsewhere; both give the same value (chosen once, at first use).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qwen3vl::lifecycle::detail {

uint32_t crc32c(const void* data, size_t bytes, uint32_t crc = 0);
uint32_t crc32c_table(const void* data, size_t bytes, uint32_t crc = 0);  // the portable path
bool crc32c_uses_sse42();                                                 // which path runs

}  // namespace qwen3vl::lifecycle::detail
