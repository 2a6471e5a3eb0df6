// Seeded Quest problems for the tests: a paged host cache with key bounds, filled by ragged appends
// of odd chunk sizes (keys optionally reshaped by a callback, to plant or structure them), queries,
// outputs, and a float64 attention over whatever selection Quest made.
#pragma once

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/kv_cache/quest.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl::testing {

struct QuestSpec {
  std::vector<int32_t> lens = {200};
  int64_t rows = 1, heads = 4, kv_heads = 2, head_dim = 72, block_size = 16;
  DType kv_dtype = DType::kF32, q_dtype = DType::kF32;
  uint64_t seed = 1;
  int64_t spare_pages = 1;  // block-table columns (and pool blocks per sequence) past the longest
  // Called on every new key (f32, head_dim values) of sequence b, token j, KV head g.
  std::function<void(int64_t b, int64_t j, int64_t g, float* key)> shape_key;

  int64_t batch() const { return static_cast<int64_t>(lens.size()); }
};

inline KvCacheConfig quest_cache_config(const QuestSpec& s) {
  KvCacheConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = s.batch();
  c.kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.dtype = s.kv_dtype;
  c.block_size = s.block_size;
  int64_t blocks = 0, widest = 1;
  for (int32_t l : s.lens) {
    blocks += (l + s.block_size - 1) / s.block_size;
    widest = std::max<int64_t>(widest, (l + s.block_size - 1) / s.block_size);
  }
  c.num_blocks = blocks + 3 + s.spare_pages * s.batch();  // room for forks, copy-on-write, growth
  c.max_blocks = widest + s.spare_pages;
  c.key_bounds = true;
  return c;
}

// The token source of a spec: keys and values of token j of sequence b are a pure function of
// (seed, b, j), so caches built in different chunkings hold the same data.
inline void quest_token(const QuestSpec& s, int64_t b, int64_t j, float* k, float* v) {
  for (int64_t g = 0; g < s.kv_heads; ++g) {
    for (int64_t c = 0; c < s.head_dim; ++c) {
      uint64_t x = (s.seed * 1000003u + static_cast<uint64_t>(b) * 7919u) * 2654435761u +
                   static_cast<uint64_t>((j * s.kv_heads + g) * s.head_dim + c);
      x ^= x >> 33;
      x *= 0xff51afd7ed558ccdull;
      x ^= x >> 33;
      const float u = static_cast<float>(x >> 40) / static_cast<float>(1ull << 24);  // [0, 1)
      k[g * s.head_dim + c] = 2 * u - 1;
      v[g * s.head_dim + c] = 1 - 2 * std::fmod(u * 7.0f, 1.0f);
    }
    if (s.shape_key) s.shape_key(b, j, g, k + g * s.head_dim);
  }
}

// Receives every host append (k, v [tokens, Hkv, D] f32, cu_seqlens), e.g. to repeat it on a
// device cache.
using QuestMirror =
    std::function<void(const TensorView& k, const TensorView& v, const TensorView& cu)>;

// Appends tokens [from[b], to[b]) of every sequence in one ragged append.
inline Status quest_append(KvCache& cache, const QuestSpec& s, const std::vector<int64_t>& from,
                           const std::vector<int64_t>& to, const QuestMirror& mirror = {}) {
  const int64_t row = s.kv_heads * s.head_dim;
  int64_t total = 0;
  for (size_t b = 0; b < from.size(); ++b) total += to[b] - from[b];
  Tensor k(DType::kF32, {std::max<int64_t>(total, 1), s.kv_heads, s.head_dim});
  Tensor v(DType::kF32, {std::max<int64_t>(total, 1), s.kv_heads, s.head_dim});
  Tensor cu(DType::kI32, {static_cast<int64_t>(from.size()) + 1});
  int64_t at = 0;
  cu.data<int32_t>()[0] = 0;
  for (size_t b = 0; b < from.size(); ++b) {
    for (int64_t j = from[b]; j < to[b]; ++j, ++at)
      quest_token(s, static_cast<int64_t>(b), j, k.data<float>() + at * row,
                  v.data<float>() + at * row);
    cu.data<int32_t>()[b + 1] = static_cast<int32_t>(at);
  }
  TensorView kv = k.view(), vv = v.view();
  kv.shape[0] = vv.shape[0] = total;
  if (mirror) mirror(kv, vv, cu.view());
  return cache.append(kv, vv, cu.view());
}

struct QuestProblem {
  QuestSpec spec;
  KvCacheConfig config;
  Tensor k_store, v_store, bounds, q, out, lse;
  KvCache cache;

  explicit QuestProblem(const QuestSpec& s, const QuestMirror& mirror = {})
      : spec(s), config(quest_cache_config(s)) {
    k_store = Tensor(s.kv_dtype, kv_storage_shape(config));
    v_store = Tensor(s.kv_dtype, kv_storage_shape(config));
    bounds = Tensor(DType::kF32, kv_key_bounds_shape(config));
    for (int64_t i = 0; i < k_store.numel(); ++i)
      k_store.set(i, std::numeric_limits<float>::quiet_NaN());
    throw_if_error(KvCache::create(config, k_store.view(), v_store.view(), bounds.view(), &cache));
    // Odd chunk sizes, different per sequence, so partial pages are extended many times.
    std::vector<int64_t> done(s.lens.size(), 0);
    const int64_t chunks[] = {1, 7, 23, 16, 5, 40, 3, 64, 13};
    for (int step = 0;; ++step) {
      std::vector<int64_t> to(done);
      bool more = false;
      for (size_t b = 0; b < done.size(); ++b) {
        to[b] = std::min<int64_t>(s.lens[b], done[b] + chunks[(step + 2 * b) % 9] * (1 + step / 9));
        more |= to[b] > done[b];
      }
      if (!more) break;
      throw_if_error(quest_append(cache, s, done, to, mirror));
      done = to;
    }
    q = Tensor(s.q_dtype, {s.batch(), s.rows, s.heads, s.head_dim});
    fill_uniform(q, s.seed * 5 + 3);
    out = Tensor(s.q_dtype, {s.batch(), s.rows, s.heads, s.head_dim});
    lse = Tensor(DType::kF32, {s.batch(), s.heads, s.rows});
  }

  QuestParams params(int64_t num_splits = 0) {
    QuestParams p;
    p.decode.q = q.view();
    p.decode.kv = cache.view();
    p.decode.out = out.view();
    p.decode.lse = lse.view();
    p.decode.num_splits = num_splits;
    p.key_bounds = cache.key_bounds();
    return p;
  }

  // Key channel c of token slot (block, minor) for KV head g, as stored.
  float key(int64_t block, int64_t minor, int64_t g, int64_t c) const {
    const TensorView& t = cache.k_storage();
    return load_float(t, t.offset(block, minor, g) + c);
  }
};

// Float64 attention of every query row over the tokens of a compacted selection (table row of
// `count` tokens), causal among the newest rows as decode defines it; out [rows, D] per head.
inline std::vector<double> selected_attention(const QuestProblem& p, const int32_t* table,
                                              int64_t count, int64_t b, int64_t h, int64_t r) {
  const QuestSpec& s = p.spec;
  const int64_t g = h / (s.heads / s.kv_heads), bs = s.block_size, d = s.head_dim;
  const int64_t visible = count - s.rows + r + 1;
  std::vector<double> out(static_cast<size_t>(d), 0.0);
  if (visible <= 0) return out;
  std::vector<double> score(static_cast<size_t>(visible));
  double top = -INFINITY;
  const TensorView& kt = p.cache.k_storage();
  const TensorView& vt = p.cache.v_storage();
  const TensorView qv = p.q.view();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int64_t j = 0; j < visible; ++j) {
    double dot = 0;
    for (int64_t c = 0; c < d; ++c)
      dot += static_cast<double>(load_float(qv, qv.offset(b, r, h) + c)) *
             load_float(kt, kt.offset(table[j / bs], j % bs, g) + c);
    score[static_cast<size_t>(j)] = dot * scale;
    top = std::max(top, dot * scale);
  }
  double sum = 0;
  for (int64_t j = 0; j < visible; ++j) {
    const double w = std::exp(score[static_cast<size_t>(j)] - top);
    sum += w;
    for (int64_t c = 0; c < d; ++c)
      out[static_cast<size_t>(c)] += w * load_float(vt, vt.offset(table[j / bs], j % bs, g) + c);
  }
  for (double& x : out) x /= sum;
  return out;
}

}  // namespace qwen3vl::testing
