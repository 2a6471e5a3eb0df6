// KvCacheView: what a decode kernel reads from a KV cache, and the two indexers that turn
// (sequence, token) into a storage row. Contiguous and paged caches share every kernel: only the
// indexer differs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "qwen3vl/core/macros.hpp"
#include "qwen3vl/core/params.hpp"
#include "qwen3vl/kv_cache/kv_format.hpp"

namespace qwen3vl {

enum class KvLayout : uint8_t {
  kContiguous,  // k, v [batch, max_len, Hkv, D]: token j of sequence b is k[b, j]
  kPaged,       // k, v [num_blocks, block_size, Hkv, D]: token j of sequence b is
                // k[block_table[b, j / block_size], j % block_size]
};

inline const char* to_string(KvLayout l) { return l == KvLayout::kPaged ? "paged" : "contiguous"; }

// Any layout through strides (last dimension contiguous). seq_lens and block_table are i32 and
// live where the kernel reads them: host memory for the CPU, device memory for CUDA.
// Per-KV-head pages: with seq_lens [batch, Hkv] (and, paged, block_table [batch, Hkv, max_blocks])
// each KV head reads its own tokens, as a page-selecting decode does (Quest keeps different pages
// per head): one decode call instead of one per head.
// Compressed formats (kv_format.hpp): k, v hold u8 codes [.., Hkv, kv_code_bytes(format, D)] and
// k_scales, v_scales their f16 scales [.., Hkv, kv_scale_count(format, D)] (same first three
// dimensions); head_dim() is D.
struct KvCacheView {
  KvLayout layout = KvLayout::kContiguous;
  TensorView k, v;
  KvFormat format = KvFormat::kFloat;
  TensorView k_scales, v_scales;  // compressed formats only
  TensorView seq_lens;  // i32 [batch] (or [batch, Hkv]): valid tokens per sequence (and head)
  TensorView
      block_table;  // i32 [batch, max_blocks] (or [batch, Hkv, max_blocks] with per-head
                    // seq_lens): paged only; entries past a sequence's last block are never read
  int64_t max_seq_len = 0;  // host-side bound on seq_lens; sizes split-KV work (0: the capacity)

  int64_t batch() const { return seq_lens.shape[0]; }
  int64_t kv_heads() const { return k.shape[2]; }
  int64_t head_dim() const { return format == KvFormat::kInt4 ? 2 * k.shape[3] : k.shape[3]; }
  int64_t block_size() const { return layout == KvLayout::kPaged ? k.shape[1] : 0; }
  bool per_head() const { return seq_lens.rank == 2; }
  // block_table's strides over sequences, KV heads (0: one table for all) and blocks.
  int64_t table_stride() const { return block_table.stride[0]; }
  int64_t table_head_stride() const { return block_table.rank == 3 ? block_table.stride[1] : 0; }
  int64_t table_col_stride() const { return block_table.stride[block_table.rank - 1]; }
  int64_t lens_head_stride() const { return per_head() ? seq_lens.stride[1] : 0; }
  // The most tokens one sequence can hold.
  int64_t capacity() const {
    return layout == KvLayout::kPaged ? block_table.shape[block_table.rank - 1] * k.shape[1]
                                      : k.shape[1];
  }
  int64_t length_bound() const { return max_seq_len > 0 ? max_seq_len : capacity(); }
  // Host-resident seq_lens only: the tokens KV head h of sequence b sees; 0 for (b, h) outside
  // [0, batch) x [0, Hkv) (h is ignored without per-head lengths) or when seq_lens is absent.
  int64_t seq_len(int64_t b, int64_t h) const {
    if (!seq_lens.present() || seq_lens.data == nullptr || b < 0 || b >= batch() ||
        (per_head() && (h < 0 || h >= seq_lens.shape[1])))
      return 0;
    return seq_lens
        .ptr<const int32_t>()[b * seq_lens.stride[0] + (per_head() ? h * lens_head_stride() : 0)];
  }
};

// `kv` reading per-KV-head pages kept head-major, as Quest's selection writes them: `table` i32
// [Hkv][batch][pages] and `lens` i32 [Hkv][batch], on the cache's device, become block_table
// [batch, Hkv, pages] and seq_lens [batch, Hkv] through strides; max_seq_len is capped at what
// `pages` pages hold.
inline KvCacheView with_head_major_pages(KvCacheView kv, int32_t* table, int32_t* lens,
                                         int64_t pages) {
  const int64_t batch = kv.batch(), heads = kv.kv_heads();
  kv.block_table = TensorView::strided(table, DType::kI32, {batch, heads, pages},
                                       {pages, batch * pages, 1}, kv.k.device);
  kv.seq_lens = TensorView::strided(lens, DType::kI32, {batch, heads}, {1, batch}, kv.k.device);
  kv.block_table.device_index = kv.seq_lens.device_index = kv.k.device_index;
  kv.max_seq_len = std::min(kv.length_bound(), pages * kv.block_size());
  return kv;
}

namespace detail {

// Where token j of sequence b lives: storage index (major, minor) = (k.shape[0] index, k.shape[1]
// index). `run` is how many tokens from j on stay in the same major index (contiguous rows).
struct KvSlot {
  int64_t major;
  int64_t minor;
};

struct ContiguousIndexer {
  QWEN3VL_HOST_DEVICE KvSlot slot(int64_t b, int64_t j) const { return KvSlot{b, j}; }
  QWEN3VL_HOST_DEVICE int64_t run(int64_t /*j*/, int64_t limit) const { return limit; }
};

struct PagedIndexer {
  const int32_t* table;  // block_table data
  int64_t table_stride;  // block_table.stride[0]
  int64_t table_col_stride;
  int64_t block_size;
  int64_t table_head_stride = 0;  // per-KV-head tables (0: one table for every head)
  QWEN3VL_HOST_DEVICE KvSlot slot(int64_t b, int64_t j, int64_t h = 0) const {
    const int64_t blk = j / block_size;
    return KvSlot{table[b * table_stride + h * table_head_stride + blk * table_col_stride],
                  j - blk * block_size};
  }
  QWEN3VL_HOST_DEVICE int64_t run(int64_t j, int64_t limit) const {
    const int64_t left = block_size - j % block_size;
    return left < limit ? left : limit;
  }
};

inline PagedIndexer paged_indexer(const KvCacheView& kv) {
  return PagedIndexer{kv.block_table.ptr<const int32_t>(), kv.table_stride(), kv.table_col_stride(),
                      kv.block_size(), kv.table_head_stride()};
}

}  // namespace detail

namespace detail {
inline Status check_kv_values(const KvCacheView& kv);
}  // namespace detail

// Shapes, dtypes and devices of a view; where seq_lens / block_table are host-resident also their
// values (every length within the capacity and max_seq_len, every block id a sequence uses within
// the pool), so that no kernel reads out of bounds.
// need_data = false (DecodeAttention::plan): k and v may have null data; host seq_lens and
// block_table are read when their data is there.
inline Status validate(const KvCacheView& kv, bool need_data = true) {
  using detail::check_dims;
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(kv.k, "kv.k", need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(kv.v, "kv.v", need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(kv.seq_lens, "kv.seq_lens", need_data));
  if (kv.k.rank != 4)
    return make_error(StatusCode::kShapeMismatch, "kv.k.rank = ", kv.k.rank, " (shape ",
                      kv.k.shape_string(), "): expected 4 (",
                      kv.layout == KvLayout::kPaged ? "[num_blocks, block_size, Hkv, D])"
                                                    : "[batch, max_len, Hkv, D])");
  QWEN3VL_RETURN_IF_ERROR(
      check_dims(kv.v, "kv.v", 4, {kv.k.shape[0], kv.k.shape[1], kv.k.shape[2], kv.k.shape[3]}));
  QWEN3VL_RETURN_IF_ERROR(check_kv_format(kv.format, kv.head_dim(), "kv.format"));
  const bool coded = is_compressed(kv.format);
  for (const TensorView* t : {&kv.k, &kv.v}) {
    const char* name = t == &kv.k ? "kv.k" : "kv.v";
    if (coded ? t->dtype != DType::kU8 : !is_floating(t->dtype))
      return make_error(
          StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t->dtype),
          coded ? ": must be u8 (the codes of kv.format = " : ": allowed f32, f16, bf16",
          coded ? to_string(kv.format) : "", coded ? ")" : "");
    QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(*t, name));
  }
  for (const TensorView* t : {&kv.k_scales, &kv.v_scales}) {
    const char* name = t == &kv.k_scales ? "kv.k_scales" : "kv.v_scales";
    if (!coded) {
      if (t->present())
        return make_error(StatusCode::kInvalidArgument, name, " = ", t->shape_string(),
                          ": given with kv.format = float (scales belong to compressed formats)");
      continue;
    }
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(*t, name, need_data));
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(
        *t, name, 4,
        {kv.k.shape[0], kv.k.shape[1], kv.k.shape[2], kv_scale_count(kv.format, kv.head_dim())}));
    if (t->dtype != DType::kF16 || t->device != kv.k.device || t->device_index != kv.k.device_index)
      return make_error(StatusCode::kInvalidArgument, name, " = ", to_string(t->dtype), " on ",
                        to_string(t->device), ":", t->device_index,
                        ": must be f16 on kv.k's device");
    QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(*t, name));
  }
  if (kv.v.dtype != kv.k.dtype || kv.v.device != kv.k.device)
    return make_error(StatusCode::kInvalidArgument, "kv.v = ", to_string(kv.v.dtype), " on ",
                      to_string(kv.v.device), ": must match kv.k (", to_string(kv.k.dtype), " on ",
                      to_string(kv.k.device), ")");
  if (kv.k.shape[2] < 1 || kv.k.shape[3] < 1 || kv.head_dim() > 256)
    return make_error(StatusCode::kInvalidArgument, "kv.k.shape = ", kv.k.shape_string(),
                      ": needs Hkv >= 1 and head_dim 1..256");
  if (kv.seq_lens.dtype != DType::kI32 || kv.seq_lens.rank < 1 || kv.seq_lens.rank > 2 ||
      (kv.seq_lens.rank == 2 && kv.seq_lens.shape[1] != kv.k.shape[2]))
    return make_error(StatusCode::kInvalidArgument, "kv.seq_lens = ", to_string(kv.seq_lens.dtype),
                      " ", kv.seq_lens.shape_string(),
                      ": must be i32 [batch] or [batch, Hkv = ", kv.k.shape[2], "]");
  const int64_t batch = kv.seq_lens.shape[0];
  if (kv.layout == KvLayout::kPaged) {
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(kv.block_table, "kv.block_table"));
    const bool shared = kv.block_table.rank == 2;
    if (kv.block_table.dtype != DType::kI32 || kv.block_table.shape[0] != batch ||
        (!shared &&
         (kv.block_table.rank != 3 || kv.block_table.shape[1] != kv.k.shape[2] || !kv.per_head())))
      return make_error(StatusCode::kShapeMismatch,
                        "kv.block_table = ", to_string(kv.block_table.dtype), " ",
                        kv.block_table.shape_string(), ": must be i32 [batch = ", batch,
                        ", max_blocks], or [batch, Hkv = ", kv.k.shape[2],
                        ", max_blocks] with per-head seq_lens [batch, Hkv]");
    if (kv.k.shape[1] < 16 || kv.k.shape[1] % 16 != 0)
      return make_error(StatusCode::kInvalidArgument,
                        "block_size (kv.k.shape[1]) = ", kv.k.shape[1],
                        ": must be a positive multiple of 16");
    if (kv.block_table.device != kv.seq_lens.device)
      return make_error(StatusCode::kInvalidArgument,
                        "kv.block_table.device = ", to_string(kv.block_table.device),
                        ": must equal kv.seq_lens.device");
  } else if (kv.k.shape[0] != batch) {
    return make_error(StatusCode::kShapeMismatch, "kv.k.shape[0] = ", kv.k.shape[0],
                      ": a contiguous cache needs one row of storage per sequence (batch = ", batch,
                      ")");
  }
  if (kv.max_seq_len < 0 || kv.max_seq_len > kv.capacity())
    return make_error(StatusCode::kInvalidArgument, "kv.max_seq_len = ", kv.max_seq_len,
                      ": allowed 0 (the capacity) .. ", kv.capacity());
  return detail::check_kv_values(kv);
}

namespace detail {

// The values of host-resident seq_lens and block_table (device ones are checked where they live):
// every length within the capacity and max_seq_len, every block id a sequence uses within the
// pool. What decode's run() checks again on every call, since the values change between steps.
inline Status check_kv_values(const KvCacheView& kv) {
  if (kv.seq_lens.device != Device::kCPU || kv.seq_lens.data == nullptr) return Status();
  const int64_t batch = kv.seq_lens.shape[0];
  const detail::PagedIndexer paged =
      kv.layout == KvLayout::kPaged ? detail::paged_indexer(kv) : detail::PagedIndexer{};
  const int64_t heads = kv.per_head() ? kv.kv_heads() : 1;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      // The index text only for an error: run() checks every call.
      const auto at = [&] {
        return kv.per_head() ? detail::concat(b, ", ", h) : detail::concat(b);
      };
      const int64_t len = kv.seq_len(b, h);
      if (len < 0 || len > kv.length_bound())
        return make_error(StatusCode::kInvalidArgument, "kv.seq_lens[", at(), "] = ", len,
                          ": allowed 0..", kv.length_bound(),
                          kv.max_seq_len > 0 ? " (max_seq_len)" : " (the capacity)");
      if (kv.layout != KvLayout::kPaged) continue;
      for (int64_t j = 0; j < len; j += kv.block_size()) {
        const int64_t block = paged.slot(b, j, h).major;
        if (block < 0 || block >= kv.k.shape[0])
          return make_error(StatusCode::kInvalidArgument, "kv.block_table[", at(), ", ",
                            j / kv.block_size(), "] = ", block, ": allowed 0..", kv.k.shape[0] - 1,
                            " (num_blocks)");
      }
    }
  return Status();
}

}  // namespace detail

}  // namespace qwen3vl
