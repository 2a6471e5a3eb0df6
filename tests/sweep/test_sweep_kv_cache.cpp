// Differential sweep, decode through a KvCache filled the way a server fills it: random ragged and
// uniform appends (f32 sources converted to a half cache, or the cache's own dtype), a forked
// prompt prefix that both sequences then extend (copy-on-write of the shared partial block),
// both layouts; then 1..8 new rows decoded on every ISA against the float64 oracle of the dense
// problem holding the same (converted) keys and values.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/cpu_variants.hpp"
#include "sweep/random_problems.hpp"
#include "sweep/sweep_checks.hpp"

namespace qwen3vl::testing::sweep {
namespace {

struct CacheCase {
  KvCacheConfig config;
  DType source = DType::kF32, q_dtype = DType::kF32;
  int64_t heads = 1, rows = 1,
          prefix = 0;           // prefix > 0: sequence 1 forks sequence 0's first tokens
  std::vector<int64_t> target;  // tokens per sequence at the end

  std::string label() const {
    std::string s = std::string(to_string(config.layout)) + " B" + std::to_string(config.batch) +
                    " H" + std::to_string(heads) + "/" + std::to_string(config.kv_heads) + " D" +
                    std::to_string(config.head_dim) + " cache " + to_string(config.dtype) +
                    " source " + to_string(source) + " q " + to_string(q_dtype) + " R" +
                    std::to_string(rows) + " lens";
    for (int64_t t : target) s += " " + std::to_string(t);
    if (config.layout == KvLayout::kPaged) s += " bs" + std::to_string(config.block_size);
    if (prefix) s += " fork prefix " + std::to_string(prefix);
    return s;
  }
};

CacheCase draw_cache_case(Rng& r) {
  CacheCase c;
  KvCacheConfig& k = c.config;
  k.layout = r.chance(0.5) ? KvLayout::kPaged : KvLayout::kContiguous;
  k.batch = r.range(1, 3);
  ProblemSpec heads;
  draw_heads(r, &heads);
  c.heads = heads.heads;
  k.kv_heads = heads.kv_heads;
  k.head_dim = draw_head_dim(r);
  k.dtype = r.pick(std::vector<DType>{DType::kF32, DType::kF16, DType::kF16, DType::kBF16});
  c.source = r.chance(0.5) ? DType::kF32 : k.dtype;
  c.q_dtype = r.chance(0.3) ? DType::kF32 : k.dtype;
  c.rows = r.range(1, kMaxDecodeRows);
  k.block_size = r.pick(std::vector<int64_t>{16, 16, 32, 48, 64});
  for (int64_t b = 0; b < k.batch; ++b)
    c.target.push_back(r.chance(0.1) ? r.range(0, 3) : draw_length(r, 250));
  if (k.batch >= 2 && r.chance(0.4)) {
    c.prefix = r.range(1, 100);
    c.target[0] = std::max(c.target[0], c.prefix);
    c.target[1] = std::max(c.target[1], c.prefix);
  }
  const int64_t longest = *std::max_element(c.target.begin(), c.target.end());
  k.max_len = std::max<int64_t>(1, longest + r.range(0, 5));  // a cache holds at least one token
  k.max_blocks = std::max<int64_t>(1, (longest + k.block_size - 1) / k.block_size + r.range(0, 1));
  k.num_blocks = k.max_blocks * k.batch + 1;  // enough for every sequence's own blocks
  return c;
}

// The case's cache, its storage, and every sequence's tokens as appended (in the source dtype's
// values, Hkv x D floats per token, K then V).
struct FilledCache {
  Tensor k_store, v_store;
  KvCache cache;
  std::vector<std::vector<float>> k, v;
};

// Appends random tokens: ragged (some sequences 0) or one [B, T] block for all, until every
// sequence holds its target; the fork first when the case has one.
void fill(const CacheCase& c, Rng& r, FilledCache* f) {
  const KvCacheConfig& cfg = c.config;
  const int64_t row = cfg.kv_heads * cfg.head_dim, batch = cfg.batch;
  f->k_store = Tensor(cfg.dtype, kv_storage_shape(cfg));
  f->v_store = Tensor(cfg.dtype, kv_storage_shape(cfg));
  throw_if_error(KvCache::create(cfg, f->k_store.view(), f->v_store.view(), &f->cache));
  f->k.assign(static_cast<size_t>(batch), {});
  f->v.assign(static_cast<size_t>(batch), {});
  const auto append = [&](const std::vector<int64_t>& counts, bool uniform) {
    int64_t tokens = 0;
    for (int64_t n : counts) tokens += n;
    Tensor k = uniform ? Tensor(c.source, {batch, counts[0], cfg.kv_heads, cfg.head_dim})
                       : Tensor(c.source, {tokens, cfg.kv_heads, cfg.head_dim});
    Tensor v(c.source, std::vector<int64_t>(k.view().shape, k.view().shape + k.view().rank));
    fill_uniform(k, r.next());
    fill_uniform(v, r.next());
    Tensor cu(DType::kI32, {batch + 1});
    int64_t at = 0;
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = at * row; i < (at + counts[static_cast<size_t>(b)]) * row; ++i) {
        f->k[static_cast<size_t>(b)].push_back(k.get(i));
        f->v[static_cast<size_t>(b)].push_back(v.get(i));
      }
      at += counts[static_cast<size_t>(b)];
      cu.data<int32_t>()[b + 1] = static_cast<int32_t>(at);
    }
    throw_if_error(f->cache.append(k, v, uniform ? TensorView() : cu.view()));
  };
  if (c.prefix) {
    std::vector<int64_t> counts(static_cast<size_t>(batch), 0);
    counts[0] = c.prefix;
    append(counts, false);
    throw_if_error(f->cache.fork(0, 1));
    f->k[1] = f->k[0];
    f->v[1] = f->v[0];
  }
  for (;;) {
    std::vector<int64_t> left;
    for (int64_t b = 0; b < batch; ++b)
      left.push_back(c.target[static_cast<size_t>(b)] - f->cache.length(b));
    const int64_t most = *std::max_element(left.begin(), left.end());
    if (most == 0) return;
    const int64_t fewest = *std::min_element(left.begin(), left.end());
    if (fewest > 0 && r.chance(0.4)) {
      append(std::vector<int64_t>(static_cast<size_t>(batch),
                                  r.range(1, std::min<int64_t>(fewest, 40))),
             true);
      continue;
    }
    std::vector<int64_t> counts;
    for (int64_t n : left)
      counts.push_back(n == 0 || r.chance(0.2) ? 0 : r.range(1, std::min<int64_t>(n, 70)));
    append(counts, false);
  }
}

TEST(Sweep, DecodeThroughKvCache) {
  run_family("DecodeThroughKvCache", 10000000, 500, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    const CacheCase cc = draw_cache_case(r);
    const int64_t splits = r.chance(0.5) ? 0 : r.range(1, 5);
    c.describe(cc.label() + " splits " + std::to_string(splits) + " threads " +
               std::to_string(threads));
    FilledCache f;
    fill(cc, r, &f);
    const KvCacheConfig& cfg = cc.config;
    const int64_t batch = cfg.batch, row = cfg.kv_heads * cfg.head_dim;
    for (int64_t b = 0; b < batch; ++b)
      ASSERT_EQ(f.cache.length(b), cc.target[static_cast<size_t>(b)]);

    // The dense problem: the tokens rounded to the cache's dtype, held in q's dtype (exact).
    const int64_t longest =
        std::max<int64_t>(1, *std::max_element(cc.target.begin(), cc.target.end()));
    Tensor k_dense(cc.q_dtype, {batch, longest, cfg.kv_heads, cfg.head_dim});
    Tensor v_dense(cc.q_dtype, {batch, longest, cfg.kv_heads, cfg.head_dim});
    Tensor rounded(cfg.dtype, {1});
    const auto to_cache = [&](float x) {
      rounded.set(0, x);
      return rounded.get(0);
    };
    for (int64_t b = 0; b < batch; ++b)
      for (size_t i = 0; i < f.k[static_cast<size_t>(b)].size(); ++i) {
        k_dense.set(b * longest * row + static_cast<int64_t>(i),
                    to_cache(f.k[static_cast<size_t>(b)][i]));
        v_dense.set(b * longest * row + static_cast<int64_t>(i),
                    to_cache(f.v[static_cast<size_t>(b)][i]));
      }
    Tensor q(cc.q_dtype, {batch, cc.rows, cc.heads, cfg.head_dim});
    Tensor out(cc.q_dtype, {batch, cc.rows, cc.heads, cfg.head_dim});
    Tensor lse(DType::kF32, {batch, cc.heads, cc.rows});
    Tensor lens(DType::kI32, {batch});
    fill_uniform(q, r.next());
    for (int64_t b = 0; b < batch; ++b)
      lens.data<int32_t>()[b] = static_cast<int32_t>(cc.target[static_cast<size_t>(b)]);
    DecodeParams p;
    p.q = q.view();
    p.out = out.view();
    p.lse = lse.view();
    p.kv = f.cache.view();
    p.num_splits = splits;
    AttentionParams dense;
    dense.q = q.view();
    dense.k = k_dense.view();
    dense.v = v_dense.view();
    dense.out = out.view();
    dense.lse = lse.view();
    dense.mask = MaskKind::kCausal;
    dense.key_lengths = lens.view();
    const reference::Result ref = reference::attention(dense);
    for (CpuIsa isa : runnable_isas()) {
      std::unique_ptr<DecodeAttention> dec;
      throw_if_error(create_decode_cpu(cpu_options(isa, threads), &dec));
      const Status ok = dec->supports(p);
      ASSERT_TRUE(ok.ok()) << to_string(isa) << ": supports() refused: " << ok.to_string();
      for (Tensor* t : {&out, &lse})
        for (int64_t i = 0; i < t->numel(); ++i) t->set(i, std::numeric_limits<float>::quiet_NaN());
      dec->run(p);
      ++c.runs;
      EXPECT_LE(relative_error(dense, ref), tolerance(cc.q_dtype)) << to_string(isa) << ": output";
      EXPECT_LE(lse_max_error(dense, ref, /*relative_to_size=*/true),
                cc.q_dtype == DType::kF32 ? 2e-5 : 1e-3)
          << to_string(isa) << ": lse";
    }
  });
}

}  // namespace
}  // namespace qwen3vl::testing::sweep
