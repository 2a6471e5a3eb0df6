// Seeded append-attention problems: ragged new rows (0 to hundreds a sequence) over cached pasts of
// random lengths, laid into a contiguous or paged cache (blocks in shuffled order, NaN in every
// unused slot), optionally with shared-prefix groups whose first blocks are the same blocks in
// every member's table row. The dense varlen equivalent (causal, bottom-right) feeds the float64
// reference; it points at the append output and LSE, so relative_error / lse_max_error compare
// them directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/append.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

struct PrefixGroupSpec {
  int32_t first, end, shared;
};

struct AppendSpec {
  std::vector<int32_t> past = {40};  // cached tokens before the new rows, per sequence
  std::vector<int32_t> rows = {9};   // new rows per sequence
  std::vector<PrefixGroupSpec> groups;
  std::vector<int32_t> parents;  // non-empty: tree_parents, one per new row
  int64_t window = 0, sinks = 0;
  bool evict = false;  // paged: blocks no row sees are -1 in the table and NaN in storage
  int64_t heads = 4, kv_heads = 2, head_dim = 64;
  DType kv_dtype = DType::kF32;
  DType q_dtype = DType::kF32;  // kv_dtype, or f32
  KvLayout layout = KvLayout::kPaged;
  int64_t block_size = 16;
  uint64_t seed = 1;

  int64_t batch() const { return static_cast<int64_t>(past.size()); }
  int32_t len(int64_t b) const {
    return past[static_cast<size_t>(b)] + rows[static_cast<size_t>(b)];
  }
  int64_t tokens() const { return std::accumulate(rows.begin(), rows.end(), int64_t{0}); }
  std::string to_string() const {
    std::string s = std::string(qwen3vl::to_string(layout)) + " (past, rows)";
    for (int64_t b = 0; b < batch(); ++b)
      s += " (" + std::to_string(past[static_cast<size_t>(b)]) + "," +
           std::to_string(rows[static_cast<size_t>(b)]) + ")";
    for (const PrefixGroupSpec& g : groups)
      s += " group[" + std::to_string(g.first) + "," + std::to_string(g.end) + ")/" +
           std::to_string(g.shared);
    return s + " H" + std::to_string(heads) + "/" + std::to_string(kv_heads) + " D" +
           std::to_string(head_dim) + " kv " + qwen3vl::to_string(kv_dtype) + " q " +
           qwen3vl::to_string(q_dtype) + " bs" + std::to_string(block_size) + " seed " +
           std::to_string(seed);
  }
};

struct AppendProblem {
  AppendSpec spec;
  Tensor q, out, lse, k_dense, v_dense, cu_q, cu_k, lens, table, groups, parents, k_store, v_store;
  AppendParams params;
  AttentionParams dense;
  reference::Result reference;

  explicit AppendProblem(const AppendSpec& s) : spec(s) {
    const int64_t b_count = s.batch(), d = s.head_dim, hkv = s.kv_heads, row = hkv * d;
    const int64_t tq = s.tokens();
    int64_t tk = 0, max_len = 1;
    for (int64_t b = 0; b < b_count; ++b) {
      tk += s.len(b);
      max_len = std::max<int64_t>(max_len, s.len(b));
    }
    q = Tensor(s.q_dtype, {tq, s.heads, d});
    out = Tensor(s.q_dtype, {tq, s.heads, d});
    lse = Tensor(DType::kF32, {s.heads, tq});
    fill_uniform(q, s.seed * 8 + 1);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t i = 0; i < out.numel(); ++i) out.set(i, nan);
    for (int64_t i = 0; i < lse.numel(); ++i) lse.set(i, nan);
    k_dense = Tensor(s.kv_dtype, {std::max<int64_t>(tk, 1), hkv, d});
    v_dense = Tensor(s.kv_dtype, {std::max<int64_t>(tk, 1), hkv, d});
    fill_uniform(k_dense, s.seed * 8 + 2);
    fill_uniform(v_dense, s.seed * 8 + 3);
    cu_q = Tensor(DType::kI32, {b_count + 1});
    cu_k = Tensor(DType::kI32, {b_count + 1});
    lens = Tensor(DType::kI32, {b_count});
    cu_q.data<int32_t>()[0] = cu_k.data<int32_t>()[0] = 0;
    for (int64_t b = 0; b < b_count; ++b) {
      cu_q.data<int32_t>()[b + 1] = cu_q.data<int32_t>()[b] + s.rows[static_cast<size_t>(b)];
      cu_k.data<int32_t>()[b + 1] = cu_k.data<int32_t>()[b] + s.len(b);
      lens.data<int32_t>()[b] = s.len(b);
    }
    const auto dense_row = [&](int64_t b, int64_t j) { return cu_k.data<int32_t>()[b] + j; };

    if (s.layout == KvLayout::kContiguous) {
      const int64_t cap = max_len + 3;
      k_store = Tensor(s.kv_dtype, {b_count, cap, hkv, d});
      v_store = Tensor(s.kv_dtype, {b_count, cap, hkv, d});
      for (int64_t i = 0; i < k_store.numel(); ++i) k_store.set(i, nan), v_store.set(i, nan);
      for (int64_t b = 0; b < b_count; ++b)
        for (int64_t j = 0; j < s.len(b); ++j) copy_token(dense_row(b, j), b * cap + j, row);
    } else {
      const int64_t bs = s.block_size;
      int64_t max_blocks = 1, used = 0;
      for (int64_t b = 0; b < b_count; ++b) {
        max_blocks = std::max<int64_t>(max_blocks, (s.len(b) + bs - 1) / bs);
        used += (s.len(b) + bs - 1) / bs;
      }
      const int64_t pool = used + 2;
      k_store = Tensor(s.kv_dtype, {pool, bs, hkv, d});
      v_store = Tensor(s.kv_dtype, {pool, bs, hkv, d});
      for (int64_t i = 0; i < k_store.numel(); ++i) k_store.set(i, nan), v_store.set(i, nan);
      std::vector<int32_t> ids(static_cast<size_t>(pool));
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), std::mt19937_64(s.seed));
      const int64_t cols = max_blocks + 1;
      table = Tensor(DType::kI32, {b_count, cols});
      for (int64_t i = 0; i < table.numel(); ++i) table.data<int32_t>()[i] = -3;  // never read
      int32_t* t = table.data<int32_t>();
      size_t next = 0;
      // The group's first member writes its blocks; later members take the blocks holding the
      // shared keys from it, and their dense keys there become the stored ones.
      std::vector<int64_t> owner(static_cast<size_t>(b_count), -1);
      std::vector<int64_t> shared_blocks(static_cast<size_t>(b_count), 0);
      for (const PrefixGroupSpec& g : s.groups)
        for (int64_t b = g.first + 1; b < g.end; ++b) {
          owner[static_cast<size_t>(b)] = g.first;
          shared_blocks[static_cast<size_t>(b)] = (g.shared + bs - 1) / bs;
        }
      for (int64_t b = 0; b < b_count; ++b) {
        const int64_t from = owner[static_cast<size_t>(b)];
        for (int64_t j = 0; j < s.len(b); ++j) {
          const int64_t blk = j / bs;
          if (j % bs == 0)
            t[b * cols + blk] =
                blk < shared_blocks[static_cast<size_t>(b)] ? t[from * cols + blk] : ids[next++];
          const int64_t slot = t[b * cols + blk] * bs + j % bs;
          if (blk < shared_blocks[static_cast<size_t>(b)]) {
            if (std::isnan(k_store.get(slot * row)))  // past the owner's keys: this one writes
              copy_token(dense_row(b, j), slot, row);
            for (int64_t c = 0; c < row; ++c) {  // the dense keys are what the block holds
              k_dense.set(dense_row(b, j) * row + c, k_store.get(slot * row + c));
              v_dense.set(dense_row(b, j) * row + c, v_store.get(slot * row + c));
            }
          } else {
            copy_token(dense_row(b, j), slot, row);
          }
        }
      }
      params.kv.block_table = table.view();
    }
    if (!s.groups.empty()) {
      groups = Tensor(DType::kI32, {static_cast<int64_t>(s.groups.size()), 3});
      for (size_t g = 0; g < s.groups.size(); ++g) {
        groups.data<int32_t>()[g * 3] = s.groups[g].first;
        groups.data<int32_t>()[g * 3 + 1] = s.groups[g].end;
        groups.data<int32_t>()[g * 3 + 2] = s.groups[g].shared;
      }
      params.prefix_groups = groups.view();
    }
    if (!s.parents.empty()) {
      parents = Tensor(DType::kI32, {static_cast<int64_t>(s.parents.size())});
      std::copy(s.parents.begin(), s.parents.end(), parents.data<int32_t>());
      params.tree_parents = parents.view();
    }
    params.window = s.window;
    params.sinks = s.sinks;
    if (s.evict && s.layout == KvLayout::kPaged) evict_unseen();
    params.kv.layout = s.layout;
    params.kv.k = k_store.view();
    params.kv.v = v_store.view();
    params.kv.seq_lens = lens.view();
    params.q = q.view();
    params.out = out.view();
    params.lse = lse.view();
    params.cu_seqlens = cu_q.view();

    const std::vector<int64_t> dense_shape = {k_dense.size(0), hkv, d};
    Tensor kd(s.q_dtype, dense_shape), vd(s.q_dtype, dense_shape);
    for (int64_t i = 0; i < kd.numel(); ++i) {
      kd.set(i, k_dense.get(i));
      vd.set(i, v_dense.get(i));
    }
    dense.q = params.q;
    dense_k = std::move(kd);
    dense_v = std::move(vd);
    dense.k = dense_k.view();
    dense.v = dense_v.view();
    dense.out = params.out;
    dense.lse = params.lse;
    dense.mask = MaskKind::kCausal;
    dense.cu_seqlens_q = cu_q.view();
    dense.cu_seqlens_k = cu_k.view();
  }

  // With tree parents: the float64 result of every new row against the past keys, itself and its
  // ancestors, computed here (the reference has no trees); the same two errors.
  std::pair<double, double> tree_errors() const {
    return oracle_errors([&](int64_t q0, int64_t i, int64_t past) {
      std::vector<int64_t> keys;
      for (int64_t j = 0; j < past; ++j) keys.push_back(j);
      for (int64_t j = i; j >= 0; j = spec.parents[static_cast<size_t>(q0 + j)])
        keys.push_back(past + j);
      return keys;
    });
  }
  // With a window and sinks: row i (position past + i) sees its window and the first sinks keys.
  std::pair<double, double> window_errors() const {
    return oracle_errors([&](int64_t, int64_t i, int64_t past) {
      std::vector<int64_t> keys;
      const int64_t p = past + i, start = std::max<int64_t>(0, p - spec.window + 1);
      for (int64_t j = 0; j <= p; ++j)
        if (j >= start || j < spec.sinks) keys.push_back(j);
      return keys;
    });
  }
  // The float64 result of every new row over the keys keys_of(first row of its sequence, row
  // index in the sequence, past length) lists; out's relative error and the LSE's largest error.
  std::pair<double, double> oracle_errors(
      const std::function<std::vector<int64_t>(int64_t, int64_t, int64_t)>& keys_of) const {
    const int64_t d = spec.head_dim, group = spec.heads / spec.kv_heads;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    double diff = 0, norm = 0, lse_worst = 0;
    for (int64_t b = 0; b < spec.batch(); ++b) {
      const int64_t q0 = cu_q.data<int32_t>()[b], rows = spec.rows[static_cast<size_t>(b)];
      const int64_t past = spec.past[static_cast<size_t>(b)], k0 = cu_k.data<int32_t>()[b];
      for (int64_t i = 0; i < rows; ++i) {
        const std::vector<int64_t> keys = keys_of(q0, i, past);
        for (int64_t h = 0; h < spec.heads; ++h) {
          const int64_t kvh = h / group;
          std::vector<double> sc;
          double top = -INFINITY;
          for (int64_t key : keys) {
            double x = 0;
            for (int64_t c = 0; c < d; ++c)
              x += static_cast<double>(q.get(((q0 + i) * spec.heads + h) * d + c)) *
                   dense_k.get(((k0 + key) * spec.kv_heads + kvh) * d + c);
            sc.push_back(x * scale);
            top = std::max(top, x * scale);
          }
          double sum = 0;
          std::vector<double> o(static_cast<size_t>(d), 0.0);
          for (size_t n = 0; n < keys.size(); ++n) {
            const double w = std::exp(sc[n] - top);
            sum += w;
            for (int64_t c = 0; c < d; ++c)
              o[static_cast<size_t>(c)] +=
                  w * dense_v.get(((k0 + keys[n]) * spec.kv_heads + kvh) * d + c);
          }
          for (int64_t c = 0; c < d; ++c) {
            const double want = o[static_cast<size_t>(c)] / sum;
            const double got = out.get(((q0 + i) * spec.heads + h) * d + c);
            if (!std::isfinite(got)) return {INFINITY, INFINITY};
            diff += (got - want) * (got - want);
            norm += want * want;
          }
          lse_worst = std::max(lse_worst,
                               std::abs(lse.get(h * lse.size(1) + q0 + i) - (top + std::log(sum))));
        }
      }
    }
    return {norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff), lse_worst};
  }

  // Relative error of out against the float64 reference, and the LSE's largest absolute error.
  std::pair<double, double> errors() {
    if (reference.out.empty()) reference = reference::attention(dense);
    return {relative_error(dense, reference), lse_max_error(dense, reference)};
  }

 private:
  Tensor dense_k, dense_v;
  // Blocks holding no key any new row sees (outside every row's window and the sinks): -1 in the
  // table, NaN in storage, as KvPageTable::evict_outside_window leaves them.
  void evict_unseen() {
    const int64_t bs = spec.block_size, cols = table.size(1), row = spec.kv_heads * spec.head_dim;
    for (int64_t b = 0; b < spec.batch(); ++b) {
      const int64_t lo = std::max<int64_t>(0, spec.past[static_cast<size_t>(b)] - spec.window + 1);
      for (int64_t i = (spec.sinks + bs - 1) / bs; (i + 1) * bs <= lo; ++i) {
        int32_t& id = table.data<int32_t>()[b * cols + i];
        for (int64_t t = id * bs * row; t < (id + 1) * bs * row; ++t) {
          k_store.set(t, std::numeric_limits<float>::quiet_NaN());
          v_store.set(t, std::numeric_limits<float>::quiet_NaN());
        }
        id = -1;
      }
    }
  }
  void copy_token(int64_t src, int64_t dst, int64_t row) {
    for (int64_t c = 0; c < row; ++c) {
      k_store.set(dst * row + c, k_dense.get(src * row + c));
      v_store.set(dst * row + c, v_dense.get(src * row + c));
    }
  }
};

}  // namespace qwen3vl::testing
