// KvCache: a contiguous or paged KV cache for one attention layer. The caller owns the K/V
// storage (host or device memory); the cache keeps the host-side metadata (lengths, block table,
// block allocator) and moves token rows through a KvStorageOps of the storage's device.
//
// Every mutating call validates everything first and changes nothing when it fails: a typed
// Status names the argument, its value and what is allowed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/block_allocator.hpp"
#include "qwen3vl/kv_cache/kv_cache_view.hpp"

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
  int64_t max_len = 0;        // contiguous: tokens per sequence
  int64_t num_blocks = 0;     // paged: blocks in the pool
  int64_t block_size = 16;    // paged: tokens per block, a multiple of 16
  int64_t max_blocks = 0;     // paged: block-table columns (blocks one sequence may hold)
  bool key_bounds = false;    // paged: keep every block's elementwise min / max key (Quest)
};

// The storage shape a config needs for k and v: [batch, max_len, Hkv, D] or
// [num_blocks, block_size, Hkv, D].
inline std::vector<int64_t> kv_storage_shape(const KvCacheConfig& c) {
  return c.layout == KvLayout::kPaged
             ? std::vector<int64_t>{c.num_blocks, c.block_size, c.kv_heads, c.head_dim}
             : std::vector<int64_t>{c.batch, c.max_len, c.kv_heads, c.head_dim};
}

// The key-bounds storage a config needs (key_bounds on): f32 [num_blocks, 2, Hkv, D], where
// [blk, 0] is the elementwise min and [blk, 1] the max of block blk's stored (converted) keys over
// its filled rows. A block's bounds restart on its first write, so released blocks need no clearing.
inline std::vector<int64_t> kv_key_bounds_shape(const KvCacheConfig& c) {
  return {c.num_blocks, 2, c.kv_heads, c.head_dim};
}

// One run of token rows to copy: `count` rows from source (src_major, src_minor + i) to storage
// (dst_major, dst_minor + i), all heads of each row. Sources are rank-4 [major, minor, Hkv, D].
struct KvRun {
  int64_t src_major, src_minor, dst_major, dst_minor, count;
};

// Data movement on one storage device. `write` converts dtypes (source any float dtype) and is
// also used for copies inside the storage (copy-on-write, contiguous fork): then src_k/src_v are
// the storage views themselves, and source and destination rows never overlap.
struct KvStorageOps {
  Device device;
  Status (*write)(const TensorView& dst_k, const TensorView& dst_v, const TensorView& src_k,
                  const TensorView& src_v, const KvRun* runs, int64_t count, void* stream);
  // Folds the stored keys of each run's destination rows into bounds[dst_major] (see
  // kv_key_bounds_shape), restarting from them where dst_minor == 0. Null: no key bounds.
  Status (*fold_key_bounds)(const TensorView& bounds, const TensorView& k_storage, const KvRun* runs,
                            int64_t count, void* stream);
};

// Host-memory storage ops (always built).
const KvStorageOps& cpu_kv_storage_ops();

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

  // Appends new tokens to the end of sequences:
  //   k, v [batch, T, Hkv, D]: T tokens for every sequence, or
  //   k, v [tokens, Hkv, D] with cu_seqlens i32 [batch + 1] (host): ragged counts, 0 allowed.
  // Any float dtype (converted to the storage dtype, round to nearest even), any strides with the
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
  KvCacheView view() const {
    KvCacheView view;
    view.layout = config_.layout;
    view.k = k_;
    view.v = v_;
    auto* lens = const_cast<int32_t*>(lengths_.data());  // views are non-const; kernels only read
    view.seq_lens = TensorView::contiguous(lens, DType::kI32, {config_.batch});
    if (config_.layout == KvLayout::kPaged)
      view.block_table = TensorView::contiguous(const_cast<int32_t*>(table_.data()), DType::kI32,
                                                {config_.batch, config_.max_blocks});
    for (int32_t len : lengths_) view.max_seq_len = len > view.max_seq_len ? len : view.max_seq_len;
    return view;
  }

  // Layout, storage dtype (f16 named as the default with its cost), shape and capacity.
  std::string describe() const;

  const KvCacheConfig& config() const { return config_; }
  // Tokens sequence `seq` holds; 0 for an index outside 0..batch - 1 (no sequence there), as
  // BlockAllocator::ref_count answers for an id outside the pool.
  int64_t length(int64_t seq) const {
    return seq >= 0 && seq < static_cast<int64_t>(lengths_.size()) ? lengths_[static_cast<size_t>(seq)]
                                                                    : 0;
  }
  const std::vector<int32_t>& lengths() const { return lengths_; }
  // The M-RoPE position delta of sequence `seq` (transformers' rope_deltas): a token at cache
  // index n that comes without position ids takes position n + delta on every axis, so decode
  // after a prompt with images or video continues where the prompt's positions ended (delta =
  // highest position + 1 - length: negative after an image, whose tokens share positions). 0 for a
  // new or reset sequence; fork copies it. The CPU text layer records it from every call that
  // passes position ids; set it yourself where positions live in device memory.
  // 0 for an index outside [0, batch), like length().
  int32_t position_delta(int64_t seq) const {
    return seq >= 0 && seq < static_cast<int64_t>(deltas_.size()) ? deltas_[static_cast<size_t>(seq)]
                                                                   : 0;
  }
  Status set_position_delta(int64_t seq, int64_t delta);
  // Row-major [batch, max_blocks]; -1 where no block is assigned (paged only, else empty).
  const std::vector<int32_t>& block_table() const { return table_; }
  const BlockAllocator& allocator() const { return allocator_; }
  const TensorView& k_storage() const { return k_; }
  const TensorView& v_storage() const { return v_; }
  // Per-block min / max keys (absent unless config.key_bounds): what Quest page selection reads.
  const TensorView& key_bounds() const { return bounds_; }
  int64_t capacity() const {
    return config_.layout == KvLayout::kPaged ? config_.max_blocks * config_.block_size
                                              : config_.max_len;
  }

 private:
  int32_t& table_at(int64_t b, int64_t i) {
    return table_[static_cast<size_t>(b * config_.max_blocks + i)];
  }
  Status check_seq(int64_t seq, const char* name) const;
  Status write_runs(const TensorView& src_k, const TensorView& src_v, void* stream);
  Status fold_bounds(void* stream);  // the key bounds of runs_' destination rows

  KvCacheConfig config_;
  TensorView k_, v_;
  TensorView bounds_;  // present when config_.key_bounds
  const KvStorageOps* ops_ = nullptr;
  std::vector<int32_t> lengths_;
  std::vector<int32_t> deltas_;  // per sequence: see position_delta()
  std::vector<int32_t> table_;
  BlockAllocator allocator_;
  std::vector<KvRun> runs_;  // scratch reused across appends
};

}  // namespace qwen3vl
