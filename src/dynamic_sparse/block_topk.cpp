// Block top-k routing. Phase 1 mean-pools Q per (query head, query block) and K per (KV head, key
// block); phase 2, per (sequence, KV head, query block), scores the pooled query rows of the group
// against the pooled key blocks the block can see (a G x NBk product), turns each head's scores
// into a softmax over those blocks, sums the G heads, and keeps the sink and local blocks plus the
// top_k_blocks best others. The work is O(N D) for pooling plus O(NBq NBk G D), under 1% of dense
// attention's at block 64.
#include <algorithm>
#include <cmath>
#include <limits>

#include <tbb/parallel_for.h>

#include "block_routers.hpp"

namespace qwen3vl::detail {
namespace {

// acc[c] += sum of rows [i0, i0 + n) of head `head` (f32 accumulation of any storage dtype).
void sum_rows(const AttentionParams& p, const TensorView& t, int64_t b, int64_t start, int64_t i0,
              int64_t n, int64_t head, int64_t d, float* acc) {
  dispatch_float_dtype(t.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t r = 0; r < n; ++r) {
      const T* src = t.ptr<const T>() + row_offset(t, p.varlen(), b, start, i0 + r, head);
      for (int64_t c = 0; c < d; ++c) acc[c] += to_float(src[c]);
    }
  });
}

void mean_rows(const AttentionParams& p, const TensorView& t, int64_t b, int64_t start, int64_t i0,
               int64_t n, int64_t head, int64_t d, float* out) {
  std::fill(out, out + d, 0.0f);
  if (n <= 0) return;
  sum_rows(p, t, b, start, i0, n, head, d, out);
  for (int64_t c = 0; c < d; ++c) out[c] /= static_cast<float>(n);
}

int64_t blocks_of(int64_t n, int64_t block) { return (n + block - 1) / block; }

// Routed blocks kept among `candidates` visible ones (on top of the forced ones).
int64_t routed_budget(const DynamicSparseConfig& c, int64_t candidates) {
  if (c.keep_fraction > 0.0)
    return static_cast<int64_t>(std::ceil(c.keep_fraction * static_cast<double>(candidates)));
  return c.top_k_blocks;
}

}  // namespace

int64_t block_topk_row_capacity(const RoutingCall& call, int64_t col_blocks) {
  const DynamicSparseConfig& c = *call.config;
  return std::min<int64_t>(col_blocks,
                           c.sink_blocks + c.local_blocks + routed_budget(c, col_blocks));
}

void route_block_topk(const RoutingCall& call, Carver* carver, const LayoutBuilder& layout) {
  const AttentionParams& p = *call.params;
  const AttentionShape& s = call.shape;
  const DynamicSparseConfig& cfg = *call.config;
  const int64_t d = s.head_dim, g_size = s.group_size();
  const int64_t nbq = blocks_of(s.max_q, cfg.block_q), nbk = blocks_of(s.max_k, cfg.block_k);
  // Pooled Q [B, Hkv, NBq, G, D] (a group's rows of one block are adjacent), pooled K [B, Hkv, NBk,
  // D].
  float* q_pool = carver->take<float>(s.batch * s.heads * nbq * d);
  float* k_pool = carver->take<float>(s.batch * s.kv_heads * nbk * d);
  const ThreadSlots slots(carver, call.threads,
                          sizeof(float) * static_cast<size_t>((g_size + 1) * nbk) +
                              sizeof(int32_t) * static_cast<size_t>(nbk) + 64);
  if (carver->sizing()) return;

  const int64_t heads_blocks = std::max(nbq, nbk);
  call.arena->execute([&] {
    tbb::parallel_for(int64_t{0}, s.batch * s.kv_heads * heads_blocks, [&](int64_t t) {
      const int64_t x = t % heads_blocks, kv = t / heads_blocks % s.kv_heads,
                    b = t / heads_blocks / s.kv_heads;
      const SequenceSpan span = sequence_span(p, b);
      if (x < nbq) {
        const int64_t r0 = std::min(x * cfg.block_q, span.q_len);
        const int64_t n = std::min<int64_t>(cfg.block_q, span.q_len - r0);
        for (int64_t g = 0; g < g_size; ++g)
          mean_rows(p, p.q, b, span.q_start, r0, n, kv * g_size + g, d,
                    q_pool + (((b * s.kv_heads + kv) * nbq + x) * g_size + g) * d);
      }
      if (x < nbk) {
        const int64_t j0 = std::min(x * cfg.block_k, span.k_len);
        const int64_t n = std::min<int64_t>(cfg.block_k, span.k_len - j0);
        mean_rows(p, p.k, b, span.k_start, j0, n, kv, d,
                  k_pool + ((b * s.kv_heads + kv) * nbk + x) * d);
      }
    });
  });

  const float inf = std::numeric_limits<float>::infinity();
  call.arena->execute([&] {
    tbb::parallel_for(int64_t{0}, s.batch * s.kv_heads * nbq, [&](int64_t t) {
      const int64_t row = t % nbq, kv = t / nbq % s.kv_heads, b = t / nbq / s.kv_heads;
      const int64_t l = b * s.kv_heads + kv;
      const SequenceSpan span = sequence_span(p, b);
      const auto [r0, r1, hull] = row_block_keys(p, b, span, row, cfg.block_q);
      if (hull.size() <= 0) {
        layout.set_count(l, row, 0);
        return;
      }
      const int64_t c0 = hull.begin / cfg.block_k, c1 = (hull.end - 1) / cfg.block_k + 1;
      const int64_t n = c1 - c0;
      float* head_scores = reinterpret_cast<float*>(slots.mine());
      float* total = head_scores + g_size * n;
      int32_t* order = reinterpret_cast<int32_t*>(total + n);

      call.scores(q_pool + (l * nbq + row) * g_size * d, g_size, d, k_pool + (l * nbk + c0) * d, n,
                  d, d, head_scores, n);
      std::fill(total, total + n, 0.0f);
      for (int64_t g = 0; g < g_size; ++g) {  // each head's softmax over the visible blocks
        float* sc = head_scores + g * n;
        float mx = -inf;
        for (int64_t c = 0; c < n; ++c) mx = std::max(mx, sc[c] * s.scale);
        double sum = 0.0;
        for (int64_t c = 0; c < n; ++c) sum += sc[c] = std::exp(sc[c] * s.scale - mx);
        for (int64_t c = 0; c < n; ++c) total[c] += static_cast<float>(sc[c] / sum);
      }
      for (int64_t c = 0; c < n; ++c)
        if (std::isnan(total[c])) total[c] = -inf;  // NaN inputs route nowhere in particular
      // Forced blocks score +inf: the sinks, and the local blocks ending at the diagonal.
      int64_t forced = 0;
      for (int64_t c = c0; c < std::min<int64_t>(c1, cfg.sink_blocks); ++c, ++forced)
        total[c - c0] = inf;
      const int64_t last = std::clamp(row_position(p, b, span, r1 - 1), hull.begin, hull.end - 1);
      const int64_t diag = last / cfg.block_k;
      for (int64_t c = std::max(c0, diag - cfg.local_blocks + 1); c <= diag; ++c)
        if (total[c - c0] != inf) total[c - c0] = inf, ++forced;

      const int64_t keep = std::min(n, forced + routed_budget(cfg, n));
      layout.set_count(l, row, keep);
      select_top(total, n, keep, order);
      int32_t* out = layout.slot(l, row);
      for (int64_t e = 0; e < keep; ++e) out[e] = static_cast<int32_t>(c0 + order[e]);
    });
  });
}

}  // namespace qwen3vl::detail
