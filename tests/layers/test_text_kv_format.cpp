// Qwen3VLTextAttention over compressed KV caches (LayerOptions::kv_format): transformers'
// fixtures prefilled, then decoded token by token over an int8 / int4 / fp8 cache, against the
// same steps over an f16 cache (the library's default) and against transformers' float64 output.
// int8 must stay within 1e-2 relative error (over the decoded rows) of the f16 cache's output,
// with its fp32 Q.K (the default) and with the integer one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "layer_support.hpp"

namespace qwen3vl {
namespace {

// The fixture with two decode threads.
struct Fixture : testing::TextFixtureCase {
  explicit Fixture(const std::string& n) : TextFixtureCase(n) {
    config.options.cpu.num_threads = 2;
  }
};

struct Cache {
  Tensor k, v, ks, vs;
  KvCache cache;
  Cache(const Fixture& f, KvFormat format, KvLayout layout) {
    KvCacheConfig c;
    c.layout = layout;
    c.batch = f.hidden.view().shape[0];
    c.kv_heads = f.config.num_kv_heads;
    c.head_dim = f.config.head_dim;
    c.format = format;
    c.max_len = f.hidden.view().shape[1];
    c.max_blocks = (c.max_len + 15) / 16;
    c.num_blocks = c.batch * c.max_blocks + 1;
    k = Tensor(kv_storage_dtype(c), kv_storage_shape(c));
    v = Tensor(kv_storage_dtype(c), kv_storage_shape(c));
    KvStorageViews views;
    views.k = k.view();
    views.v = v.view();
    if (is_compressed(format)) {
      ks = Tensor(DType::kF16, kv_scale_shape(c));
      vs = Tensor(DType::kF16, kv_scale_shape(c));
      views.k_scales = ks.view();
      views.v_scales = vs.view();
    }
    throw_if_error(KvCache::create(c, views, &cache));
  }
};

// Prefill `prefill` tokens, then one token a step; the outputs of every token [B, L, hidden].
Tensor run_steps(const Fixture& f, KvFormat format, KvLayout layout, int64_t prefill,
                 bool integer_qk = false) {
  layers::TextAttentionConfig config = f.config;
  config.options.kv_format = format;
  config.options.kv_integer_qk = integer_qk;
  const auto layer = layers::Qwen3VLTextAttention::create(config, f.weights());
  if (is_compressed(format))
    EXPECT_NE(layer->describe().find(to_string(format)), std::string::npos) << layer->describe();
  Cache c(f, format, layout);
  const int64_t B = f.hidden.view().shape[0], L = f.hidden.view().shape[1];
  Tensor all(DType::kF32, {B, L, f.config.hidden_size});
  for (int64_t at = 0; at < L;) {
    const int64_t n = at == 0 ? prefill : 1;
    auto [out, weights, cache] =
        (*layer)(testing::token_slice(f.hidden.view(), 1, at, n), {},
                 testing::token_slice(f.positions.view(), 2, at, n), &c.cache);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t x = 0; x < f.config.hidden_size; ++x)
          all.set((b * L + at + i) * f.config.hidden_size + x,
                  out.get((b * n + i) * f.config.hidden_size + x));
    at += n;
  }
  return all;
}

// Errors of the decoded rows (tokens prefill..L-1 of every sequence): ||a - b|| / ||b|| over all
// of them, and the largest of it row by row.
struct Errors {
  double all = 0, worst_row = 0;
};
Errors errors(const Tensor& a, const Tensor& b, int64_t prefill) {
  const int64_t B = b.view().shape[0], L = b.view().shape[1], H = b.view().shape[2];
  Errors r;
  double e_all = 0, n_all = 0;
  for (int64_t s = 0; s < B; ++s)
    for (int64_t t = prefill; t < L; ++t) {
      double e = 0, n = 0;
      for (int64_t x = 0; x < H; ++x) {
        const double d = double(a.get((s * L + t) * H + x)) - b.get((s * L + t) * H + x);
        e += d * d;
        n += double(b.get((s * L + t) * H + x)) * b.get((s * L + t) * H + x);
      }
      r.worst_row = std::max(r.worst_row, std::sqrt(e / n));
      e_all += e;
      n_all += n;
    }
  r.all = std::sqrt(e_all / n_all);
  return r;
}

TEST(TextLayerKvFormat, CompressedCacheAgainstF16Cache) {
  for (const char* name : {"text_d32", "text_d128"})
    for (KvLayout layout : {KvLayout::kContiguous, KvLayout::kPaged}) {
      const Fixture f(name);
      const int64_t prefill = 4;
      const Tensor f16 = run_steps(f, KvFormat::kFloat, layout, prefill);  // f16 cache
      for (KvFormat format : {KvFormat::kInt8, KvFormat::kInt4, KvFormat::kFp8E4M3}) {
        const Tensor got = run_steps(f, format, layout, prefill);
        const Errors vs_f16 = errors(got, f16, prefill), vs_f64 = errors(got, f.ref_out, prefill);
        std::printf(
            "%s %s %-8s: relative error %.2e against the f16 cache (worst row %.2e), "
            "%.2e against transformers float64 (f16 cache: %.2e)\n",
            name, to_string(layout), to_string(format), vs_f16.all, vs_f16.worst_row, vs_f64.all,
            errors(f16, f.ref_out, prefill).all);
        const double bound = format == KvFormat::kInt8   ? 1e-2
                             : format == KvFormat::kInt4 ? 0.15
                                                         : 5e-2;
        EXPECT_LT(vs_f16.all, bound) << name << " " << to_string(format);
        if (format != KvFormat::kInt8) continue;
        // int8's Q.K: the fp32 path (the default) above, the integer one (q quantized per row
        // and head) here.
        const Tensor integer_qk = run_steps(f, format, layout, prefill, true);
        const Errors iq = errors(integer_qk, f16, prefill);
        std::printf(
            "%s %s int8 integer Q.K: relative error %.2e against the f16 cache (worst row "
            "%.2e); against the fp32 Q.K: %.2e\n",
            name, to_string(layout), iq.all, iq.worst_row, errors(integer_qk, got, prefill).all);
        EXPECT_LT(iq.all, bound) << name << " int8, integer Q.K";
      }
    }
}

// A layer refuses a cache of another format (typed, the cache unchanged).
TEST(TextLayerKvFormat, CacheOfAnotherFormatIsRefused) {
  const Fixture f("text_d32");
  layers::TextAttentionConfig config = f.config;
  config.options.kv_format = KvFormat::kInt8;
  const auto layer = layers::Qwen3VLTextAttention::create(config, f.weights());
  Cache c(f, KvFormat::kFloat, KvLayout::kPaged);
  try {
    (void)(*layer)(testing::token_slice(f.hidden.view(), 1, 0, 3), {},
                   testing::token_slice(f.positions.view(), 2, 0, 3), &c.cache);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cache format = float"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c.cache.length(0), 0);
  config.options.kv_format = KvFormat::kInt4;
  config.head_dim = 48;  // not a multiple of int4's groups
  EXPECT_THROW((void)layers::Qwen3VLTextAttention::create(config, f.weights()), Error);
}

}  // namespace
}  // namespace qwen3vl
