// KvLayerStorage: one attention layer's K/V (and optional per-block key bounds for Quest), laid
// out by a shared KvPageTable. The caller owns the memory (host or device); the storage moves
// token rows through the KvStorageOps of its device when it applies a table's append step.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "qwen3vl/kv_cache/page_table.hpp"

namespace qwen3vl {

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
  const KvStorageOps* ops() const { return ops_; }
  int64_t kv_heads() const { return k_.shape[2]; }
  int64_t head_dim() const { return k_.shape[3]; }

 private:
  Status run(const std::vector<KvRun>& runs, const TensorView& src_k, const TensorView& src_v,
             void* stream) const;

  KvTableConfig config_;
  TensorView k_, v_, bounds_;
  const KvStorageOps* ops_ = nullptr;
};

}  // namespace qwen3vl
