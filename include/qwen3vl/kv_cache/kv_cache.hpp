// KvCache: a contiguous or paged KV cache for one attention layer: a KvPageTable (lengths, block
// table, block allocator) and one KvLayerStorage over it. A model of many layers shares one table
// and keeps a storage per layer instead (page_table.hpp, layer_storage.hpp). The caller owns the
// K/V storage (host or device memory).
//
// Every mutating call validates everything first and changes nothing when it fails: a typed
// Status names the argument, its value and what is allowed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/layer_storage.hpp"
#include "qwen3vl/kv_cache/page_table.hpp"

namespace qwen3vl {

struct KvCacheConfig {
  KvLayout layout = KvLayout::kPaged;
  int64_t batch = 1;  // sequences
  int64_t kv_heads = 1;
  int64_t head_dim = 128;
  // Storage: f32, f16 or bf16. The default is f16 (half the memory of f32): every cached K/V value
  // is rounded to 11 significant bits, which moves decode outputs by ~4e-4 relative against ~6e-7
  // with f32 storage (the text layer's cache test). Set kF32 for full precision.
  DType dtype = DType::kF16;
  // Compressed storage instead (kv_format.hpp: int8, int4, fp8 e4m3 with f16 scales; dtype is then
  // unused): append encodes each new row once; decode (CPU) reads the codes.
  KvFormat format = KvFormat::kFloat;
  int64_t max_len = 0;      // contiguous: tokens per sequence
  int64_t num_blocks = 0;   // paged: blocks in the pool
  int64_t block_size = 16;  // paged: tokens per block, a multiple of 16
  int64_t max_blocks = 0;   // paged: block-table columns (blocks one sequence may hold)
  bool key_bounds = false;  // paged: keep every block's elementwise min / max key (Quest)
};

// The page table a config describes (its layout, batch and block geometry).
inline KvTableConfig table_config(const KvCacheConfig& c) {
  KvTableConfig t;
  t.layout = c.layout;
  t.batch = c.batch;
  t.max_len = c.max_len;
  t.num_blocks = c.num_blocks;
  t.block_size = c.block_size;
  t.max_blocks = c.max_blocks;
  return t;
}

// The storage shape a config needs for k and v: [batch, max_len, Hkv, D] or
// [num_blocks, block_size, Hkv, D]; for a compressed format the last dimension is the bytes of a
// row's codes (kv_code_bytes: D, or D / 2 for int4).
inline std::vector<int64_t> kv_storage_shape(const KvCacheConfig& c) {
  const int64_t row = is_compressed(c.format) ? kv_code_bytes(c.format, c.head_dim) : c.head_dim;
  return c.layout == KvLayout::kPaged
             ? std::vector<int64_t>{c.num_blocks, c.block_size, c.kv_heads, row}
             : std::vector<int64_t>{c.batch, c.max_len, c.kv_heads, row};
}

// The dtype of k and v storage: config.dtype, or u8 (codes) for a compressed format.
inline DType kv_storage_dtype(const KvCacheConfig& c) {
  return is_compressed(c.format) ? DType::kU8 : c.dtype;
}

// The scale storage a compressed format needs for k and for v (empty for kFloat): f16
// [batch, max_len, Hkv, S] or [num_blocks, block_size, Hkv, S], S = kv_scale_count(format, D)
// (1 for int8 and fp8, D / 32 for int4); kv_scale_bytes is one of the two in bytes.
inline std::vector<int64_t> kv_scale_shape(const KvCacheConfig& c) {
  if (!is_compressed(c.format)) return {};
  const int64_t n = kv_scale_count(c.format, c.head_dim);
  return c.layout == KvLayout::kPaged
             ? std::vector<int64_t>{c.num_blocks, c.block_size, c.kv_heads, n}
             : std::vector<int64_t>{c.batch, c.max_len, c.kv_heads, n};
}
inline int64_t kv_scale_bytes(const KvCacheConfig& c) {
  int64_t n = is_compressed(c.format) ? 2 : 0;
  for (int64_t d : kv_scale_shape(c)) n *= d;
  return n;
}

// The key-bounds storage a config needs (key_bounds on): f32 [num_blocks, 2, Hkv, D], where
// [blk, 0] is the elementwise min and [blk, 1] the max of block blk's stored (converted) keys over
// its filled rows. A block's bounds restart on its first write, so released blocks need no
// clearing.
inline std::vector<int64_t> kv_key_bounds_shape(const KvCacheConfig& c) {
  return {c.num_blocks, 2, c.kv_heads, c.head_dim};
}

class KvCache {
 public:
  KvCache() = default;

  // Checks the config and the storage views (shape kv_storage_shape(config), dtype, device).
  // CPU storage uses cpu_kv_storage_ops() unless `ops` is given; CUDA storage needs
  // cuda_kv_storage_ops() (qwen3vl/kv_cache/cuda.hpp).
  static Status create(const KvCacheConfig& config, const TensorView& k_storage,
                       const TensorView& v_storage, KvCache* out,
                       const KvStorageOps* ops = nullptr);
  // The same, with caller-owned key-bounds storage (config.key_bounds on, paged only): f32 of
  // kv_key_bounds_shape(config), contiguous, on the storage's device. append keeps it current
  // (copy-on-write copies included); fork shares it with the blocks.
  static Status create(const KvCacheConfig& config, const TensorView& k_storage,
                       const TensorView& v_storage, const TensorView& key_bounds, KvCache* out,
                       const KvStorageOps* ops = nullptr);

  // Any format: views.k, views.v of kv_storage_shape(config) and kv_storage_dtype(config);
  // views.k_scales, views.v_scales f16 of kv_scale_shape(config) for a compressed format (absent
  // otherwise); views.key_bounds as above. fork and copy-on-write copy the scales with the codes.
  static Status create(const KvCacheConfig& config, const KvStorageViews& views, KvCache* out,
                       const KvStorageOps* ops = nullptr);

  // Appends new tokens to the end of sequences:
  //   k, v [batch, T, Hkv, D]: T tokens for every sequence, or
  //   k, v [tokens, Hkv, D] with cu_seqlens i32 [batch + 1] (host): ragged counts, 0 allowed.
  // Any float dtype (converted to the storage dtype, round to nearest even; or encoded into the
  // compressed format, kv_encode_row), any strides with the
  // last dimension contiguous, on the storage's device. `stream` is the cudaStream_t for CUDA.
  // Paged: allocates blocks as needed, and copies a shared partial last block before writing
  // into it (copy-on-write). Errors: shape mismatch, overflow (past max_len or max_blocks, no free
  // block) leave the cache unchanged.
  Status append(const TensorView& k, const TensorView& v, const TensorView& cu_seqlens = {},
                void* stream = nullptr);

  // Makes empty sequence `dst` a copy of sequence `src`. Paged: shares all of src's blocks
  // (reference counts; the partial last block is copied on the next append to either). Contiguous:
  // copies the rows.
  Status fork(int64_t src, int64_t dst, void* stream = nullptr);

  // Empties sequence `seq`, releasing its blocks.
  Status reset(int64_t seq);

  // The decode kernels' view, with host-resident seq_lens and block_table (valid until the next
  // mutating call). CUDA decode needs them on the device: see CudaKvMetadata.
  KvCacheView view() const { return storage_.view(table_); }

  // Layout, storage dtype (f16 named as the default with its cost), shape and capacity.
  std::string describe() const;

  const KvCacheConfig& config() const { return config_; }
  // Tokens sequence `seq` holds; 0 for an index outside 0..batch - 1 (no sequence there), as
  // BlockAllocator::ref_count answers for an id outside the pool.
  int64_t length(int64_t seq) const { return table_.length(seq); }
  const std::vector<int32_t>& lengths() const { return table_.lengths(); }
  // The M-RoPE position delta of sequence `seq` (transformers' rope_deltas): a token at cache
  // index n that comes without position ids takes position n + delta on every axis, so decode
  // after a prompt with images or video continues where the prompt's positions ended (delta =
  // highest position + 1 - length: negative after an image, whose tokens share positions). 0 for a
  // new or reset sequence; fork copies it. The CPU text layer records it from every call that
  // passes position ids; set it yourself where positions live in device memory.
  // 0 for an index outside [0, batch), like length().
  int32_t position_delta(int64_t seq) const { return table_.position_delta(seq); }
  Status set_position_delta(int64_t seq, int64_t delta) {
    return table_.set_position_delta(seq, delta);
  }
  // Row-major [batch, max_blocks]; -1 where no block is assigned (paged only, else empty).
  const std::vector<int32_t>& block_table() const { return table_.block_table(); }
  const BlockAllocator& allocator() const { return table_.allocator(); }
  const TensorView& k_storage() const { return storage_.k(); }
  const TensorView& v_storage() const { return storage_.v(); }
  // Per-block min / max keys (absent unless config.key_bounds): what Quest page selection reads.
  const TensorView& key_bounds() const { return storage_.key_bounds(); }
  // The codes' scales (compressed formats; absent otherwise).
  const TensorView& k_scales() const { return storage_.k_scales(); }
  const TensorView& v_scales() const { return storage_.v_scales(); }
  int64_t capacity() const { return table_.capacity(); }

  // The parts: the table (shared by every layer of a model) and this layer's storage.
  const KvPageTable& table() const { return table_; }
  KvPageTable& table() { return table_; }
  const KvLayerStorage& storage() const { return storage_; }

 private:
  KvCacheConfig config_;
  KvPageTable table_;
  KvLayerStorage storage_;
};

}  // namespace qwen3vl
