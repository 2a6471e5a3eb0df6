// KV caches and decode attention on CUDA (target qwen3vl::attention_cuda, built when the library
// has its CUDA backend). Declarations only: no CUDA header is needed to include this file.
//
//   KvCache::create(config, k_dev, v_dev, &cache, &cuda_kv_storage_ops());  // storage on the GPU
//   cache.append(k_new_dev, v_new_dev, cu_seqlens_host, stream);            // runs on `stream`
//   cache.table().sync_mirror(stream);                                       // lengths + table
//   decode->forward(DecodeParams{q_dev, cache.storage().device_view(cache.table()), out_dev},
//                   workspace, stream);
#pragma once

#include <cstdint>
#include <memory>

#include "qwen3vl/cuda/options.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"

namespace qwen3vl {

// Token-row movement for KV storage in device memory: one kernel per batch of runs, converting
// dtypes, launched on the stream passed to KvCache::append / fork.
const KvStorageOps& cuda_kv_storage_ops();

// The device copy of a KvPageTable's lengths and block table, which CUDA decode reads: one
// device allocation [lengths | block table], staged through pinned host memory (cudaHostAlloc,
// two slots used in turn) and uploaded with one asynchronous copy on `stream`. The call returns
// once the data is staged, so the table may change right after; a slot is reused only after its
// previous copy finished (an event, normally long done). Decode must run on the upload's stream
// (or after it). cuda_kv_storage_ops() attaches one to a table when the first CUDA layer storage
// is created over it; the text layer syncs it once per step (sync() uploads only when the table's
// version changed), and every layer's decode reads it.
class CudaKvMetadata final : public KvTableMirror {
 public:
  CudaKvMetadata() = default;
  CudaKvMetadata(const CudaKvMetadata&) = delete;
  CudaKvMetadata& operator=(const CudaKvMetadata&) = delete;
  CudaKvMetadata(CudaKvMetadata&& other) noexcept;
  CudaKvMetadata& operator=(CudaKvMetadata&& other) noexcept;
  ~CudaKvMetadata() override;

  // Room for a table (or a cache) of `config` on CUDA device `device` (cudaMalloc, cudaHostAlloc
  // and two events, here and nowhere else).
  static Status create(const KvTableConfig& config, int device, CudaKvMetadata* out);
  static Status create(const KvCacheConfig& config, int device, CudaKvMetadata* out);

  // Uploads the table's visible lengths (an open step's) and block table now.
  Status upload(const KvPageTable& table, void* stream = nullptr);
  Status upload(const KvCache& cache, void* stream = nullptr) {
    return upload(cache.table(), stream);
  }
  // upload() unless the device copy already holds the table's version.
  Status sync(const KvPageTable& table, void* stream) override;
  // `view` (of a table of this config) with seq_lens and block_table pointing at the device copies.
  KvCacheView device_view(KvCacheView view) const override;
  KvCacheView view(const KvCache& cache) const { return device_view(cache.view()); }
  // Host-to-device copies made so far: one per upload.
  uint64_t uploads() const override { return uploads_; }

 private:
  static constexpr int kSlots = 2;
  void release();

  int32_t* device_data_ = nullptr;  // [batch] lengths, then [batch, max_blocks] block table
  int32_t* staging_ = nullptr;      // pinned: kSlots x the same
  void* events_[kSlots] = {nullptr, nullptr};  // cudaEvent_t: each slot's last copy
  bool recorded_[kSlots] = {false, false};
  int next_slot_ = 0;
  int64_t batch_ = 0, max_blocks_ = 0;
  int device_ = 0;
  uint64_t version_ = 0;  // the table version the device copy holds (0: none)
  uint64_t uploads_ = 0;
};

// A CudaKvMetadata for `table` on CUDA device `device`, attached as its mirror (by hand; CUDA
// layer storage attaches one itself).
Status attach_cuda_mirror(KvPageTable* table, int device);

// CUDA decode: one thread block per (key split, KV head, tile of 4 packed query rows, sequence);
// lanes of a warp split each K/V row, fp32 arithmetic on any storage dtype (runs on sm_61 and up),
// splits merged by a second kernel with merge_states' arithmetic. The cache's seq_lens and
// block_table must be device memory (CudaKvMetadata); kv.max_seq_len bounds the split count.
// Plans are made from shapes (device tags); run() queries where the data lives.
// Block ids outside the pool are treated as masked keys (never read), since device-resident
// tables cannot be checked on the host without a sync.
Status create_decode_cuda(const CudaOptions& options, std::unique_ptr<DecodeAttention>* out);

}  // namespace qwen3vl
