// Quest: query-aware page selection for decode (Tang et al. 2024). Every block (page) of a paged
// cache keeps its elementwise min m_p and max M_p key (KvCacheConfig::key_bounds). For a query q,
//   U_p = sum_d max(s q_d m_pd, s q_d M_pd)  (s = the softmax scale)
// bounds every scaled score s q.k of the page from above. QuestDecode keeps the top
// ceil(token_budget / block_size) pages per (sequence, KV head), writes them into a compacted
// block table, and runs the ordinary decode kernel once per KV head over only those pages: exact
// softmax attention over the selected tokens.
//
// It lives beside the cache rather than under variants/ because it is a decode-time policy over a
// paged KvCache and the DecodeAttention API, not an Attention variant of AttentionParams.
//
// Selection, per (sequence b, KV head g), with n = ceil(len / block_size) pages:
//  - The pages holding the newest R query rows' keys are forced: the last (partial) page, and the
//    one before it when R exceeds the last page's fill. They come last, in position order, so the
//    decode kernel's bottom-right causal rule still hides exactly the later new tokens from each
//    row: all R rows share one selection (the union of their needs).
//  - The other pages are ranked by U aggregated over the group's query heads and the R rows
//    (QuestAggregation), ties to the earlier page; the best ceil(budget / block_size) - forced
//    of them are kept, in position order, ahead of the forced ones. Every kept page but the last
//    is full, so the compacted table is an ordinary block table.
//  - With n <= ceil(budget / block_size) every page is kept: the result is the dense decode. When
//    the cache's host-side length bound (kv.max_seq_len, else the capacity) fits the budget, that
//    holds for every sequence and forward() runs the dense decode over all heads at once (a
//    one-head view reads 256-byte pieces of each token row, which costs a CPU about 2.4x).
// Selection is deterministic and identical on CPU and CUDA (the same fp32 sums in the same order).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qwen3vl/core/macros.hpp"
#include "qwen3vl/kv_cache/decode.hpp"

namespace qwen3vl {

// U_p for one query row: sum_d max(a_d lo_d, a_d hi_d), with a_d = q(d) the scaled query. Eight
// lane sums combined pairwise, so that the CPU (vectorised) and CUDA kernels add in one order and
// rank pages identically.
template <class Query>
QWEN3VL_HOST_DEVICE inline float quest_page_bound(const Query& q, const float* lo, const float* hi,
                                                  int64_t head_dim) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= head_dim; d += 8)
    for (int j = 0; j < 8; ++j) {
      const float a = q(d + j), x = a * lo[d + j], y = a * hi[d + j];
      lane[j] += x > y ? x : y;
    }
  for (int j = 0; d + j < head_dim; ++j) {
    const float a = q(d + j), x = a * lo[d + j], y = a * hi[d + j];
    lane[j] += x > y ? x : y;
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// How the per-row, per-query-head bounds of one KV group rank a page.
enum class QuestAggregation : uint8_t {
  kMax,  // the largest U over the group's heads and rows: a page any head needs is kept (default)
  kSum,  // the sum: pages the whole group likes; one sharply focused head can be outvoted
};

inline const char* to_string(QuestAggregation a) {
  return a == QuestAggregation::kMax ? "max" : "sum";
}

struct QuestConfig {
  int64_t token_budget = 4096;  // tokens attended per (sequence, KV head); >= 1
  QuestAggregation aggregation = QuestAggregation::kMax;
};

struct QuestParams {
  DecodeParams decode;  // a paged cache (kv.layout kPaged) and its queries, as for decode
  TensorView
      key_bounds;  // KvCache::key_bounds(): f32 [num_blocks, 2, Hkv, D], on the cache's device
};

class QuestDecode {
 public:
  // `decode`: the dense decode kernel Quest runs over the selected pages (create_decode_cpu or
  // create_decode_cuda); its device is Quest's device.
  static Status create(const QuestConfig& config, std::unique_ptr<DecodeAttention> decode,
                       std::unique_ptr<QuestDecode>* out);

  Device device() const { return decode_->device(); }
  const QuestConfig& config() const { return config_; }
  Status supports(const QuestParams& params) const;
  // Selection scratch, the compacted tables and the decode kernel's workspace.
  size_t workspace_size(const QuestParams& params) const;
  // Selects and attends: the selection, then ONE decode call over per-KV-head pages (the
  // compacted tables as KvCacheView's per-head block_table); no allocation, no host sync (CUDA:
  // ordered on `stream`, capturable into a CUDA graph).
  Status forward(const QuestParams& params, Workspace workspace, void* stream = nullptr) const;
  // The most pages one (sequence, KV head) keeps: ceil(budget / block_size), at least the 2 that
  // may be forced, at most the table's width.
  int64_t max_pages(const KvCacheView& kv) const;
  std::string describe() const;

  // The compacted selection forward() leaves at the start of its workspace: i32 [Hkv, batch,
  // max_pages] block ids, then i32 [Hkv, batch] token counts (for tests and inspection). Not
  // written when the length bound fits the budget (see above).
  struct Selection {
    const int32_t* table;
    const int32_t* lens;
  };
  Selection selection(const QuestParams& params, Workspace workspace) const;

 private:
  QuestDecode(const QuestConfig& c, std::unique_ptr<DecodeAttention> d)
      : config_(c), decode_(std::move(d)) {}
  Status check(const QuestParams& params, DecodeShape* shape) const;
  bool fits_budget(const KvCacheView& kv) const;  // every sequence keeps all its pages
  size_t workspace_bytes(const QuestParams& params, const DecodeShape& shape) const;
  QuestConfig config_;
  std::unique_ptr<DecodeAttention> decode_;
};

}  // namespace qwen3vl
