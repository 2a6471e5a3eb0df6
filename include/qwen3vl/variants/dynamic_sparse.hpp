// Dynamic sparse prefill: the attention pattern is estimated from the inputs on every call, then a
// sparse kernel runs only the kept part. Three routers (definitions: research specs 2.4 and 2.6):
//
//   kBlockTopK      per query block, mean-pooled Q against mean-pooled K blocks; keep the top
//                   `top_k_blocks` key blocks plus `sink_blocks` first blocks and `local_blocks`
//                   blocks ending at the diagonal. Block granular.
//   kVerticalSlash  MInference: softmax of the last `last_queries` queries against every key; keep
//                   the `vertical` heaviest columns (the first `forced_vertical` forced) and the
//                   `slash` heaviest diagonals (the `forced_slash` nearest forced). Run as the
//                   block layout of every block a kept column or diagonal touches: a superset of
//                   the token pattern at block granularity (the kernel computes those whole
//                   blocks).
//   kExactTopK      every query keeps its `top_k` largest scores (ties at the k-th score are all
//                   kept). Token granular, so no block layout: a two-pass kernel scores every
//                   visible key (the full Q K^T, the cost of dense attention's first GEMM), takes
//                   each row's k-th largest score as a threshold, then the softmax and P V run over
//                   the keys at or above it. It saves the P V work only.
//
// Routing never adds keys the masks hide (causal, window, key padding): block routers consider only
// key blocks some row of the query block can see, and the kernel applies the token masks inside.
// Under GQA one layout serves a (sequence, KV head): scores are summed over the group's query heads
// so the group reads the same K/V blocks (BlockLayout with L = batch x Hkv).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qwen3vl/core/block_layout.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

enum class DynamicSparseMethod : uint8_t { kBlockTopK, kVerticalSlash, kExactTopK };

const char* to_string(DynamicSparseMethod m);

struct DynamicSparseConfig {
  DynamicSparseMethod method = DynamicSparseMethod::kBlockTopK;
  int32_t block_q = 64;  // layout blocks of the block routers: 16..128, multiples of 16
  int32_t block_k = 64;

  // kBlockTopK: routed blocks per query block, on top of the sink and local blocks.
  int32_t top_k_blocks = 8;
  int32_t sink_blocks = 1;   // the first key blocks, always kept
  int32_t local_blocks = 1;  // key blocks ending at the query block's diagonal, always kept

  // kVerticalSlash (MInference's defaults: 64 queries, 1000 columns, 6096 diagonals, 30 / 100).
  int32_t last_queries = 64;
  int64_t vertical = 1000;
  int64_t slash = 6096;
  int64_t forced_vertical = 30;  // the first columns, kept (up to `vertical` of them)
  int64_t forced_slash = 100;    // the nearest diagonals, kept (up to `slash` of them)

  // kExactTopK: keys kept per query row.
  int64_t top_k = 256;

  // > 0: the budget is this fraction (0, 1] instead of the counts above: of the query block's
  // visible key blocks (block top-k), of the keys for the columns and for the diagonals each
  // (vertical-slash), of the row's visible keys (exact top-k); rounded up.
  double keep_fraction = 0.0;
};

// Checks the knobs: a kInvalidArgument naming the field, its value and what is allowed.
Status validate(const DynamicSparseConfig& config);

// What create_dynamic_sparse_cpu returns: an Attention whose forward() estimates the pattern into
// the workspace and runs the sparse kernel, plus the estimator on its own.
class DynamicSparseAttention : public Attention {
 public:
  virtual const DynamicSparseConfig& config() const = 0;
  // Workspace bytes of estimate(): the layout and the estimator's scratch.
  virtual size_t estimate_workspace_size(const AttentionParams& params) const = 0;
  // Block routers: writes the layout for these inputs into `workspace` (valid while it lives) and
  // its view into *layout: host memory on the CPU; device memory on CUDA, launched on the default
  // stream (synchronise before reading it). kExactTopK has no block layout: kUnsupported.
  virtual Status estimate(const AttentionParams& params, Workspace workspace,
                          BlockLayout* layout) const = 0;
  // Kept fraction of the visible (query block, key block) pairs, or of the visible (query, key)
  // pairs for kExactTopK, in the last estimate() or forward() of this object; -1 before any.
  virtual double last_density() const = 0;
};

// CPU: params in host memory; no attention weights; params.block_layout must be absent (the router
// makes it). Fails if the ISA is not available or the knobs are invalid.
Status create_dynamic_sparse_cpu(const CpuOptions& options, const DynamicSparseConfig& config,
                                 std::unique_ptr<DynamicSparseAttention>* out);
Status create_dynamic_sparse_cpu(const CpuOptions& options, const DynamicSparseConfig& config,
                                 std::unique_ptr<Attention>* out);

}  // namespace qwen3vl
