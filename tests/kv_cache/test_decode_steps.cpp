// Decoding step by step through a KvCache equals one prefill of each whole sequence (its last
// rows), computed by the CPU standard variant: several batch sizes and lengths, 1..8 rows per step,
// both layouts, prefill from empty, and forked sequences that share a prefix and then diverge.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

struct StepSpec {
  std::vector<int32_t> prefill;  // tokens per sequence before the decode steps
  int64_t rows = 1, steps = 4;
  int64_t heads = 4, kv_heads = 2, head_dim = 64;
  DType dtype = DType::kF32;
  KvLayout layout = KvLayout::kPaged;
  int64_t block_size = 16;
  uint64_t seed = 1;
  int64_t batch() const { return static_cast<int64_t>(prefill.size()); }
};

// One sequence's whole q / k / v and its prefill output (standard attention, causal).
struct Sequence {
  Tensor q, k, v, out;
  Sequence(const StepSpec& s, int64_t len, uint64_t seed)
      : q(s.dtype, {1, len, s.heads, s.head_dim}),
        k(s.dtype, {1, len, s.kv_heads, s.head_dim}),
        v(s.dtype, {1, len, s.kv_heads, s.head_dim}),
        out(s.dtype, {1, len, s.heads, s.head_dim}) {
    fill_uniform(q, seed * 3);
    fill_uniform(k, seed * 3 + 1);
    fill_uniform(v, seed * 3 + 2);
    prefill();
  }
  // The first n tokens become those of `from` (a shared prompt); the prefill is recomputed.
  void copy_prefix(const Sequence& from, int64_t n) {
    for (Tensor* t : {&q, &k, &v}) {
      const Tensor& f = t == &q ? from.q : t == &k ? from.k : from.v;
      for (int64_t i = 0; i < n * t->size(2) * t->size(3); ++i) t->set(i, f.get(i));
    }
    prefill();
  }

 private:
  void prefill() {
    AttentionParams p;
    p.q = q.view();
    p.k = k.view();
    p.v = v.view();
    p.out = out.view();
    p.mask = MaskKind::kCausal;
    std::unique_ptr<Attention> standard;
    throw_if_error(create_standard_cpu(CpuOptions{}, &standard));
    standard->run(p);
  }
};

// Copies tokens [from, from + n) of a [1, L, H, D] tensor to token rows `at` onward of `dst`
// (any tensor whose token rows are H * D contiguous elements).
void gather(const Tensor& src, int64_t from, int64_t n, Tensor* dst, int64_t at) {
  const int64_t row = src.size(2) * src.size(3);
  for (int64_t i = 0; i < n * row; ++i) dst->set(at * row + i, src.get(from * row + i));
}

struct Harness {
  StepSpec spec;
  std::vector<Sequence> seqs;
  Tensor k_store, v_store;
  KvCache cache;
  std::unique_ptr<DecodeAttention> decode;
  double diff = 0, norm = 0;

  explicit Harness(const StepSpec& s) : spec(s) {
    const int64_t total = s.steps * s.rows;
    int64_t longest = 0;
    for (int64_t b = 0; b < s.batch(); ++b) {
      const int64_t len = s.prefill[static_cast<size_t>(b)] + total;
      seqs.emplace_back(s, len, s.seed * 100 + static_cast<uint64_t>(b));
      longest = std::max(longest, len);
    }
    KvCacheConfig c;
    c.layout = s.layout;
    c.batch = s.batch();
    c.kv_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    c.dtype = s.dtype;
    c.max_len = longest + 3;
    c.block_size = s.block_size;
    c.max_blocks = (longest + s.block_size - 1) / s.block_size + 1;
    c.num_blocks = c.max_blocks * s.batch();
    k_store = Tensor(s.dtype, kv_storage_shape(c));
    v_store = Tensor(s.dtype, kv_storage_shape(c));
    throw_if_error(KvCache::create(c, k_store.view(), v_store.view(), &cache));
    CpuOptions o;
    o.num_threads = 2;
    throw_if_error(create_decode_cpu(o, &decode));
  }

  // The prefill as one ragged append (sequences of different lengths, some possibly empty).
  void prefill() {
    int64_t tokens = 0;
    for (int32_t p : spec.prefill) tokens += p;
    Tensor k(spec.dtype, {tokens, spec.kv_heads, spec.head_dim}),
        v(spec.dtype, {tokens, spec.kv_heads, spec.head_dim});
    Tensor cu(DType::kI32, {spec.batch() + 1});
    int64_t at = 0;
    for (int64_t b = 0; b < spec.batch(); ++b) {
      const int64_t n = spec.prefill[static_cast<size_t>(b)];
      gather(seqs[static_cast<size_t>(b)].k, 0, n, &k, at);
      gather(seqs[static_cast<size_t>(b)].v, 0, n, &v, at);
      at += n;
      cu.data<int32_t>()[b + 1] = static_cast<int32_t>(at);
    }
    throw_if_error(cache.append(k, v, cu));
  }

  // One step: append `rows` tokens to every sequence, decode them, compare with the prefill rows.
  void step() {
    const int64_t b_count = spec.batch(), r = spec.rows;
    Tensor k(spec.dtype, {b_count, r, spec.kv_heads, spec.head_dim}),
        v(spec.dtype, {b_count, r, spec.kv_heads, spec.head_dim});
    Tensor q(spec.dtype, {b_count, r, spec.heads, spec.head_dim}),
        out(spec.dtype, {b_count, r, spec.heads, spec.head_dim});
    for (int64_t b = 0; b < b_count; ++b) {
      const int64_t at = cache.length(b);
      gather(seqs[static_cast<size_t>(b)].k, at, r, &k, b * r);
      gather(seqs[static_cast<size_t>(b)].v, at, r, &v, b * r);
      gather(seqs[static_cast<size_t>(b)].q, at, r, &q, b * r);
    }
    throw_if_error(cache.append(k, v));
    DecodeParams p;
    p.q = q.view();
    p.out = out.view();
    p.kv = cache.view();
    decode->run(p);
    for (int64_t b = 0; b < b_count; ++b) {
      const int64_t first = cache.length(b) - r;
      const int64_t row = spec.heads * spec.head_dim;
      for (int64_t i = 0; i < r * row; ++i) {
        const double got = out.get(b * r * row + i);
        const double want = seqs[static_cast<size_t>(b)].out.get(first * row + i);
        diff += std::isfinite(got) ? (got - want) * (got - want) : INFINITY;
        norm += want * want;
      }
    }
  }

  double error() const { return std::sqrt(diff / norm); }
};

TEST(DecodeSteps, StepByStepEqualsOnePrefill) {
  std::vector<StepSpec> specs(6);
  specs[0].prefill = {0};  // from an empty cache
  specs[0].steps = 20;
  specs[1].prefill = {5, 40, 100};
  specs[1].steps = 17;
  specs[1].dtype = DType::kF16;
  specs[2].prefill = {31, 0};
  specs[2].rows = 3;
  specs[2].steps = 6;
  specs[2].layout = KvLayout::kContiguous;
  specs[2].dtype = DType::kBF16;
  specs[3].prefill = {1, 64, 17, 250};
  specs[3].rows = 8;
  specs[3].steps = 3;
  specs[3].block_size = 32;
  specs[3].heads = 8;
  specs[3].head_dim = 72;
  specs[4].prefill = {300};
  specs[4].rows = 2;
  specs[4].steps = 5;
  specs[4].block_size = 256;
  specs[4].heads = 6;
  specs[4].kv_heads = 1;
  specs[4].head_dim = 128;
  specs[5].prefill = {700, 3};
  specs[5].rows = 4;
  specs[5].steps = 4;
  specs[5].heads = 32;
  specs[5].kv_heads = 8;
  specs[5].head_dim = 80;
  specs[5].layout = KvLayout::kContiguous;
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].seed = 40 + i;
    Harness h(specs[i]);
    h.prefill();
    for (int64_t s = 0; s < specs[i].steps; ++s) h.step();
    EXPECT_LE(h.error(), testing::tolerance(specs[i].dtype)) << "spec " << i;
  }
}

// Sequence 0 is prefilled, forked into 1 and 2 (shared blocks, shared partial last block), and
// then all three decode different tokens: each must equal the prefill of its own whole sequence.
TEST(DecodeSteps, ForkedSequencesDecodeLikeTheirOwnPrefill) {
  StepSpec s;
  s.prefill = {45, 45, 45};  // 45 % 16 != 0: the last prefix block is partial
  s.steps = 6;
  s.rows = 2;
  s.dtype = DType::kF16;
  Harness h(s);
  h.seqs[1].copy_prefix(h.seqs[0], 45);
  h.seqs[2].copy_prefix(h.seqs[0], 45);
  // Prefill only sequence 0, then fork it.
  Tensor k(s.dtype, {45, s.kv_heads, s.head_dim}), v(s.dtype, {45, s.kv_heads, s.head_dim});
  gather(h.seqs[0].k, 0, 45, &k, 0);
  gather(h.seqs[0].v, 0, 45, &v, 0);
  Tensor cu(DType::kI32, {4});
  const int32_t offsets[] = {0, 45, 45, 45};
  std::memcpy(cu.data<int32_t>(), offsets, sizeof offsets);
  throw_if_error(h.cache.append(k, v, cu));
  throw_if_error(h.cache.fork(0, 1));
  throw_if_error(h.cache.fork(0, 2));
  EXPECT_EQ(h.cache.allocator().used_count(), 3);  // 45 tokens: 3 blocks, all shared
  for (int64_t step = 0; step < s.steps; ++step) h.step();
  EXPECT_LE(h.error(), testing::tolerance(s.dtype));
  // 2 shared full blocks, the partial one copied by two sequences and kept by the third, and
  // one more block each.
  EXPECT_EQ(h.cache.allocator().used_count(), 2 + 3 + 3);
}

}  // namespace
}  // namespace qwen3vl
