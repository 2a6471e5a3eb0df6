// Quest page selection on the host: scale the queries once, then per (sequence, KV head) score the
// candidate pages, keep the best with nth_element (key descending, earlier page first on ties) and
// write them, in position order and followed by the forced pages, into the compacted table.
#include <tbb/parallel_for.h>

#include <algorithm>

#include "quest_select.hpp"

namespace qwen3vl::detail::quest {

namespace {

void select_one(const SelectArgs& a, int64_t b, int64_t g) {
  const int64_t len = a.seq_lens[b * a.lens_stride], bs = a.block_size;
  const int64_t pages = (len + bs - 1) / bs;
  int32_t* out = a.out_table + (g * a.batch + b) * a.max_pages;
  int32_t& out_len = a.out_lens[g * a.batch + b];
  auto block_of = [&](int64_t page) {
    return a.table[b * a.table_stride[0] + page * a.table_stride[1]];
  };
  if (pages <= a.budget_pages) {  // everything fits: the dense decode
    for (int64_t p = 0; p < pages; ++p) out[p] = block_of(p);
    out_len = static_cast<int32_t>(len);
    return;
  }
  const int64_t forced = forced_pages(len, a.rows, bs, pages);
  const int64_t candidates = pages - forced;
  const int64_t keep = std::max<int64_t>(a.budget_pages - forced, 0);
  const int64_t slot = (b * a.kv_heads + g) * a.max_blocks;
  uint32_t* keys = a.keys + slot;
  int32_t* order = a.order + slot;
  const float* qs = a.scaled_q;
  const int64_t rows = a.rows, heads = a.heads, d = a.head_dim;
  auto q = [=](int64_t bb, int64_t h, int64_t r, int64_t c) {
    return qs[((bb * heads + h) * rows + r) * d + c];
  };
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(float));
  for (int64_t p = 0; p < candidates; ++p) {
    // The bounds of a page two ahead (its min and max rows, 2 * D floats of this head): pages are
    // scattered through the pool, and this loop is otherwise bound by the misses' latency.
    if (p + 2 < candidates) {
      const char* next =
          reinterpret_cast<const char*>(a.bounds + (block_of(p + 2) * 2 * a.kv_heads + g) * d);
      for (int64_t off = 0; off < row_bytes; off += 64) {
        __builtin_prefetch(next + off);
        __builtin_prefetch(next + a.kv_heads * row_bytes + off);
      }
    }
    keys[p] = order_key(group_score(a, q, b, g, block_of(p)));
    order[p] = static_cast<int32_t>(p);
  }
  auto better = [&](int32_t x, int32_t y) {
    return keys[x] != keys[y] ? keys[x] > keys[y] : x < y;
  };
  if (keep < candidates) std::nth_element(order, order + keep, order + candidates, better);
  std::sort(order, order + keep);
  int64_t n = 0;
  for (int64_t i = 0; i < keep; ++i) out[n++] = block_of(order[i]);
  for (int64_t p = candidates; p < pages; ++p) out[n++] = block_of(p);
  out_len = static_cast<int32_t>((n - 1) * bs + len - (pages - 1) * bs);
}

}  // namespace

Status select_cpu(const SelectArgs& a) {
  const int64_t rows = a.rows, heads = a.heads, d = a.head_dim;
  tbb::parallel_for(int64_t{0}, a.batch * heads * rows, [&](int64_t id) {
    const int64_t b = id / (heads * rows), h = id / rows % heads, r = id % rows;
    const int64_t src = b * a.q_stride[0] + r * a.q_stride[1] + h * a.q_stride[2];
    float* dst = a.scaled_q + ((b * heads + h) * rows + r) * d;
    dispatch_float_dtype(a.q_dtype, [&](auto tag) {
      const auto* q = static_cast<const decltype(tag)*>(a.q) + src;
      for (int64_t c = 0; c < d; ++c) dst[c] = to_float(q[c]) * a.scale;
    });
  });
  tbb::parallel_for(int64_t{0}, a.batch * a.kv_heads,
                    [&](int64_t id) { select_one(a, id / a.kv_heads, id % a.kv_heads); });
  return Status();
}

}  // namespace qwen3vl::detail::quest
