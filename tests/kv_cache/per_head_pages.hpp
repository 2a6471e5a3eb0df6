// Per-KV-head pages for a paged DecodeProblem (KvCacheView's per-head block_table and seq_lens):
// head h of sequence b keeps the blocks i of its sequence with (i + h) % 3 != 1 and always the
// last (partial) one, in order, so every head reads different tokens. Tables [Hkv][B][pages] and
// lengths [Hkv][B] (Quest's layout), seen as [B, Hkv, ...] through strides. The oracle: each head
// decoded alone with its own table (a one-head problem the other tests check against float64).
#pragma once

#include <algorithm>
#include <vector>

#include "decode_problem.hpp"

namespace qwen3vl::testing {

struct PerHeadPages {
  Tensor table, lens;
  int64_t batch = 0, kv_heads = 0, pages = 1;

  explicit PerHeadPages(const DecodeProblem& p) : batch(p.spec.batch()), kv_heads(p.spec.kv_heads) {
    const int64_t bs = p.spec.block_size, width = p.table.view().shape[1];
    std::vector<std::vector<std::vector<int32_t>>> kept(static_cast<size_t>(kv_heads));
    std::vector<std::vector<int32_t>> count(static_cast<size_t>(kv_heads));
    for (int64_t h = 0; h < kv_heads; ++h)
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t len = p.spec.lens[static_cast<size_t>(b)], blocks = (len + bs - 1) / bs;
        std::vector<int32_t> ids;
        int32_t tokens = 0;
        for (int64_t i = 0; i < blocks; ++i) {
          if ((i + h) % 3 == 1 && i + 1 < blocks) continue;
          ids.push_back(p.table.data<int32_t>()[b * width + i]);
          tokens += static_cast<int32_t>(std::min(bs, len - i * bs));
        }
        pages = std::max<int64_t>(pages, static_cast<int64_t>(ids.size()));
        kept[static_cast<size_t>(h)].push_back(ids);
        count[static_cast<size_t>(h)].push_back(tokens);
      }
    table = Tensor(DType::kI32, {kv_heads, batch, pages});
    lens = Tensor(DType::kI32, {kv_heads, batch});
    for (int64_t i = 0; i < table.numel(); ++i) table.data<int32_t>()[i] = -3;  // never read
    for (int64_t h = 0; h < kv_heads; ++h)
      for (int64_t b = 0; b < batch; ++b) {
        const auto& ids = kept[static_cast<size_t>(h)][static_cast<size_t>(b)];
        std::copy(ids.begin(), ids.end(), table.data<int32_t>() + (h * batch + b) * pages);
        lens.data<int32_t>()[h * batch + b] = count[static_cast<size_t>(h)][static_cast<size_t>(b)];
      }
  }

  // `base` (a paged problem's params, on any device) with every head on its own pages; `table_data`
  // and `lens_data` hold copies of `table` and `lens` on that device.
  DecodeParams all_heads(const DecodeParams& base, void* table_data, void* lens_data) const {
    DecodeParams d = base;
    d.kv = with_head_major_pages(base.kv, static_cast<int32_t*>(table_data),
                                 static_cast<int32_t*>(lens_data), pages);
    return d;
  }

  // Head h alone: its query heads, its K/V column, its table and lengths.
  DecodeParams one_head(const DecodeParams& base, int64_t h, void* table_data,
                        void* lens_data) const {
    DecodeParams d = base;
    const int64_t group = base.q.shape[2] / kv_heads;
    d.q = base.q.narrowed(2, h * group, group);
    d.out = base.out.narrowed(2, h * group, group);
    d.lse = base.lse.narrowed(1, h * group, group);
    d.kv.k = base.kv.k.narrowed(2, h, 1);
    d.kv.v = base.kv.v.narrowed(2, h, 1);
    const Device dev = base.kv.k.device;
    d.kv.block_table = TensorView::contiguous(static_cast<int32_t*>(table_data) + h * batch * pages,
                                              DType::kI32, {batch, pages}, dev);
    d.kv.seq_lens = TensorView::contiguous(static_cast<int32_t*>(lens_data) + h * batch,
                                           DType::kI32, {batch}, dev);
    d.kv.max_seq_len = std::min(base.kv.length_bound(), pages * base.kv.block_size());
    return d;
  }
};

}  // namespace qwen3vl::testing
