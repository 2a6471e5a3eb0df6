// Which keys one block of the flash kernel visits, as a sequence of K/V tiles of at most kBn keys:
// the dense walk (every tile of the rows' structural key range) or the block-sparse walk (the
// sorted union of the column blocks that the block's query row blocks list, runs of consecutive
// column blocks walked as one interval). One thread runs the walk, its state in shared memory (in
// registers it made the kernels spill), one tile ahead of the tile being computed, so that the K/V
// prefetch follows it; the others read each tile from shared memory after a barrier.
#pragma once

#include <climits>
#include <cstdint>

#include "cuda/common/device_util.cuh"

namespace qwen3vl::detail::flash {

// The rows of sequence b that query head h computes: the sequence's, or with gathered rows
// (a.head_cu_q) the head's own.
__device__ inline DeviceSpan head_span(const AttentionArgs& a, int64_t b, int64_t h) {
  DeviceSpan sp = sequence_span(a, b);
  if (a.head_cu_q != nullptr) {
    const int32_t* cu = a.head_cu_q + h * a.head_cu_q_stride + b;
    sp.q_start = clamp64(__ldg(cu), 0, a.head_rows);
    sp.q_len = clamp64(__ldg(cu + 1), sp.q_start, a.head_rows) - sp.q_start;
  }
  return sp;
}

// Keys visible to query row `row` of sequence b, head h: at its q_positions entry when given,
// else by the bottom-right alignment. Rows past the sequence read the last row's position.
__device__ inline KeyRange row_keys(const AttentionArgs& a, const DeviceSpan& sp, int64_t b,
                                    int64_t h, int64_t row) {
  if (a.q_positions == nullptr)
    return visible_keys(a.mask_kind, a.window_left, a.window_right, row, sp.q_len, sp.k_len);
  const int64_t r = row < sp.q_len ? row : sp.q_len - 1;
  const int64_t pos = __ldg(a.q_positions + b * a.q_positions_batch + h * a.q_positions_head +
                            (sp.q_start + r) * a.q_positions_token);
  return visible_keys_at(a.mask_kind, a.window_left, a.window_right, pos, sp.k_len);
}

// A tile of keys [t0, t0 + keys). Bit 4 * g + r of `allow` says whether key granule g (keys
// t0 + 16 g .. t0 + 16 g + 15) is listed for row block r of the walking block (counted from its
// first); the dense walk sets every bit. Trivial, so that it can live in shared memory.
struct KeyTile {
  int64_t t0;
  int keys;  // 0: the walk is over
  uint32_t allow;
  bool whole;  // every row block lists every granule: no per-key layout mask
};

// kBn: keys per tile (a multiple of 16, at most 64); kRowBlocks: the most 16-row blocks a block
// of kBm query rows can straddle (kBm / 16), at most 4.
template <int kBn, int kRowBlocks>
class KeyWalk {
  static_assert(kBn % 16 == 0 && kBn <= 64 && kRowBlocks >= 1 && kRowBlocks <= 4,
                "allow holds 4 granules x 4 row blocks");

 public:
  static constexpr uint32_t kAllGranules = (1u << (4 * (kBn / 16))) - 1u;

  // Rows [i0, i0 + rows) of sequence b, KV head kv_head, whose structural masks leave keys
  // [k_begin, k_end) to any of them.
  __device__ void init(const AttentionArgs& a, int64_t b, int64_t kv_head, int64_t i0, int rows,
                       int64_t k_begin, int64_t k_end) {
    k_end_ = k_end;
    t_ = k_begin;
    sparse_ = a.layout_indptr != nullptr;
    done_ = false;
    full_allow_ = kAllGranules;
    if (!sparse_) return;
    const int64_t kv_heads = a.heads / a.group;
    const int64_t l =
        a.layouts == 1 ? 0 : (a.layouts == kv_heads ? kv_head : b * kv_heads + kv_head);
    const int32_t* indptr = a.layout_indptr + l * a.layout_indptr_stride;
    col_ = a.layout_indices + l * a.layout_indices_stride;
    block_k_ = a.block_k;
    const int first = static_cast<int>(i0 / a.block_q);
    const int count = static_cast<int>((i0 + rows - 1) / a.block_q) - first + 1;
    uint32_t rows_listed = 0;
#pragma unroll
    for (int r = 0; r < kRowBlocks; ++r) {
      pos_[r] = end_[r] = 0;
      if (r < count) {  // clamped into the indices so that bad device values stay in bounds
        pos_[r] = clamp_entry(__ldg(indptr + first + r), a.layout_capacity);
        end_[r] = clamp_entry(__ldg(indptr + first + r + 1), a.layout_capacity);
        rows_listed |= 1u << r;
      }
      front_[r] = pos_[r] < end_[r] ? __ldg(col_ + pos_[r]) : INT_MAX;
    }
    full_allow_ = kAllGranules / 15u * rows_listed;  // rows_listed in every granule
    done_ = k_end <= k_begin;
    if (done_) return;
    // Tiles start on 16-key granules: keys before k_begin are masked per element.
    const int64_t k_lo = k_begin & ~int64_t{15};
    int32_t col = -1;
    do {
      if (!pull(&col, &rows_)) col = INT_MAX;
    } while (col != INT_MAX && (static_cast<int64_t>(col) + 1) * block_k_ <= k_lo);
    const int64_t lo = static_cast<int64_t>(col) * block_k_;
    done_ = col == INT_MAX || lo >= k_end_;
    t_ = lo > k_lo ? lo : k_lo;
    block_end_ = min64(lo + block_k_, k_end_);
  }

  __device__ KeyTile next() {
    KeyTile tile;
    tile.t0 = t_;
    tile.keys = 0;
    tile.allow = 0;
    tile.whole = true;
    if (!sparse_) {
      if (t_ < k_end_) {
        tile.keys = static_cast<int>(min64(kBn, k_end_ - t_));
        tile.allow = kAllGranules;
        t_ += kBn;
      }
      return tile;
    }
    if (done_) return tile;
    const int64_t stop = t_ + kBn;
    for (;;) {
      const int64_t hi = min64(block_end_, stop);
      for (int g = static_cast<int>(t_ - tile.t0) / 16; g * 16 < hi - tile.t0; ++g)
        tile.allow |= rows_ << (4 * g);
      tile.keys = static_cast<int>(hi - tile.t0);
      t_ = hi;
      if (t_ < block_end_) break;  // the tile is full inside this column block
      int32_t col = INT_MAX;
      uint32_t listed = 0;
      const int64_t lo = pull(&col, &listed) ? static_cast<int64_t>(col) * block_k_ : k_end_;
      if (lo >= k_end_ || lo < t_) {  // the end (or a column list that is not increasing)
        done_ = true;
        break;
      }
      rows_ = listed;
      block_end_ = min64(lo + block_k_, k_end_);
      if (lo != t_ || t_ == stop) {  // a gap, or this tile is full: the next tile starts at lo
        t_ = lo;
        break;
      }
    }
    tile.whole = tile.allow == full_allow_;
    return tile;
  }

 private:
  __device__ static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
  __device__ static int32_t clamp_entry(int32_t e, int32_t capacity) {
    return e < 0 ? 0 : (e > capacity ? capacity : e);
  }

  // The smallest column block at the front of any row block's list, and which row blocks list it
  // (their fronts advance past it).
  __device__ bool pull(int32_t* col, uint32_t* listed) {
    int32_t best = INT_MAX;
#pragma unroll
    for (int r = 0; r < kRowBlocks; ++r) best = front_[r] < best ? front_[r] : best;
    if (best == INT_MAX) return false;
    uint32_t m = 0;
#pragma unroll
    for (int r = 0; r < kRowBlocks; ++r) {
      if (front_[r] != best) continue;
      m |= 1u << r;
      ++pos_[r];
      front_[r] = pos_[r] < end_[r] ? __ldg(col_ + pos_[r]) : INT_MAX;
    }
    *col = best;
    *listed = m;
    return true;
  }

  // Trivial members (no initialisers), so that the walk can be a __shared__ variable.
  int64_t t_, k_end_;
  bool sparse_, done_;
  uint32_t full_allow_;
  // Block-sparse walk: the column block being walked ends at key block_end_ and is listed by the
  // row blocks in rows_; each row block's list is read at pos_ (its value front_) up to end_.
  const int32_t* col_;
  int32_t block_k_;
  int64_t block_end_;
  uint32_t rows_;
  int32_t pos_[kRowBlocks], end_[kRowBlocks], front_[kRowBlocks];
};

}  // namespace qwen3vl::detail::flash
