// The CPU decode kernel's task and its per-ISA table. Each ISA's kernel is compiled in its own
// generated translation unit with its own flags, in namespace qwen3vl::detail::decode::<isa>;
// isa_table<DecodeKernels>(isa) is the only way to reach it.
#pragma once

#include <cstdint>

#include "qwen3vl/cpu/isa.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "src/cpu/isa_table.hpp"

namespace qwen3vl::detail {

// Keys per inner step (one paged block of the smallest size): S = Q K^T of (G * R) x kDecodeChunk
// scores per KV head; query rows go in tiles of kDecodeRowTile.
constexpr int64_t kDecodeChunk = 16;
constexpr int64_t kDecodeRowTile = 4;

// One (sequence, key split, KV-head range): all G * R query rows of each KV head in the range
// against keys [key_begin, key_end), keys outer and heads inner so the cache is read in order.
struct DecodeTask {
  const DecodeParams* params;
  DecodeShape shape;
  int64_t b;
  int64_t kv_head_begin, kv_head_end;
  int64_t key_begin, key_end;
  int64_t seq_len;
  // Partial results (o normalised, lse natural log) for the split, laid out [Hkv][G * R][D] and
  // [Hkv][G * R]; null: write params.out / params.lse directly (the only split).
  float* partial_o;
  float* partial_lse;
  void* scratch;  // decode_scratch_floats(...) floats, 64-byte aligned
  // The AVX-512 kernel may use AVX512-VNNI (the int8 Q.K's dpbusd): the ISA levels do not
  // include it (AVX-512 CPUs without it exist), so the kernel is told where the CPU has it.
  bool vnni = false;
};

// Floats of per-thread scratch for a task over `heads` KV heads: per head q, o, running max and
// sum, two chunks of scores.
inline int64_t decode_padded_dim(int64_t d) { return (d + 15) / 16 * 16; }
inline int64_t decode_padded_rows(int64_t rows) {
  return (rows + kDecodeRowTile - 1) / kDecodeRowTile * kDecodeRowTile;
}
inline int64_t decode_scratch_floats(const DecodeShape& s, int64_t heads) {
  const int64_t rows = decode_padded_rows(s.group_size() * s.rows),
                dp = decode_padded_dim(s.head_dim);
  return heads * rows * (2 * dp + 2 + 2 * kDecodeChunk);
}

struct DecodeKernels {
  void (*run_task)(const DecodeTask& task);
};
QWEN3VL_DECLARE_ISA_TABLE(DecodeKernels)

}  // namespace qwen3vl::detail
