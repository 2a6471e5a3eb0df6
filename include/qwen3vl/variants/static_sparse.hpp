// Static sparse attention: fixed block patterns (sliding window, dilated, Longformer, BigBird,
// DeepSpeed Fixed and Variable) built as BSR layouts (core/block_layout.hpp), and the static-sparse
// variant that runs them through the block-sparse kernels (variants/block_sparse.hpp).
//
// Patterns are block-granular, as in DeepSpeed's sparsity_config.py: key j is visible to query i
// when the layout lists the column block of j for the row block of i. Token-level masks still
// apply inside the listed blocks, so a unidirectional pattern wants params.mask = kCausal (the
// diagonal blocks are lower-triangular only at token level).
//
// Grid: square blocks (block_q = block_k = block). Row block I holds queries [I b, (I + 1) b),
// whose positions on the key axis are bottom-right aligned, so the pattern's row is the key block
// R = I + (max_k - max_q) / b; max_k - max_q must be >= 0 and a multiple of b (0 for
// self-attention). Each pattern is defined on the NBk x NBk grid of key blocks, NBk = ceil(max_k /
// b), and the layout holds its last NBq rows. A final partial block counts as a block. In a varlen
// batch every sequence uses the grid of the longest (max_q, max_k): a shorter sequence gets the
// first rows and columns of that grid, which for window, dilated and global patterns is its own
// pattern, while Fixed's short final window and bidirectional random draws follow the longest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/core/block_layout.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

// ---- An owning host layout -----------------------------------------------------------------

// BSR layout in host vectors; view() points into them (valid while this object lives unchanged).
struct BlockLayoutData {
  int32_t block_q = 0;
  int32_t block_k = 0;
  int64_t layouts = 0;           // L: 1, Hkv or B x Hkv (see core/block_layout.hpp)
  int64_t row_blocks = 0;        // NBq
  int64_t col_blocks = 0;        // NBk
  int64_t capacity = 0;          // indices per layout: the largest layout's block count
  std::vector<int32_t> indptr;   // [L, NBq + 1]
  std::vector<int32_t> indices;  // [L, capacity]; a shorter layout leaves its tail unused

  BlockLayout view() const;
  // Blocks listed by layout l.
  int64_t blocks(int64_t l) const;
};

// Dense block mask (mask[(l * row_blocks + I) * col_blocks + J] != 0: row block I visits column
// block J in layout l) -> BSR.
Status from_block_mask(const std::vector<uint8_t>& mask, int64_t layouts, int64_t row_blocks,
                       int64_t col_blocks, int32_t block_q, int32_t block_k, BlockLayoutData* out);

// Token-level mask of host layout l: result[i * k_len + j] = 1 when the column block of key j is
// listed for the row block of query i (the caller ANDs it with causal / window masks).
std::vector<uint8_t> materialize(const BlockLayout& layout, int64_t l, int64_t q_len,
                                 int64_t k_len);

// ---- Patterns --------------------------------------------------------------------------------

enum class SparsePattern : uint8_t {
  kDense,          // every block (a check: equals dense attention)
  kSlidingWindow,  // DeepSpeed LocalSlidingWindow
  kDilated,        // Sparse-Transformer strided: local band + every d-th block within a span
  kLongformer,     // DeepSpeed BSLongformer: window + global rows and columns
  kBigBird,        // window + global + seeded random blocks
  kFixed,          // DeepSpeed Fixed: non-overlapping local windows + their global blocks
  kVariable,       // DeepSpeed Variable: random + local windows of listed sizes + global blocks
};

const char* to_string(SparsePattern p);

// Windows count blocks; w = num_sliding_window_blocks / 2 (rounded down) as in DeepSpeed:
// bidirectional |R - J| <= w, unidirectional J in [R - w, R].
struct SlidingWindowPattern {
  int32_t num_sliding_window_blocks = 3;  // >= 1
};

// J visible to R when |R - J| <= local_blocks, or (R - J) % dilation == 0 and |R - J| <=
// span_blocks (0: unbounded); unidirectional keeps J <= R. Sparse Transformer's strided pattern
// with stride l blocks is local_blocks = l - 1, dilation = l.
struct DilatedPattern {
  int32_t local_blocks = 1;  // >= 0
  int32_t dilation = 4;      // >= 1
  int32_t span_blocks = 0;   // >= 0
};

// Global blocks: global_block_indices alone are single blocks; with global_block_end_indices
// (same length) block ranges [start, end). Blocks past the grid are skipped, ranges clipped.
struct GlobalBlocks {
  std::vector<int32_t> global_block_indices{0};
  std::vector<int32_t> global_block_end_indices;  // empty: single blocks
};

// DeepSpeed BSLongformer: sliding window |R - J| <= w, global rows and columns, then tril if
// unidirectional.
struct LongformerPattern {
  int32_t num_sliding_window_blocks = 3;  // >= 1
  GlobalBlocks global;
};

// DeepSpeed BigBird: num_random_blocks per row from [0, NBk) (bidirectional) or [0, R]
// (unidirectional), window |R - J| <= w, the first num_global_blocks blocks global as rows and
// columns, then tril if unidirectional. A row with fewer candidates than num_random_blocks takes
// them all (DeepSpeed raises there).
struct BigBirdPattern {
  int32_t num_random_blocks = 1;          // >= 0
  int32_t num_sliding_window_blocks = 3;  // >= 1
  int32_t num_global_blocks = 1;          // >= 0
};

// DeepSpeed Fixed: non-overlapping windows of num_local_blocks blocks (dense when bidirectional,
// lower-triangular when unidirectional). Head pattern p = kv_head % num_different_global_patterns
// makes blocks [l - (1 + p) g, + g) of every window global columns, for every row (bidirectional)
// or rows >= the column (unidirectional); a short final window puts them at min(end + first,
// NBk - g). horizontal_global_attention (bidirectional only) makes them global rows too.
struct FixedPattern {
  int32_t num_local_blocks = 4;   // >= 1, a multiple of num_global_blocks
  int32_t num_global_blocks = 1;  // >= 1
  bool horizontal_global_attention = false;
  int32_t num_different_global_patterns = 1;  // 1..l / g; > 1 needs different_layout_per_head
};

// DeepSpeed Variable: num_random_blocks per row drawn from ALL NBk blocks, even unidirectional
// (the causal mask hides the future ones); windows take the listed sizes in turn and the last size
// repeats; global blocks are columns (from their own row on when unidirectional) and, with
// horizontal_global_attention (bidirectional only), rows.
struct VariablePattern {
  int32_t num_random_blocks = 0;                // >= 0
  std::vector<int32_t> local_window_blocks{4};  // non-empty, each >= 1
  GlobalBlocks global;
  bool horizontal_global_attention = false;
};

struct StaticSparseConfig {
  SparsePattern pattern = SparsePattern::kSlidingWindow;
  int32_t block = 64;           // block_q = block_k: 16..128, a multiple of 16
  bool unidirectional = false;  // DeepSpeed attention='unidirectional'
  // One layout per KV head (L = Hkv; query heads of a group share it) instead of one for all:
  // random blocks are drawn per head, and Fixed cycles its global patterns over the heads.
  bool different_layout_per_head = false;
  uint64_t seed = 0;  // random blocks: the same seed gives the same layout

  SlidingWindowPattern sliding_window;
  DilatedPattern dilated;
  LongformerPattern longformer;
  BigBirdPattern bigbird;
  FixedPattern fixed;
  VariablePattern variable;

  // "bigbird(random 1, window 3, global 1, block 64, bidirectional, seed 0)": the chosen pattern
  // and its knobs.
  std::string to_string() const;
};

// Checks the knobs of the chosen pattern (typed errors naming the knob, its value and what is
// allowed).
Status validate(const StaticSparseConfig& config);

// The layout of `config` for queries max_q x keys max_k: L = kv_heads layouts when
// different_layout_per_head, else 1.
Status build_static_sparse_layout(const StaticSparseConfig& config, int64_t max_q, int64_t max_k,
                                  int64_t kv_heads, BlockLayoutData* out);

// The random blocks of (layout, key-block row R): `count` distinct blocks of [0, population)
// (all of them when population <= count), ascending, a pure function of its arguments.
std::vector<int32_t> random_blocks(uint64_t seed, int64_t layout, int64_t row, int64_t population,
                                   int64_t count);

// ---- The static-sparse variant -----------------------------------------------------------------

// forward() builds the layout for the problem's (max_q, max_k, Hkv) once (cached, thread-safe;
// a few shapes are kept) and delegates to the block-sparse CPU object with params.block_layout
// set. params.block_layout must be absent (the pattern supplies it); everything else as flash2.
Status create_static_sparse_cpu(const CpuOptions& options, const StaticSparseConfig& config,
                                std::unique_ptr<Attention>* out);

}  // namespace qwen3vl
