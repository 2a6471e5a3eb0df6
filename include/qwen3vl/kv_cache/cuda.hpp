// KV caches and decode attention on CUDA (target qwen3vl::attention_cuda, built when the library
// has its CUDA backend). Declarations only: no CUDA header is needed to include this file.
//
//   KvCache::create(config, k_dev, v_dev, &cache, &cuda_kv_storage_ops());  // storage on the GPU
//   cache.append(k_new_dev, v_new_dev, cu_seqlens_host, stream);            // runs on `stream`
//   metadata.upload(cache, stream);                                          // lengths + table
//   decode->forward(DecodeParams{q_dev, metadata.view(cache), out_dev}, workspace, stream);
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

// Device copies of a cache's sequence lengths and block table, which CUDA decode reads. upload()
// copies from the cache's host vectors on `stream` (pageable memory: the call returns once the
// data is staged, so the cache may change right after).
class CudaKvMetadata {
 public:
  CudaKvMetadata() = default;
  CudaKvMetadata(const CudaKvMetadata&) = delete;
  CudaKvMetadata& operator=(const CudaKvMetadata&) = delete;
  CudaKvMetadata(CudaKvMetadata&& other) noexcept;
  CudaKvMetadata& operator=(CudaKvMetadata&& other) noexcept;
  ~CudaKvMetadata();

  // Room for a cache of `config` on CUDA device `device` (cudaMalloc, here and nowhere else).
  static Status create(const KvCacheConfig& config, int device, CudaKvMetadata* out);
  Status upload(const KvCache& cache, void* stream = nullptr);
  // cache.view() with seq_lens and block_table pointing at the device copies.
  KvCacheView view(const KvCache& cache) const;

 private:
  int32_t* lens_ = nullptr;
  int32_t* table_ = nullptr;
  int64_t batch_ = 0, max_blocks_ = 0;
  int device_ = 0;
};

// CUDA decode: one thread block per (key split, KV head, tile of 4 packed query rows, sequence);
// lanes of a warp split each K/V row, fp32 arithmetic on any storage dtype (runs on sm_61 and up),
// splits merged by a second kernel with merge_states' arithmetic. The cache's seq_lens and
// block_table must be device memory (CudaKvMetadata); kv.max_seq_len bounds the split count.
// Block ids outside the pool are treated as masked keys (never read), since device-resident
// tables cannot be checked on the host without a sync.
Status create_decode_cuda(const CudaOptions& options, std::unique_ptr<DecodeAttention>* out);

}  // namespace qwen3vl
