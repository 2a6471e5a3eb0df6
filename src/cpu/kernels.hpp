// The attention kernels' per-ISA tables (standard, flash2, vector math). Each ISA's kernels are
// compiled in their own generated translation units, with their own flags and namespace
// (qwen3vl::detail::cpu::<isa>); isa_table<T>(isa) (isa_table.hpp) is the only way to reach them.
#pragma once

#include <cstdint>

#include "isa_table.hpp"
#include "qwen3vl/core/params.hpp"
#include "qwen3vl/cpu/isa.hpp"
#include "qwen3vl/kv_cache/kv_cache_view.hpp"

namespace qwen3vl::detail {

// One (sequence, query head) of standard attention.
struct StandardHeadTask {
  const AttentionParams* params;
  AttentionShape shape;
  int64_t b;          // sequence
  int64_t h;          // query head
  SequenceSpan span;  // rows and valid keys of sequence b
  int64_t k_total;    // keys in the sequence including padding (weights row length)
  void* scratch;      // standard_scratch_floats(max_q, max_k, D) floats, 64-byte aligned
};

inline int64_t standard_scratch_floats(int64_t max_q, int64_t max_k, int64_t d) {
  return (max_q + 2 * max_k) * d + max_q * max_k;
}

// FlashAttention-2 tiles for one problem, chosen by the ISA (its register blocks fix the padding)
// for a per-core cache of cache_bytes (the L2; 0 if unknown).
struct Flash2Plan {
  int64_t block_q = 0;       // query positions per task; tile rows = group size x block_q
  int64_t block_k = 0;       // keys per K/V block
  size_t scratch_bytes = 0;  // per-thread scratch of flash2_tile (64-byte aligned base)
  int register_keys = 0;     // micro-kernel shape, for describe(): keys/columns x query rows
  int register_rows = 0;
};

struct Flash2GatheredRows;  // src/flash/gathered_rows.hpp

// One flash2 task: query rows [q_begin, q_end) of sequence b, for query heads [head, head + heads)
// of kv_head (never crossing a row block of the block-sparse layout).
struct Flash2Task {
  const AttentionParams* params;
  AttentionShape shape;
  Flash2Plan plan;
  int64_t b;
  int64_t kv_head;
  int64_t head;   // first query head: kv_head x group, or a gathered run's first head
  int64_t heads;  // query heads per row position: the group, or a gathered run's length
  // Null: the problem's rows. Otherwise the heads' gathered rows, and q_begin, q_end index the
  // run's gathered rows (not the sequence's; see gathered_rows.hpp).
  const Flash2GatheredRows* gathered;
  SequenceSpan span;
  int64_t q_begin, q_end;
  const KeyRange* rows;  // visible keys of rows q_begin..q_end-1 (begin and end non-decreasing)
  // The keys to walk: ascending, disjoint intervals inside the hull of `rows` (one for dense
  // attention, a block-sparse layout's listed column runs otherwise; see key_intervals.hpp).
  const KeyRange* intervals;
  int64_t interval_count;
  void* scratch;  // plan.scratch_bytes, 64-byte aligned
  // Non-null (append attention): K/V come from this cache, in its dtype; key j is token j of
  // cache sequence b (params k and v are not read).
  const KvCacheView* cache = nullptr;
  // Non-null: the rows' fp32 partial results instead of params.out / lse, for a later merge: o of
  // packed row i (span.q_start + i), head h at partial_o[(i * Hq + h) * D], its LSE (natural log,
  // -inf when the row saw no key) at partial_lse[i * Hq + h].
  float* partial_o = nullptr;
  float* partial_lse = nullptr;
};

// Element-wise vector math of an ISA build, exposed for its accuracy test.
enum class VectorOp : uint8_t { kExp, kExp2, kTanh };

struct StandardKernels {
  void (*head)(const StandardHeadTask& task);
};
struct Flash2Kernels {
  void (*plan)(const AttentionShape& shape, int64_t cache_bytes, Flash2Plan* plan);
  void (*tile)(const Flash2Task& task);
};
struct VectorMathKernels {
  void (*apply)(VectorOp op, const float* x, float* y, int64_t n);
};
QWEN3VL_DECLARE_ISA_TABLE(StandardKernels)
QWEN3VL_DECLARE_ISA_TABLE(Flash2Kernels)
QWEN3VL_DECLARE_ISA_TABLE(VectorMathKernels)

}  // namespace qwen3vl::detail
