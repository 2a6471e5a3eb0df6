// Append attention: the serving-engine call over a KV cache. Every sequence of a batch brings any
// number of new rows (0, one decode token, a few speculative ones, a prefill chunk of thousands),
// packed without padding and split by cu_seqlens; their keys are already in the cache (written by
// the table's append step, see append_and_attend), and each new row attends to all of its
// sequence's past tokens and to the new rows up to itself (causal, bottom-right aligned).
//
// The plan decides the kernels: a sequence of at most kMaxDecodeRows new rows runs the decode
// kernel (GQA-packed rows, keys split across threads), a longer chunk the flash tiles, reading K/V
// through the cache's block table; prefill and decode sequences share one parallel launch.
//
// Cascade (shared prefixes): with prefix_groups, the sequences of a group share their first keys
// (the same blocks of a paged cache, e.g. a system prompt or an image forked to many requests).
// All new rows of the group attend to the shared keys in one pass (each K/V block read once for
// the group, not once per sequence), each sequence to its own keys separately, and the two partial
// results are merged by log-sum-exp (merge_states' arithmetic).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/layer_storage.hpp"

namespace qwen3vl {

// The most new rows a sequence may bring with a tree of draft rows (AppendParams::tree_parents).
constexpr int64_t kMaxTreeRows = 64;

// q, out [Tq, Hq, D] (any strides, last dimension contiguous): the new rows of every sequence in
// sequence order; sequence b's are rows cu_seqlens[b] .. cu_seqlens[b + 1] - 1, and they are the
// last tokens of its cache (kv.seq_lens[b] counts them). Row i of R new rows sees keys
// [0, seq_lens[b] - R + i]. A sequence with no new rows is skipped; a row that sees no key gives
// 0 and LSE -inf.
struct AppendParams {
  TensorView q;
  TensorView cu_seqlens;       // host i32 [batch + 1]: 0, non-decreasing, ending at Tq
  KvCacheView kv;              // host-resident, one table for every KV head (f32, f16 or bf16)
  TensorView out;              // the dtype of q
  TensorView lse;              // optional f32 [Hq, Tq], natural log
  std::optional<float> scale;  // default 1 / sqrt(D)
  // Optional host i32 [groups, 3], rows (first, end, shared): sequences [first, end) share their
  // first `shared` keys (paged caches only: every block holding them is the same block in each
  // sequence's table row). Groups are ascending and disjoint; `shared` is at most every member's
  // past length (seq_lens - new rows), so each new row sees all of the shared keys.
  TensorView prefix_groups;
  // Optional host i32 [Tq] (speculative decoding, EAGLE / Medusa verification): the new rows of
  // every sequence form a tree (a forest) of draft tokens: tree_parents[cu_seqlens[b] + i] is the
  // parent of new row i of sequence b, counted within its new rows (-1 for a root, else < i).
  // Row i then sees every past token, itself and its ancestors, and no other new row. At most
  // kMaxTreeRows new rows a sequence. Absent: causal among the new rows.
  TensorView tree_parents;
  // Optional sliding window with attention sinks (StreamingLLM): window > 0: the token at position
  // p of its sequence sees keys p - window + 1 .. p and the first `sinks` keys; 0: every key up to
  // p (sinks unused). Not with prefix_groups or tree_parents. Keys no row sees are never read, so
  // the blocks KvPageTable::evict_outside_window released (-1 in the table) may stay absent.
  int64_t window = 0;
  int64_t sinks = 0;
};

struct AppendShape {
  int64_t batch = 0, tokens = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t max_len = 0;  // bound on seq_lens (kv.length_bound())
  int64_t groups = 0;   // prefix groups (0: no cascade)
  bool tree = false;    // tree_parents given
  int64_t window = 0, sinks = 0;
  bool sinks_apart() const { return window > 0 && sinks > 0; }  // a sinks partial to merge
  float scale = 1.0f;
  int64_t group_size() const { return heads / kv_heads; }
};

// Checks every argument's shape, dtype and device (need_data = false: data pointers may be null,
// as a plan takes them). The values that change every step (cu_seqlens, seq_lens, block table,
// prefix groups) are checked by AppendAttention::run() on every call.
Status validate(const AppendParams& params, AppendShape* shape = nullptr, bool need_data = true);

namespace detail {
struct AppendSignature {
  // q out lse kv.k kv.v kv.seq_lens kv.block_table cu_seqlens prefix_groups tree_parents
  static constexpr int kTensors = 10;
  TensorSignature tensors[kTensors];
  KvLayout layout = KvLayout::kContiguous;
  int64_t max_seq_len = 0;
  bool has_scale = false;
  float scale = 0.0f;
  int64_t window = 0, sinks = 0;
};
}  // namespace detail

// A plain copyable value, made from shapes; serves params equal to the planned ones up to the data
// pointers and the values of cu_seqlens, seq_lens, block_table, prefix_groups and tree_parents.
struct AppendPlan {
  uint64_t facts = 0;  // the planning object's threads and ISA
  AppendShape shape;
  int64_t decode_rows = kMaxDecodeRows;  // at most this many rows run decode (1 under a window)
  int64_t splits = 1;                    // decode key splits per sequence
  int64_t block_q = 0, block_k = 0;      // the flash tiles (positions x keys)
  size_t tile_bytes = 0;                 // flash tile scratch per thread
  size_t slot_bytes = 0;                 // per-thread slot (flash or decode scratch)
  size_t workspace_bytes = 0;
  std::string reason;
  detail::AppendSignature signature;
};

class AppendAttention {
 public:
  virtual ~AppendAttention() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;

  // Validates `problem` (data pointers may be null) and plans it.
  virtual Status plan(const AppendParams& problem, AppendPlan* plan) const = 0;
  // run()'s checks without the launch: the plan fits, pointers are set, the step's values
  // (cu_seqlens against seq_lens, the block table, prefix groups) are within bounds, the
  // workspace is large enough.
  virtual Status check_run(const AppendPlan& plan, const AppendParams& params,
                           Workspace workspace) const = 0;
  // check_run, then computes out (and lse). No allocation.
  virtual Status run(const AppendPlan& plan, const AppendParams& params,
                     Workspace workspace) const = 0;

  // One-off forms: plan() + run(), and the plan's workspace (0 when plan() refuses).
  Status forward(const AppendParams& params, Workspace workspace) const;
  size_t workspace_size(const AppendParams& params) const;
  // Allocates the workspace and throws Error on failure.
  void run(const AppendParams& params) const;
};

// CPU: decode sequences on the decode kernels, longer chunks on the flash2 tiles (per-ISA), one
// oneTBB launch for both, then the merges. The cache must be host-resident.
Status create_append_attention_cpu(const CpuOptions& options,
                                   std::unique_ptr<AppendAttention>* out);

// Shared-prefix groups of a paged cache for AppendParams::prefix_groups: runs of consecutive
// sequences whose table rows start with the same blocks (forks of one prompt, a common system
// prompt or image), each with the keys all its members hold in those blocks and have as past
// (lengths from kv.seq_lens, new rows from cu_seqlens: host i32 [batch + 1]). Runs of one
// sequence, and runs sharing fewer than min_shared keys, are left out. *groups receives the rows
// (first, end, shared), flattened: a [groups.size() / 3, 3] tensor over it is prefix_groups.
Status find_prefix_groups(const KvCacheView& kv, const TensorView& cu_seqlens, int64_t min_shared,
                          std::vector<int32_t>* groups);

// The whole serving step for one layer: opens `table`'s append step for the ragged new rows
// (params.cu_seqlens; k_new, v_new [Tq, Hkv, D]), writes them into `storage`, attends (params.kv
// is set to the storage's view of the step, keeping the caller's max_seq_len: a bound on the
// lengths after the step, 0 for the capacity, as the plan was made), and commits. Any error
// aborts the step: the table is as before. plan: one of `attention` for these shapes (null: plan
// here). The single-layer form; a model opens one step for all its layers (see page_table.hpp).
Status append_and_attend(const AppendAttention& attention, const AppendPlan* plan,
                         KvPageTable* table, const KvLayerStorage& storage, const TensorView& k_new,
                         const TensorView& v_new, AppendParams params, Workspace workspace);

}  // namespace qwen3vl
