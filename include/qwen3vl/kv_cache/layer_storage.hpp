// KvLayerStorage: one attention layer's K/V (and optional per-block key bounds for Quest), laid
// out by a shared KvPageTable. The caller owns the memory (host or device); the storage moves
// token rows through the KvStorageOps of its device when it applies a table's append step.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "qwen3vl/kv_cache/page_table.hpp"

namespace qwen3vl {

// One layer's caller-owned views: k, v (float storage, or the u8 codes of a compressed format),
// the codes' f16 scales (compressed formats only: kv_format.hpp) and the optional key bounds.
struct KvStorageViews {
  TensorView k, v;
  TensorView k_scales, v_scales;
  TensorView key_bounds;
};

// A compressed layer's storage as the ops write it.
struct KvCodedStorage {
  KvFormat format = KvFormat::kInt8;
  TensorView k, v, k_scales, v_scales;
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
  Status (*fold_key_bounds)(const TensorView& bounds, const TensorView& k_storage,
                            const KvRun* runs, int64_t count, void* stream);
  // The table's device copy that decode on this device reads (null: decode reads host memory).
  Status (*make_mirror)(const KvTableConfig& config, int device_index,
                        std::unique_ptr<KvTableMirror>* out) = nullptr;
  // Compressed formats (null: this device stores none). write_coded encodes float source rows into
  // dst's codes and scales (kv_encode_row), or copies codes and scales where src_k / src_v are
  // dst.k / dst.v themselves (copy-on-write, contiguous fork). fold_coded_key_bounds is
  // fold_key_bounds over the dequantized keys.
  Status (*write_coded)(const KvCodedStorage& dst, const TensorView& src_k, const TensorView& src_v,
                        const KvRun* runs, int64_t count, void* stream) = nullptr;
  Status (*fold_coded_key_bounds)(const TensorView& bounds, const KvCodedStorage& storage,
                                  const KvRun* runs, int64_t count, void* stream) = nullptr;
};

// Host-memory storage ops (always built).
const KvStorageOps& cpu_kv_storage_ops();

class KvLayerStorage {
 public:
  KvLayerStorage() = default;

  // k, v: [batch, max_len, Hkv, D] (contiguous table) or [num_blocks, block_size, Hkv, D] (paged),
  // f32/f16/bf16, last dimension contiguous, disjoint. key_bounds (paged only, optional): f32
  // [num_blocks, 2, Hkv, D] contiguous on the same device. CPU storage uses cpu_kv_storage_ops()
  // unless `ops` is given. Storage on a device whose ops keep a mirror attaches one to the table
  // when it has none (CUDA: CudaKvMetadata).
  static Status create(KvPageTable* table, const TensorView& k, const TensorView& v,
                       const TensorView& key_bounds, KvLayerStorage* out,
                       const KvStorageOps* ops = nullptr);
  // Any format: float storage as above, or a compressed one: k, v u8 [.., Hkv,
  // kv_code_bytes(format, D)] and k_scales, v_scales f16 [.., Hkv, kv_scale_count(format, D)]
  // (the same leading dimensions), all disjoint, on one device whose ops write the format.
  static Status create(KvPageTable* table, KvFormat format, const KvStorageViews& views,
                       KvLayerStorage* out, const KvStorageOps* ops = nullptr);

  // The source checks apply() makes: k, v [batch, rows, Hkv, D] or ragged [rows, Hkv, D], any
  // float dtype, on the storage's device, last dimension contiguous.
  Status check_source(const TensorView& k, const TensorView& v, bool ragged) const;
  // Writes the table's open step into this layer: copy-on-write copies, then the new rows from
  // k, v (shaped as the step says), keeping key bounds current. The table is not changed.
  Status apply(const KvPageTable& table, const TensorView& k, const TensorView& v,
               void* stream = nullptr) const;
  // Row copies inside the storage (a contiguous fork's run).
  Status copy(const std::vector<KvRun>& runs, void* stream = nullptr) const;

  // Decode's view of this layer: the table's visible lengths and block table (host memory).
  KvCacheView view(const KvPageTable& table) const;
  // The same with seq_lens and block_table on the storage's device: the table's mirror for
  // device storage (call table.sync_mirror(stream) first, once per step), host views on the CPU.
  KvCacheView device_view(const KvPageTable& table) const;

  bool created() const { return ops_ != nullptr; }
  const KvTableConfig& table_config() const { return config_; }
  const TensorView& k() const { return k_; }
  const TensorView& v() const { return v_; }
  const TensorView& key_bounds() const { return bounds_; }
  KvFormat format() const { return format_; }
  const TensorView& k_scales() const { return k_scales_; }
  const TensorView& v_scales() const { return v_scales_; }
  const KvStorageOps* ops() const { return ops_; }
  int64_t kv_heads() const { return k_.shape[2]; }
  int64_t head_dim() const { return format_ == KvFormat::kInt4 ? 2 * k_.shape[3] : k_.shape[3]; }

 private:
  Status run(const std::vector<KvRun>& runs, const TensorView& src_k, const TensorView& src_v,
             void* stream) const;

  KvTableConfig config_;
  TensorView k_, v_, bounds_;
  KvFormat format_ = KvFormat::kFloat;
  TensorView k_scales_, v_scales_;
  const KvStorageOps* ops_ = nullptr;
};

}  // namespace qwen3vl
