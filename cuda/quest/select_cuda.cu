// Quest page selection on CUDA, two kernels. score_pages: 8 threads per candidate page of every
// (sequence, KV head), thread j owning quest_page_bound's lane j (dims j, j + 8, ...) and the
// lanes combined by the same pairwise tree through shuffles, so every score, and the ranking,
// equals the host's bit for bit. (One thread a page read its page's bounds alone, uncoalesced,
// in a 512-step loop, and dominated a Quest call.) select_pages: one
// thread block per (sequence, KV head) finds the k-th best key by a 4-pass radix select (8 bits a
// pass, shared histogram), then an ordered block-wide compaction writes the kept pages in position
// order, ties to the earlier page, then the forced pages and the token count.
// Runs on sm_61 and up (warp ballots, shared atomics, 1 KB of shared memory).
#include <cuda_runtime.h>

#include "qwen3vl/cuda/check.cuh"
#include "src/quest/quest_select.hpp"

namespace qwen3vl::detail::quest {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

struct Scratch {
  int warp_count[kWarps];
  int total;
};

// The block-wide exclusive prefix sum of `v` in thread order; *total gets the block's sum.
__device__ int exclusive_sum(int v, Scratch& s, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int x = v;  // the warp's inclusive scan
  for (int off = 1; off < 32; off *= 2) {
    const int y = __shfl_up_sync(0xffffffffu, x, off);
    if (lane >= off) x += y;
  }
  if (lane == 31) s.warp_count[warp] = x;
  __syncthreads();
  int before = x - v, all = 0;
  for (int w = 0; w < kWarps; ++w) {
    before += w < warp ? s.warp_count[w] : 0;
    all += s.warp_count[w];
  }
  __syncthreads();
  *total = all;
  return before;
}

// f(p, keys[p]) for p = begin, begin + step, ... < end, the keys loaded kBatch at a time so the
// loads are in flight together (a runtime loop waited on each load in turn).
template <class F>
__device__ void for_keys(const uint32_t* keys, int begin, int end, int step, F f) {
  constexpr int kBatch = 8;
  for (int base = begin; base < end; base += kBatch * step) {
    uint32_t v[kBatch];
#pragma unroll
    for (int k = 0; k < kBatch; ++k) v[k] = base + k * step < end ? keys[base + k * step] : 0u;
#pragma unroll
    for (int k = 0; k < kBatch; ++k)
      if (base + k * step < end) f(base + k * step, v[k]);
  }
}

// The pages of sequence b and how many of them are ranked (0 when every page is kept).
struct PageCounts {
  int64_t len, pages, forced, candidates, keep;
};
__device__ PageCounts page_counts(const SelectArgs& a, int64_t b) {
  PageCounts c;
  c.len = a.seq_lens[b * a.lens_stride];
  c.pages = (c.len + a.block_size - 1) / a.block_size;
  c.forced = c.pages > a.budget_pages ? forced_pages(c.len, a.rows, a.block_size, c.pages) : 0;
  c.candidates = c.pages > a.budget_pages ? c.pages - c.forced : 0;
  c.keep = a.budget_pages - c.forced > 0 ? a.budget_pages - c.forced : 0;
  return c;
}

constexpr int kScoreThreads = 128;
constexpr int kBoundLanes = 8;  // quest_page_bound's lane partials
constexpr int kPagesPerBlock = kScoreThreads / kBoundLanes;
constexpr size_t kStagedQBytes =
    32 << 10;  // the group's scaled q rows in shared memory, where they fit

// grid (page chunks, batch * Hkv): the ranking key of every candidate page; group_score's
// arithmetic, its 8 lanes on 8 threads. The block's pages share one KV head, so the group's q
// rows, scaled, are staged in shared memory once a block (`staged`: where they fit), and a lane's
// D / 8 dims are an unrolled loop where kLaneDims gives their count (D 64 / 128 / 256). This
// kernel was instruction-bound before: a third of its instructions were 64-bit divisions for the
// (head, row) of every row and the rest 2-byte q loads, conversions and address arithmetic
// repeated per page.
template <class Q, int kLaneDims>
__global__ void __launch_bounds__(kScoreThreads) score_pages(SelectArgs a, bool staged) {
  extern __shared__ float sq[];  // [group * rows][head_dim] when staged
  const int kv_heads = static_cast<int>(a.kv_heads), group = static_cast<int>(a.group());
  const int rows = static_cast<int>(a.rows), d_max = static_cast<int>(a.head_dim);
  const int b = static_cast<int>(blockIdx.y) / kv_heads,
            g = static_cast<int>(blockIdx.y) - b * kv_heads;
  const int n_rows = group * rows;
  const Q* q = static_cast<const Q*>(a.q);
  auto scaled_q = [&](int i, int d) {  // row i: head g * G + i / R, new row i % R
    const int h = g * group + i / rows, r = i - i / rows * rows;
    return to_float(q[b * a.q_stride[0] + r * a.q_stride[1] + h * a.q_stride[2] + d]) * a.scale;
  };
  if (staged) {
    for (int x = threadIdx.x; x < n_rows * d_max; x += kScoreThreads)
      sq[x] = scaled_q(x / d_max, x % d_max);
    __syncthreads();
  }
  const int64_t p = static_cast<int64_t>(blockIdx.x) * kPagesPerBlock + threadIdx.x / kBoundLanes;
  const int j = threadIdx.x % kBoundLanes;
  const bool live = p < page_counts(a, b).candidates;  // a group of 8 lives or not as one
  const int64_t block = live ? a.table[b * a.table_stride[0] + p * a.table_stride[1]] : 0;
  const float* lo = a.bounds + ((block * 2) * a.kv_heads + g) * a.head_dim + j;  // this lane's dims
  const float* hi = lo + a.kv_heads * a.head_dim;
  float agg = a.sum ? 0.0f : -INFINITY;
  for (int i = 0; i < n_rows; ++i) {
    auto term = [&](int k) {  // lane dim j + 8 k
      const float s =
          staged ? sq[i * d_max + j + kBoundLanes * k] : scaled_q(i, j + kBoundLanes * k);
      const float x = s * lo[kBoundLanes * k], y = s * hi[kBoundLanes * k];
      return x > y ? x : y;
    };
    float lane = 0.0f;
    if (live) {
      if constexpr (kLaneDims > 0) {
#pragma unroll
        for (int k = 0; k < kLaneDims; ++k) lane += term(k);
      } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 600
#pragma unroll 2  // ptxas 11.8 spills 4 bytes (half q) at its own unroll for sm_60 only
#endif
        for (int k = 0; j + kBoundLanes * k < d_max; ++k) lane += term(k);
      }
    }
    lane +=
        __shfl_xor_sync(0xffffffffu, lane, 1);  // ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
    lane += __shfl_xor_sync(0xffffffffu, lane, 2);
    lane += __shfl_xor_sync(0xffffffffu, lane, 4);
    agg = a.sum ? agg + lane : (lane > agg || !(lane == lane) ? lane : agg);
  }
  if (live && j == 0) a.keys[(b * a.kv_heads + g) * a.max_blocks + p] = order_key(agg);
}

// The radix pass's bin (warp 0): the highest bin b whose keys and the keys above it reach `need`
// (bin 0 when none do), and how many of its keys are still needed: what a scan down from bin 255
// finds, as suffix sums over 8 bins a lane (not a serial scan of 256 bins by one thread).
__device__ void choose_bin(const int* hist, int need, int* chosen, int* still_needed) {
  const int lane = threadIdx.x;
  int mine[8], own = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) own += mine[i] = hist[lane * 8 + i];
  // Suffix sums (from bin 255 down) by an inclusive scan over the lanes in reverse.
  int suffix = own;
  for (int off = 1; off < 32; off *= 2) {
    const int x = __shfl_down_sync(0xffffffffu, suffix, off);
    if (lane + off < 32) suffix += x;
  }
  int s = suffix - own, best = -1, best_above = 0;  // s: keys in bins above this lane's
#pragma unroll
  for (int i = 7; i >= 0; --i) {
    if (best < 0 && s + mine[i] >= need) {
      best = lane * 8 + i;
      best_above = s;
    }
    s += mine[i];
  }
  int top = best;
  for (int off = 16; off > 0; off /= 2) top = max(top, __shfl_xor_sync(0xffffffffu, top, off));
  if (top < 0) {  // no bin reaches `need`: bin 0, with every key above it counted
    if (lane == 0) {
      *chosen = 0;
      *still_needed = need - (suffix - mine[0]);
    }
    return;
  }
  if (best == top) {
    *chosen = top;
    *still_needed = need - best_above;
  }
}

__global__ void __launch_bounds__(kThreads) select_pages(SelectArgs a) {
  __shared__ Scratch scratch;
  __shared__ int hist[256];
  __shared__ int chosen_bin, still_needed;
  const int64_t b = blockIdx.x / a.kv_heads, g = blockIdx.x % a.kv_heads;
  const PageCounts c = page_counts(a, b);
  int32_t* out = a.out_table + (g * a.batch + b) * a.max_pages;
  const int32_t* row = a.table + b * a.table_stride[0];
  const int64_t col = a.table_stride[1], bs = a.block_size;
  if (c.pages <= a.budget_pages) {  // everything fits: the dense decode
    for (int64_t p = threadIdx.x; p < c.pages; p += kThreads) out[p] = row[p * col];
    if (threadIdx.x == 0) a.out_lens[g * a.batch + b] = static_cast<int32_t>(c.len);
    return;
  }
  const uint32_t* keys = a.keys + (b * a.kv_heads + g) * a.max_blocks;
  const int n = static_cast<int>(c.candidates);  // < max_blocks, an int32 table's width

  // threshold = the keep-th largest key, need_equal = how many keys equal to it are kept.
  uint32_t threshold = 0xffffffffu, mask = 0;
  int need_equal = 0;
  if (c.keep > 0) {
    threshold = 0;
    need_equal = static_cast<int>(c.keep);
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
      __syncthreads();
      for_keys(keys, threadIdx.x, n, kThreads, [&](int, uint32_t key) {
        if ((key & mask) == threshold) atomicAdd(&hist[(key >> shift) & 255u], 1);
      });
      __syncthreads();
      if (threadIdx.x < 32) choose_bin(hist, need_equal, &chosen_bin, &still_needed);
      __syncthreads();
      threshold |= static_cast<uint32_t>(chosen_bin) << shift;
      mask |= 255u << shift;
      need_equal = still_needed;
      __syncthreads();
    }
  }
  // Kept: every key above the threshold, and the earliest `need_equal` keys equal to it, in
  // position order. Thread t owns a run of consecutive candidates: it counts them, two block
  // scans place its equal and kept keys, and it writes its kept pages (two scans for the whole
  // compaction, not two per 256 keys).
  const int per = (n + kThreads - 1) / kThreads;
  const int first = min(n, static_cast<int>(threadIdx.x) * per), last = min(n, first + per);
  int above = 0, equal = 0;
  if (c.keep > 0)
    for_keys(keys, first, last, 1, [&](int, uint32_t key) {
      above += key > threshold;
      equal += key == threshold;
    });
  int total = 0;
  const int equal_before = exclusive_sum(equal, scratch, &total);
  int equal_left = min(equal, max(0, need_equal - equal_before));  // this run's equal keys kept
  int at = exclusive_sum(above + equal_left, scratch, &total);
  const int kept = total;
  if (c.keep > 0)
    for_keys(keys, first, last, 1, [&](int p, uint32_t key) {
      const bool take = key > threshold || (key == threshold && equal_left > 0);
      equal_left -= key == threshold && take;
      if (take) out[at++] = row[p * col];
    });
  if (threadIdx.x == 0) {  // the forced pages last, in order
    int64_t written = kept;
    for (int64_t p = c.candidates; p < c.pages; ++p) out[written++] = row[p * col];
    a.out_lens[g * a.batch + b] =
        static_cast<int32_t>((written - 1) * bs + c.len - (c.pages - 1) * bs);
  }
}

}  // namespace

Status select_cuda(const SelectArgs& a, void* stream) {
  if (a.batch * a.kv_heads > 65535)
    return make_error(StatusCode::kUnsupported, "batch * Hkv = ", a.batch * a.kv_heads,
                      ": Quest selection launches one block row each (at most 65535)");
  const auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = static_cast<unsigned>(a.batch * a.kv_heads);
  if (grid == 0) return Status();
  const unsigned chunks =
      static_cast<unsigned>((a.max_blocks + kPagesPerBlock - 1) / kPagesPerBlock);
  const size_t q_bytes = static_cast<size_t>(a.group() * a.rows * a.head_dim) * sizeof(float);
  const bool staged = q_bytes <= kStagedQBytes;
  QWEN3VL_RETURN_IF_ERROR(dispatch_float_dtype(a.q_dtype, [&](auto tag) -> Status {
    using Q = decltype(tag);
    auto launch = [&](auto kernel) {
      kernel<<<dim3(chunks, grid), kScoreThreads, staged ? q_bytes : 0, s>>>(a, staged);
    };
    switch (a.head_dim) {  // D / 8 dims a lane, unrolled
      case 64: launch(score_pages<Q, 8>); break;
      case 128: launch(score_pages<Q, 16>); break;
      case 256: launch(score_pages<Q, 32>); break;
      default: launch(score_pages<Q, 0>); break;
    }
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("quest score_pages");
    return Status();
  }));
  select_pages<<<grid, kThreads, 0, s>>>(a);
  QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("quest select_pages");
  return Status();
}

}  // namespace qwen3vl::detail::quest
