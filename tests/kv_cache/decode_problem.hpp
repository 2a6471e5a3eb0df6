// Seeded decode problems for the KV-cache tests: random queries, per-sequence keys and values laid
// into a contiguous or paged cache (blocks in shuffled order, unused slots filled with NaN), and
// the equivalent dense AttentionParams for the float64 reference (causal, bottom-right aligned,
// key_lengths = the sequence lengths). The dense params point at the decode output and LSE, so
// testing::relative_error / lse_max_error compare the decode result directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

struct DecodeSpec {
  std::vector<int32_t> lens = {37};  // keys per sequence (the new rows' keys included)
  int64_t rows = 1, heads = 4, kv_heads = 2, head_dim = 64;
  DType kv_dtype = DType::kF32;
  DType q_dtype = DType::kF32;  // kv_dtype, or f32 (dense keys then hold the cached values exactly)
  KvLayout layout = KvLayout::kPaged;
  int64_t block_size = 16;
  bool shuffle_blocks = true;  // non-monotonic block tables
  bool nan_outside = true;     // NaN in every slot past a sequence's length
  bool bhsd_q = false;         // q / out as [B, Hq, R, D] memory seen through strides
  int64_t num_splits = 0;
  std::optional<float> scale;
  uint64_t seed = 1;

  int64_t batch() const { return static_cast<int64_t>(lens.size()); }
  int64_t max_len() const { return lens.empty() ? 0 : *std::max_element(lens.begin(), lens.end()); }
  std::string to_string() const {
    std::string s =
        std::string(qwen3vl::to_string(layout)) + " B" + std::to_string(batch()) + " lens";
    for (int32_t l : lens) s += " " + std::to_string(l);
    s += " R" + std::to_string(rows) + " H" + std::to_string(heads) + "/" +
         std::to_string(kv_heads) + " D" + std::to_string(head_dim) + " kv " +
         qwen3vl::to_string(kv_dtype) + " q " + qwen3vl::to_string(q_dtype);
    if (layout == KvLayout::kPaged) s += " bs" + std::to_string(block_size);
    if (bhsd_q) s += " bhsd";
    return s + " splits " + std::to_string(num_splits) + " seed " + std::to_string(seed);
  }
};

struct DecodeProblem {
  DecodeSpec spec;
  Tensor q, out, lse, k_dense, v_dense, lens, table, k_store, v_store;
  DecodeParams params;
  AttentionParams dense;
  reference::Result reference;  // filled by decode_errors()

  explicit DecodeProblem(const DecodeSpec& s) : spec(s) {
    const int64_t b = s.batch(), d = s.head_dim, hkv = s.kv_heads, max_len = s.max_len();
    const int64_t dense_len = std::max<int64_t>(max_len, 1);
    if (s.bhsd_q) {
      q = Tensor(s.q_dtype, {b, s.heads, s.rows, d});
      out = Tensor(s.q_dtype, {b, s.heads, s.rows, d});
    } else {
      q = Tensor(s.q_dtype, {b, s.rows, s.heads, d});
      out = Tensor(s.q_dtype, {b, s.rows, s.heads, d});
    }
    fill_uniform(q, s.seed * 8 + 1);
    for (int64_t i = 0; i < out.numel(); ++i) out.set(i, std::numeric_limits<float>::quiet_NaN());
    lse = Tensor(DType::kF32, {b, s.heads, s.rows});
    k_dense = Tensor(s.kv_dtype, {b, dense_len, hkv, d});
    v_dense = Tensor(s.kv_dtype, {b, dense_len, hkv, d});
    fill_uniform(k_dense, s.seed * 8 + 2);
    fill_uniform(v_dense, s.seed * 8 + 3);
    lens = Tensor(DType::kI32, {b});
    for (int64_t i = 0; i < b; ++i) lens.data<int32_t>()[i] = s.lens[static_cast<size_t>(i)];

    const float nan = std::numeric_limits<float>::quiet_NaN();
    const int64_t row = hkv * d;  // elements per token
    if (s.layout == KvLayout::kContiguous) {
      const int64_t cap = max_len + 5;
      k_store = Tensor(s.kv_dtype, {b, cap, hkv, d});
      v_store = Tensor(s.kv_dtype, {b, cap, hkv, d});
      for (int64_t i = 0; i < k_store.numel(); ++i) {
        k_store.set(i, nan);
        v_store.set(i, nan);
      }
      for (int64_t seq = 0; seq < b; ++seq)
        for (int64_t j = 0; j < s.lens[static_cast<size_t>(seq)]; ++j)
          copy_token(seq * dense_len + j, seq * cap + j, row);
      if (!s.nan_outside) zero_outside(cap);
    } else {
      const int64_t bs = s.block_size;
      int64_t max_blocks = 1, used = 0;
      for (int32_t l : s.lens) {
        max_blocks = std::max<int64_t>(max_blocks, (l + bs - 1) / bs);
        used += (l + bs - 1) / bs;
      }
      const int64_t pool = used + 3;  // spare blocks, never referenced
      k_store = Tensor(s.kv_dtype, {pool, bs, hkv, d});
      v_store = Tensor(s.kv_dtype, {pool, bs, hkv, d});
      for (int64_t i = 0; i < k_store.numel(); ++i) {
        k_store.set(i, s.nan_outside ? nan : 0.0f);
        v_store.set(i, s.nan_outside ? nan : 0.0f);
      }
      std::vector<int32_t> ids(static_cast<size_t>(pool));
      std::iota(ids.begin(), ids.end(), 0);
      if (s.shuffle_blocks) std::shuffle(ids.begin(), ids.end(), std::mt19937_64(s.seed));
      table = Tensor(DType::kI32, {b, max_blocks + 2});
      for (int64_t i = 0; i < table.numel(); ++i) table.data<int32_t>()[i] = -7;  // never read
      size_t next = 0;
      for (int64_t seq = 0; seq < b; ++seq)
        for (int64_t j = 0; j < s.lens[static_cast<size_t>(seq)]; ++j) {
          if (j % bs == 0) table.data<int32_t>()[seq * (max_blocks + 2) + j / bs] = ids[next++];
          const int64_t blk = table.data<int32_t>()[seq * (max_blocks + 2) + j / bs];
          copy_token(seq * dense_len + j, blk * bs + j % bs, row);
        }
      params.kv.block_table = table.view();
    }
    params.kv.layout = s.layout;
    params.kv.k = k_store.view();
    params.kv.v = v_store.view();
    params.kv.seq_lens = lens.view();
    params.kv.max_seq_len = max_len;
    params.q = s.bhsd_q ? q.view().transposed(1, 2) : q.view();
    params.out = s.bhsd_q ? out.view().transposed(1, 2) : out.view();
    params.lse = lse.view();
    params.scale = s.scale;
    params.num_splits = s.num_splits;

    // The dense equivalent, in q's dtype (exact: q is f32 or the cache's dtype).
    Tensor kd(s.q_dtype, {b, dense_len, hkv, d}), vd(s.q_dtype, {b, dense_len, hkv, d});
    for (int64_t i = 0; i < kd.numel(); ++i) {
      kd.set(i, k_dense.get(i));
      vd.set(i, v_dense.get(i));
    }
    k_dense = std::move(kd);
    v_dense = std::move(vd);
    dense.q = params.q;
    dense.k = k_dense.view();
    dense.v = v_dense.view();
    dense.out = params.out;
    dense.lse = lse.view();
    dense.mask = MaskKind::kCausal;
    dense.key_lengths = lens.view();
    dense.scale = s.scale;
  }

 private:
  // Token `src` of the dense tensors into storage token `dst` (all heads).
  void copy_token(int64_t src, int64_t dst, int64_t row) {
    for (int64_t c = 0; c < row; ++c) {
      k_store.set(dst * row + c, k_dense.get(src * row + c));
      v_store.set(dst * row + c, v_dense.get(src * row + c));
    }
  }
  void zero_outside(int64_t cap) {
    const int64_t row = spec.kv_heads * spec.head_dim;
    for (int64_t seq = 0; seq < spec.batch(); ++seq)
      for (int64_t j = spec.lens[static_cast<size_t>(seq)]; j < cap; ++j)
        for (int64_t c = 0; c < row; ++c) {
          k_store.set((seq * cap + j) * row + c, 0.0f);
          v_store.set((seq * cap + j) * row + c, 0.0f);
        }
  }
};

// ||a - b|| / ||b|| of two decode results; equal infinities (the -inf LSE of an empty row) count
// as equal, any other non-finite value of a as an infinite difference.
inline double relative_diff(const Tensor& a, const Tensor& b) {
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.get(i), y = b.get(i);
    if (!std::isfinite(x) && !(std::isinf(y) && x == y)) return INFINITY;
    if (std::isinf(y) && x == y) continue;
    diff += (x - y) * (x - y);
    norm += y * y;
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Relative error of the decode output against the float64 reference (+inf on NaN), and the LSE's
// largest absolute error. The reference is computed once per problem.
struct DecodeErrors {
  double out, lse;
};
inline DecodeErrors decode_errors(DecodeProblem& p) {
  if (p.reference.out.empty()) p.reference = reference::attention(p.dense);
  return DecodeErrors{relative_error(p.dense, p.reference), lse_max_error(p.dense, p.reference)};
}

}  // namespace qwen3vl::testing
