// MInference vertical-slash routing (research specs 2.4). Phase 1, per (sequence, query head): the
// softmax of the last `last_queries` rows against every key they see (their own masks, so causal
// only among the last a x a entries), summed per column (vertical scores) and per diagonal
// delta = position - key (slash scores). Phase 2, per (sequence, KV head): the group's heads are
// summed, the first forced_vertical columns and the forced_slash nearest diagonals are forced, and
// the top `vertical` columns and `slash` diagonals kept. Phase 3, per query block: every key block
// that holds a kept column or that a kept diagonal crosses, within the keys the block sees.
//
// The kernel then computes those blocks whole: a superset of MInference's token pattern at block
// granularity (more work and slightly more exact than the token-level pattern, never less).
#include <algorithm>
#include <cmath>
#include <limits>

#include <tbb/parallel_for.h>

#include "block_routers.hpp"

namespace qwen3vl::detail {
namespace {

int64_t budget(const DynamicSparseConfig& c, int64_t count, int64_t keys, int64_t candidates) {
  const int64_t want =
      c.keep_fraction > 0.0
          ? static_cast<int64_t>(std::ceil(c.keep_fraction * static_cast<double>(keys)))
          : count;
  return std::min(want, candidates);
}

}  // namespace

void route_vertical_slash(const RoutingCall& call, Carver* carver, const LayoutBuilder& layout) {
  const AttentionParams& p = *call.params;
  const AttentionShape& s = call.shape;
  const DynamicSparseConfig& cfg = *call.config;
  const int64_t d = s.head_dim, g_size = s.group_size();
  const int64_t a_max = std::min<int64_t>(cfg.last_queries, s.max_q);
  const int64_t diagonals = 2 * s.max_k;  // delta in [-(k_len - 1), k_len - 1] at delta + k_len - 1
  const int64_t nbq = (s.max_q + cfg.block_q - 1) / cfg.block_q;
  const int64_t nbk = (s.max_k + cfg.block_k - 1) / cfg.block_k;

  float* vertical = carver->take<float>(s.batch * s.heads * s.max_k);  // [B, Hq, max_k]
  float* slash = carver->take<float>(s.batch * s.heads * diagonals);   // [B, Hq, 2 max_k]
  const int64_t v_cap = std::min(cfg.keep_fraction > 0.0 ? s.max_k : cfg.vertical, s.max_k);
  const int64_t s_cap = std::min(cfg.keep_fraction > 0.0 ? s.max_k : cfg.slash, diagonals);
  int32_t* kept_columns = carver->take<int32_t>(s.batch * s.kv_heads * v_cap);
  int32_t* kept_deltas = carver->take<int32_t>(s.batch * s.kv_heads * s_cap);
  int64_t* kept_counts = carver->take<int64_t>(s.batch * s.kv_heads * 2);
  const size_t phase1 =
      sizeof(float) * static_cast<size_t>(a_max * d + a_max * s.max_k + kKeyChunk * d) + 128;
  const size_t phase2 = sizeof(int32_t) * static_cast<size_t>(diagonals);
  const size_t phase3 = static_cast<size_t>(nbk);
  const ThreadSlots slots(carver, call.threads, std::max({phase1, phase2, phase3}));
  if (carver->sizing()) return;

  const float inf = std::numeric_limits<float>::infinity();
  // Phase 1: column and diagonal sums of the last rows' softmax, per query head.
  call.arena->execute([&] {
    tbb::parallel_for(int64_t{0}, s.batch * s.heads, [&](int64_t t) {
      const int64_t h = t % s.heads, b = t / s.heads, kv = h / g_size;
      const SequenceSpan span = sequence_span(p, b);
      float* v_sum = vertical + t * s.max_k;
      float* s_sum = slash + t * diagonals;
      std::fill(v_sum, v_sum + s.max_k, 0.0f);
      std::fill(s_sum, s_sum + diagonals, 0.0f);
      const int64_t a = std::min<int64_t>(cfg.last_queries, span.q_len);
      const int64_t i0 = span.q_len - a;
      const KeyRange keys = rows_key_hull(p, b, span, i0, span.q_len);
      if (keys.size() <= 0) return;
      float* q = reinterpret_cast<float*>(slots.mine());
      float* sc = q + a * d;
      float* chunk = sc + a * keys.size();
      pack_rows(p, p.q, b, span.q_start, i0, a, h, d, s.scale, q, d);
      score_keys(call, b, span, kv, q, a, keys, sc, keys.size(), chunk);
      for (int64_t r = 0; r < a; ++r) {
        float* row = sc + r * keys.size();
        const KeyRange seen = finish_row_scores(p, b, h, span, i0 + r, keys, row);
        float mx = -inf;
        for (int64_t j = seen.begin; j < seen.end; ++j) mx = std::max(mx, row[j - keys.begin]);
        if (!(mx > -inf) || std::isnan(mx)) continue;  // sees nothing (or NaN scores): no vote
        double sum = 0.0;
        for (int64_t j = seen.begin; j < seen.end; ++j)
          sum += row[j - keys.begin] = std::exp(row[j - keys.begin] - mx);
        const float inv = static_cast<float>(1.0 / sum);
        const int64_t offset =
            row_position(p, b, span, i0 + r) + span.k_len - 1;  // delta + k_len - 1
        for (int64_t j = seen.begin; j < seen.end; ++j) {
          const float w = row[j - keys.begin] * inv;
          v_sum[j] += w;
          const int64_t diag = offset - j;
          if (diag >= 0 && diag < 2 * span.k_len - 1) s_sum[diag] += w;
        }
      }
    });
  });

  // Phase 2: the group's sums, forced entries, the top columns and diagonals.
  call.arena->execute([&] {
    tbb::parallel_for(int64_t{0}, s.batch * s.kv_heads, [&](int64_t l) {
      const int64_t b = l / s.kv_heads;
      const SequenceSpan span = sequence_span(p, b);
      const int64_t n_diag = std::max<int64_t>(0, 2 * span.k_len - 1);
      float* v_sum = vertical + l * g_size * s.max_k;  // the group's first head, l = b Hkv + kv
      float* s_sum = slash + l * g_size * diagonals;
      for (int64_t g = 1; g < g_size; ++g) {
        for (int64_t j = 0; j < span.k_len; ++j) v_sum[j] += v_sum[g * s.max_k + j];
        for (int64_t e = 0; e < n_diag; ++e) s_sum[e] += s_sum[g * diagonals + e];
      }
      const int64_t n_v = budget(cfg, cfg.vertical, span.k_len, span.k_len);
      const int64_t n_s = budget(cfg, cfg.slash, span.k_len, n_diag);
      for (int64_t j = 0; j < std::min({cfg.forced_vertical, n_v, span.k_len}); ++j) v_sum[j] = inf;
      for (int64_t delta = 0; delta < std::min({cfg.forced_slash, n_s, span.k_len}); ++delta)
        s_sum[delta + span.k_len - 1] = inf;
      int32_t* order = reinterpret_cast<int32_t*>(slots.mine());
      int32_t* columns = kept_columns + l * v_cap;
      select_top(v_sum, span.k_len, n_v, order);
      std::copy(order, order + n_v, columns);
      int32_t* deltas = kept_deltas + l * s_cap;
      select_top(s_sum, n_diag, n_s, order);
      for (int64_t e = 0; e < n_s; ++e)
        deltas[e] = static_cast<int32_t>(order[e] - (span.k_len - 1));
      kept_counts[2 * l] = n_v;
      kept_counts[2 * l + 1] = n_s;
    });
  });

  // Phase 3: the key blocks each query block's kept columns and diagonals touch.
  call.arena->execute([&] {
    tbb::parallel_for(int64_t{0}, s.batch * s.kv_heads * nbq, [&](int64_t t) {
      const int64_t row = t % nbq, l = t / nbq, b = l / s.kv_heads;
      const SequenceSpan span = sequence_span(p, b);
      const auto [r0, r1, hull] = row_block_keys(p, b, span, row, cfg.block_q);
      if (hull.size() <= 0) {
        layout.set_count(l, row, 0);
        return;
      }
      auto* marked = reinterpret_cast<unsigned char*>(slots.mine());
      std::fill(marked, marked + nbk, 0);
      const int32_t* columns = kept_columns + l * v_cap;
      for (int64_t e = 0; e < kept_counts[2 * l]; ++e)
        if (columns[e] >= hull.begin && columns[e] < hull.end) marked[columns[e] / cfg.block_k] = 1;
      const int64_t pos0 = row_position(p, b, span, r0), pos1 = row_position(p, b, span, r1 - 1);
      const int32_t* deltas = kept_deltas + l * s_cap;
      for (int64_t e = 0; e < kept_counts[2 * l + 1]; ++e) {
        const int64_t lo = std::max(pos0 - deltas[e], hull.begin);
        const int64_t hi = std::min(pos1 - deltas[e], hull.end - 1);
        for (int64_t c = lo / cfg.block_k; lo <= hi && c <= hi / cfg.block_k; ++c) marked[c] = 1;
      }
      int32_t* out = layout.slot(l, row);
      int64_t n = 0;
      for (int64_t c = hull.begin / cfg.block_k; c <= (hull.end - 1) / cfg.block_k; ++c)
        if (marked[c]) out[n++] = static_cast<int32_t>(c);
      layout.set_count(l, row, n);
    });
  });
}

}  // namespace qwen3vl::detail
