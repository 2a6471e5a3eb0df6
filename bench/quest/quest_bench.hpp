// The Quest benchmark's shared pieces: a host cache (paged, with key bounds) filled with random or
// structured keys, queries, and the CUDA runner (quest_bench_cuda.cpp, when built).
#pragma once

#include <cstdint>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/kv_cache/quest.hpp"

namespace qwen3vl::bench {

struct QuestShape {
  int64_t heads = 32, kv_heads = 8, head_dim = 128, block_size = 16;
  int64_t kv_len = 16384;
  DType dtype = DType::kF16;
  bool structured = true;  // topic segments (see HostQuestCache) rather than i.i.d. uniform keys
  bool grouped = false;    // structured, with one topic per KV group instead of per query head
};

struct HostQuestCache {
  QuestShape shape;
  KvCacheConfig config;
  Tensor k, v, bounds, q, out, lse;
  KvCache cache;
  explicit HostQuestCache(const QuestShape& s);
  QuestParams params();
};

struct CudaTimes {
  double dense_ms = 0, quest_ms = 0;              // launched one call at a time
  double dense_graph_ms = 0, quest_graph_ms = 0;  // the same call replayed as a CUDA graph
  bool same_selection = false;                    // the device kept exactly the pages the host kept
};

#if QWEN3VL_BENCH_CUDA
// Times CUDA dense decode and CUDA Quest on a device copy of `host` (median of `repeats`, CUDA
// events) and compares the device selection with `host_selection` ([Hkv, 1, max_pages] + lens).
CudaTimes run_cuda_quest(HostQuestCache& host, const QuestConfig& config, int repeats,
                         const std::vector<int32_t>& host_table,
                         const std::vector<int32_t>& host_lens);
#endif

}  // namespace qwen3vl::bench
