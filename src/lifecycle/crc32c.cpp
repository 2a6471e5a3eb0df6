// CRC32C, reflected polynomial 0x82F63B78. The hardware path processes 8 bytes per instruction;
// the table path slices by 8. Dispatch is resolved once into a function pointer.
#include "src/lifecycle/crc32c.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define QWEN3VL_CRC32C_X86 1
#endif

namespace qwen3vl::lifecycle::detail {
namespace {

using Table = std::array<std::array<uint32_t, 256>, 8>;

Table make_table() {
  Table t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1u) ? 0x82F63B78u : 0u);
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
  }
  return t;
}

const Table& table() {
  static const Table t = make_table();
  return t;
}

#ifdef QWEN3VL_CRC32C_X86
// Compiled for SSE4.2 alone (the rest of the library keeps the baseline ISA); only called when
// the CPU reports the instruction.
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(const void* data, size_t bytes,
                                                        uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc;
  for (; bytes >= 8; bytes -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; bytes > 0; --bytes, ++p) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}
#endif

using CrcFn = uint32_t (*)(const void*, size_t, uint32_t);

CrcFn pick() {
#ifdef QWEN3VL_CRC32C_X86
  if (__builtin_cpu_supports("sse4.2")) return &crc32c_sse42;
#endif
  return &crc32c_table;
}

}  // namespace

uint32_t crc32c_table(const void* data, size_t bytes, uint32_t crc) {
  const Table& t = table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  for (; bytes >= 8; bytes -= 8, p += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);  // little-endian hosts only (x86-64, aarch64 Linux)
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; bytes > 0; --bytes, ++p) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFF];
  return ~c;
}

uint32_t crc32c(const void* data, size_t bytes, uint32_t crc) {
  static const CrcFn fn = pick();
  return fn(data, bytes, crc);
}

bool crc32c_uses_sse42() { return pick() != &crc32c_table; }

}  // namespace qwen3vl::lifecycle::detail
