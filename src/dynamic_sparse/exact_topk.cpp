// Exact per-query top-k attention (research specs 2.6), two passes over one score tile per task:
//   pass 1: S = (scale Q) K^T for a tile of query rows against every key they see (the ISA's GEMM),
//           then each row's k-th largest logit (the threshold): a sample of 256 logits gives a
//           lower bound, one branch-free pass gathers the keys at or above it (~k of them), and
//           nth_element runs on those alone (on every finite logit if the bound was too high);
//   pass 2: the softmax over the gathered keys at or above the threshold, then P V: the kept V
//           rows gathered per row when rows keep < 1/16 of the tile's keys, else one GEMM over
//           the tile's probabilities (zeros off the kept keys), as dense attention does.
// Tasks are (sequence, KV head, query positions) with all G heads of the group, so K is read once
// per tile for the group. Pass 1 costs what dense attention's Q K^T costs (every visible key is
// scored) plus two passes over each score row; only P V can shrink. The tile is rows x keys floats
// per thread (O(N) workspace, never O(N^2)).
#include "exact_topk.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <tbb/parallel_for.h>

namespace qwen3vl::detail {
namespace {

constexpr int64_t kTileRows = 64;  // query rows (positions x group heads) per task
constexpr int64_t kSample = 256;   // logits sampled per row to bound its k-th largest from below
constexpr int64_t kDensePvRatio = 16;  // P V by GEMM when rows keep >= 1/16 of the tile's keys

int64_t tile_positions(const AttentionShape& s) {
  return std::max<int64_t>(1, kTileRows / s.group_size());
}

// Keys row keeps among `visible` (its finite logits count, at most).
int64_t row_budget(const DynamicSparseConfig& c, int64_t visible) {
  if (c.keep_fraction > 0.0)
    return std::min(
        visible, static_cast<int64_t>(std::ceil(c.keep_fraction * static_cast<double>(visible))));
  return std::min(visible, c.top_k);
}

struct Slot {
  float* q;       // [rows, D] scaled query rows
  float* scores;  // [rows, max_k]
  float* values;  // [max_k] candidate logits of a row, in key order
  int32_t* keys;  // [max_k] their keys
  float* select;  // [max_k] nth_element's copy of the values
  float* sample;  // [kSample]
  float* chunk;   // [kKeyChunk, D]
  float* acc;     // [D]
};

Slot carve_slot(Carver* c, const AttentionShape& s) {
  const int64_t rows = tile_positions(s) * s.group_size();
  Slot slot;
  slot.q = c->take<float>(rows * s.head_dim);
  slot.scores = c->take<float>(rows * s.max_k);
  slot.values = c->take<float>(s.max_k);
  slot.keys = c->take<int32_t>(s.max_k);
  slot.select = c->take<float>(s.max_k);
  slot.sample = c->take<float>(kSample);
  slot.chunk = c->take<float>(kKeyChunk * s.head_dim);
  slot.acc = c->take<float>(s.head_dim);
  return slot;
}

size_t slot_bytes(const AttentionShape& s) {
  Carver sizing;
  carve_slot(&sizing, s);
  return sizing.used();
}

// Does any of V's rows [keys) of (sequence b, KV head kv) hold Inf or NaN? An all-ones exponent
// field, tested on the bits so the loop vectorises (an OR of flags, no float reduction).
bool v_rows_non_finite(const AttentionParams& p, int64_t b, const SequenceSpan& span, int64_t kv,
                       KeyRange keys, int64_t d) {
  bool bad = false;
  dispatch_float_dtype(p.v.dtype, [&](auto tag) {
    using T = decltype(tag);
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>;
    const Bits exponent = sizeof(T) == 4            ? Bits(0x7f800000u)
                          : std::is_same_v<T, half> ? Bits(0x7c00u)
                                                    : Bits(0x7f80u);
    for (int64_t j = keys.begin; j < keys.end && !bad; ++j) {
      const T* v = p.v.ptr<const T>() + row_offset(p.v, p.varlen(), b, span.k_start, j, kv);
      Bits any = 0;
      for (int64_t c = 0; c < d; ++c) {
        Bits x;
        std::memcpy(&x, v + c, sizeof x);
        any |= (x & exponent) == exponent;
      }
      bad = any != 0;
    }
  });
  return bad;
}

// One row: threshold, softmax over the kept keys, and lse. With dense_pv the row of logits becomes
// its probabilities (0 off the kept keys) for the tile's P V GEMM; otherwise the kept keys' V rows
// are accumulated here and out is written. Returns the keys kept.
int64_t finish_row(const RoutingCall& call, int64_t b, int64_t h, const SequenceSpan& span,
                   int64_t i, KeyRange keys, float* logits, const Slot& slot, bool dense_pv) {
  const AttentionParams& p = *call.params;
  const int64_t d = call.shape.head_dim;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const KeyRange seen = finish_row_scores(p, b, h, span, i, keys, logits);
  const auto row = [&](int64_t j) { return logits[j - keys.begin]; };
  const int64_t n = seen.size();
  // A lower bound on the k-th largest logit from an even sample (rank k n_s / n plus a margin),
  // so that only the candidates at or above it are gathered and nth_element sees ~k of them.
  float bound = neg_inf;
  const int64_t k_estimate = row_budget(*call.config, n);
  if (n > 4 * kSample && k_estimate < n / 4) {
    int64_t taken = 0;
    for (int64_t e = 0; e < kSample; ++e) {
      const float x = row(seen.begin + e * n / kSample);
      if (x > neg_inf) slot.sample[taken++] = x;
    }
    const int64_t rank = k_estimate * kSample / n;
    const int64_t deeper =
        rank + 8 + static_cast<int64_t>(2.0 * std::sqrt(static_cast<double>(rank)));
    if (deeper < taken) {
      std::nth_element(slot.sample, slot.sample + deeper, slot.sample + taken,
                       std::greater<float>());
      bound = slot.sample[deeper];
    }
  }
  int64_t finite = 0, count = 0, nan = 0;
  for (int64_t j = seen.begin; j < seen.end; ++j) {  // branch-free gather; NaN never passes
    const float x = row(j);
    slot.values[count] = x;
    slot.keys[count] = static_cast<int32_t>(j);
    finite += x > neg_inf;
    nan += x != x;
    count += x > neg_inf && x >= bound;
  }
  if (nan > 0) {  // a NaN logit (from q or a K row the row sees) makes the row NaN, as dense does
    const float qnan = std::numeric_limits<float>::quiet_NaN();
    if (dense_pv) {
      std::fill(logits, logits + keys.size(), qnan);
    } else {
      const int64_t o = row_offset(p.out, p.varlen(), b, span.q_start, i, h);
      for (int64_t c = 0; c < d; ++c) store_float(p.out, o + c, qnan);
    }
    if (p.lse.present())
      p.lse.ptr<float>()[p.varlen() ? p.lse.offset(h, span.q_start + i) : p.lse.offset(b, h, i)] =
          qnan;
    return 0;
  }
  const int64_t k = row_budget(*call.config, finite);
  if (count < k) {  // the sample's bound was too high: gather every finite logit
    count = 0;
    for (int64_t j = seen.begin; j < seen.end; ++j) {
      slot.values[count] = row(j);
      slot.keys[count] = static_cast<int32_t>(j);
      count += row(j) > neg_inf;
    }
  }
  float threshold = neg_inf, mx = neg_inf;
  if (k > 0 && k < count) {
    std::copy(slot.values, slot.values + count, slot.select);
    std::nth_element(slot.select, slot.select + (k - 1), slot.select + count,
                     std::greater<float>());
    threshold = slot.select[k - 1];
    mx = *std::max_element(slot.select, slot.select + k);
  } else if (k > 0) {  // every gathered logit is kept: no selection
    mx = *std::max_element(slot.values, slot.values + count);
  }
  double sum = 0.0;
  int64_t kept = 0;
  if (dense_pv) {
    for (int64_t e = 0; e < count; ++e)
      if (k > 0 && slot.values[e] >= threshold) sum += std::exp(slot.values[e] - mx), ++kept;
    std::fill(logits, logits + keys.size(), 0.0f);
    const float inv = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (int64_t e = 0; e < count; ++e)
      if (k > 0 && slot.values[e] >= threshold)
        logits[slot.keys[e] - keys.begin] = std::exp(slot.values[e] - mx) * inv;
  } else {
    std::fill(slot.acc, slot.acc + d, 0.0f);
    if (k > 0) {
      dispatch_float_dtype(p.v.dtype, [&](auto tag) {
        using T = decltype(tag);
        const int64_t kv = h / call.shape.group_size();
        for (int64_t e = 0; e < count; ++e) {
          if (!(slot.values[e] >= threshold)) continue;
          const float w = std::exp(slot.values[e] - mx);
          sum += w;
          ++kept;
          const T* v =
              p.v.ptr<const T>() + row_offset(p.v, p.varlen(), b, span.k_start, slot.keys[e], kv);
          for (int64_t c = 0; c < d; ++c) slot.acc[c] += w * to_float(v[c]);
        }
      });
    }
    const float inv = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    const int64_t o = row_offset(p.out, p.varlen(), b, span.q_start, i, h);
    for (int64_t c = 0; c < d; ++c) store_float(p.out, o + c, slot.acc[c] * inv);
  }
  if (p.lse.present()) {
    const int64_t off = p.varlen() ? p.lse.offset(h, span.q_start + i) : p.lse.offset(b, h, i);
    p.lse.ptr<float>()[off] = sum > 0.0 ? mx + static_cast<float>(std::log(sum)) : neg_inf;
  }
  return kept;
}

// O = P V for the tile (P: the probabilities left in the score tile), then out.
void tile_pv(const RoutingCall& call, int64_t b, const SequenceSpan& span, int64_t kv, int64_t r0,
             int64_t n, KeyRange keys, const Slot& slot) {
  const AttentionParams& p = *call.params;
  const int64_t d = call.shape.head_dim, g_size = call.shape.group_size(), rows = g_size * n;
  float* o = slot.q;  // the scaled queries are no longer needed
  std::fill(o, o + rows * d, 0.0f);
  if (keys.size() > 0) {
    if (p.v.dtype == DType::kF32) {
      const int64_t ldv = p.varlen() ? p.v.stride[0] : p.v.stride[1];
      const float* v0 =
          p.v.ptr<const float>() + row_offset(p.v, p.varlen(), b, span.k_start, keys.begin, kv);
      call.pv(slot.scores, rows, keys.size(), v0, keys.size(), ldv, d, o, d);
    } else {
      for (int64_t j = keys.begin; j < keys.end; j += kKeyChunk) {
        const int64_t m = std::min(kKeyChunk, keys.end - j);
        pack_rows(p, p.v, b, span.k_start, j, m, kv, d, 1.0f, slot.chunk, d);
        call.pv(slot.scores + (j - keys.begin), rows, keys.size(), slot.chunk, m, d, d, o, d);
      }
    }
  }
  for (int64_t g = 0; g < g_size; ++g)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = row_offset(p.out, p.varlen(), b, span.q_start, r0 + i, kv * g_size + g);
      for (int64_t c = 0; c < d; ++c) store_float(p.out, at + c, o[(g * n + i) * d + c]);
    }
}

}  // namespace

size_t exact_topk_bytes(const RoutingCall& call) {
  Carver sizing;  // the slots run_exact_topk carves
  const ThreadSlots slots(&sizing, call.threads, slot_bytes(call.shape));
  return sizing.used() + kAlignSlack;
}

void run_exact_topk(const RoutingCall& call, void* workspace, double* density) {
  const AttentionParams& p = *call.params;
  const AttentionShape& s = call.shape;
  const int64_t g_size = s.group_size(), d = s.head_dim;
  const int64_t positions = tile_positions(s);
  const int64_t tiles = (s.max_q + positions - 1) / positions;
  Carver carver = carve(workspace);
  const ThreadSlots slots(&carver, call.threads, slot_bytes(s));
  std::atomic<int64_t> kept{0}, visible{0};

  call.arena->execute([&] {
    tbb::parallel_for(int64_t{0}, s.batch * s.kv_heads * tiles, [&](int64_t t) {
      const int64_t tile = t % tiles, kv = t / tiles % s.kv_heads, b = t / tiles / s.kv_heads;
      const SequenceSpan span = sequence_span(p, b);
      const int64_t r0 = tile * positions, r1 = std::min(r0 + positions, span.q_len);
      if (r0 >= r1) return;
      const int64_t n = r1 - r0;
      Carver mine(slots.mine());
      const Slot slot = carve_slot(&mine, s);
      const KeyRange keys = rows_key_hull(p, b, span, r0, r1);
      for (int64_t g = 0; g < g_size; ++g)
        pack_rows(p, p.q, b, span.q_start, r0, n, kv * g_size + g, d, s.scale, slot.q + g * n * d,
                  d);
      score_keys(call, b, span, kv, slot.q, g_size * n, keys, slot.scores, keys.size(), slot.chunk);
      // Many kept keys per row: P V as one GEMM over the tile (the probabilities stay in the
      // score tile), else gathered V rows per row. Not with an additive mask, nor when a V row of
      // the tile holds Inf or NaN: the GEMM multiplies the zero probability of a key a row does
      // not see (or does not keep) by that row, and 0 x Inf = NaN would reach the row. The
      // gathered path reads kept keys only. (The check reads the tile's V once; the GEMM reads it
      // and does rows x more work.)
      const int64_t typical = row_budget(*call.config, keys.size());
      const bool dense_pv = !p.additive_mask.present() && typical * kDensePvRatio >= keys.size() &&
                            !v_rows_non_finite(p, b, span, kv, keys, d);
      int64_t task_kept = 0, task_visible = 0;
      for (int64_t g = 0; g < g_size; ++g)
        for (int64_t i = r0; i < r1; ++i) {
          float* logits = slot.scores + (g * n + (i - r0)) * keys.size();
          task_kept += finish_row(call, b, kv * g_size + g, span, i, keys, logits, slot, dense_pv);
          task_visible += row_visible_keys(p, b, span, i).size();
        }
      if (dense_pv) tile_pv(call, b, span, kv, r0, n, keys, slot);
      kept += task_kept;
      visible += task_visible;
    });
  });
  *density = visible > 0 ? static_cast<double>(kept) / static_cast<double>(visible) : 0.0;
}

}  // namespace qwen3vl::detail
