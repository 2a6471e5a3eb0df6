// Qwen3VLTextAttention with a KV cache: prefill then step-by-step decode equals one prefill of the
// whole sequence (its last rows) for several lengths, batch sizes and step sizes; paged equals
// contiguous; chunked prefill over a contiguous cache; attention weights with past tokens; NaN in
// cache rows no query sees stays out.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "layer_support.hpp"
#include "qwen3vl/rope/position_ids.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr int64_t kHidden = 64, kHeads = 4, kKvHeads = 2, kDim = 32;

layers::TextAttentionConfig small_config(bool weights = false) {
  layers::TextAttentionConfig c;
  c.hidden_size = kHidden;
  c.num_heads = kHeads;
  c.num_kv_heads = kKvHeads;
  c.head_dim = kDim;
  c.mrope_section = {6, 5, 5};
  c.max_position = 4096;
  c.options.need_weights = weights;
  c.options.variant = weights ? Variant::kStandard : Variant::kAuto;
  c.options.cpu.num_threads = 2;
  return c;
}

// A cache and its storage, either layout.
struct OwnedCache {
  Tensor k, v;
  KvCache cache;
  OwnedCache(KvLayout layout, int64_t batch, int64_t max_len, DType dtype = DType::kF32,
             float fill = 0.0f) {
    KvCacheConfig c;
    c.layout = layout;
    c.batch = batch;
    c.kv_heads = kKvHeads;
    c.head_dim = kDim;
    c.dtype = dtype;
    c.max_len = max_len;
    c.block_size = 16;
    c.max_blocks = (max_len + 15) / 16;
    c.num_blocks = batch * c.max_blocks + 2;
    k = Tensor(dtype, kv_storage_shape(c));
    v = Tensor(dtype, kv_storage_shape(c));
    for (int64_t i = 0; i < k.numel(); ++i) {
      k.set(i, fill);
      v.set(i, fill);
    }
    throw_if_error(KvCache::create(c, k.view(), v.view(), &cache));
  }
};

// M-RoPE positions [3, B, L]: an image-like block in the middle of every sequence.
Tensor mrope_positions(int64_t B, int64_t L) {
  Tensor p(DType::kI32, {3, B, L});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t a = 0; a < 3; ++a) {
        const bool image = i >= 3 && i < 9;
        const int64_t cell = i - 3;
        const int64_t v = !image   ? (i < 3 ? i : i - 2)
                          : a == 0 ? 3
                          : a == 1 ? 3 + cell / 3
                                   : 3 + cell % 3;
        p.data<int32_t>()[(a * B + b) * L + i] = static_cast<int32_t>(v + b);
      }
  return p;
}

struct StepCase {
  int64_t batch, prefill, total, step;
  KvLayout layout;
};

class PrefillThenDecode : public ::testing::TestWithParam<StepCase> {};

TEST_P(PrefillThenDecode, EqualsOnePrefill) {
  const StepCase s = GetParam();
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 11);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  Tensor x(DType::kF32, {s.batch, s.total, kHidden});
  fill_uniform(x, 7 + s.total);
  const Tensor pos = mrope_positions(s.batch, s.total);
  const Tensor full = (*layer)(x, {}, pos).output;

  OwnedCache oc(s.layout, s.batch, s.total + 5);
  for (int64_t at = 0; at < s.total;) {
    const int64_t n = at == 0 ? s.prefill : std::min(s.step, s.total - at);
    const TensorView xs = testing::token_slice(x, 1, at, n);
    const TensorView ps = testing::token_slice(pos, 2, at, n);
    auto [out, weights, cache] = (*layer)(xs, {}, ps, &oc.cache);
    ASSERT_EQ(cache, &oc.cache);
    for (int64_t b = 0; b < s.batch; ++b) {
      EXPECT_EQ(oc.cache.length(b), at + n);
      EXPECT_LT(testing::rel_error(testing::rows(out, b, 0, n), testing::rows(full, b, at, n)),
                1e-5)
          << "rows " << at << ".." << at + n << " of sequence " << b;
    }
    at += n;
  }
}

INSTANTIATE_TEST_SUITE_P(Layers, PrefillThenDecode,
                         ::testing::Values(StepCase{1, 1, 9, 1, KvLayout::kContiguous},
                                           StepCase{1, 17, 21, 1, KvLayout::kPaged},
                                           StepCase{3, 13, 40, 1, KvLayout::kPaged},
                                           StepCase{2, 5, 29, 3, KvLayout::kContiguous},
                                           StepCase{2, 16, 33, 8, KvLayout::kPaged},
                                           StepCase{3, 7, 66, 20, KvLayout::kContiguous},
                                           // chunks of more than 8 rows after past tokens on a
                                           // paged cache: append attention
                                           StepCase{2, 5, 90, 20, KvLayout::kPaged},
                                           StepCase{1, 30, 130, 37, KvLayout::kPaged}));

// Chunked prefill in random chunk sizes (1 to 70 rows, crossing blocks) over a paged cache, and
// over caches of another dtype than the layer's, equals the one-shot prefill without a cache.
TEST(TextLayerCache, ChunkedPrefillEqualsOneShot) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 31);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  const int64_t B = 2, total = 160;
  Tensor x(DType::kF32, {B, total, kHidden});
  fill_uniform(x, 41);
  const Tensor pos = mrope_positions(B, total);
  const Tensor full = (*layer)(x, {}, pos).output;
  struct Case {
    KvLayout layout;
    DType dtype;
    double tolerance;  // an f16 / bf16 cache rounds K and V
  };
  for (const Case& c :
       {Case{KvLayout::kPaged, DType::kF32, 1e-5}, Case{KvLayout::kPaged, DType::kF16, 3e-3},
        Case{KvLayout::kContiguous, DType::kBF16, 2e-2}}) {
    SCOPED_TRACE(std::string(to_string(c.layout)) + " " + to_string(c.dtype));
    OwnedCache oc(c.layout, B, total + 3, c.dtype, std::numeric_limits<float>::quiet_NaN());
    uint64_t state = 5;
    for (int64_t at = 0; at < total;) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const int64_t n = std::min<int64_t>(1 + static_cast<int64_t>((state >> 33) % 70), total - at);
      const Tensor out = (*layer)(testing::token_slice(x, 1, at, n), {},
                                  testing::token_slice(pos, 2, at, n), &oc.cache)
                             .output;
      for (int64_t b = 0; b < B; ++b)
        ASSERT_LT(testing::rel_error(testing::rows(out, b, 0, n), testing::rows(full, b, at, n)),
                  c.tolerance)
            << "rows " << at << ".." << at + n << " of sequence " << b;
      at += n;
    }
  }
}

// Both layouts give the same outputs (decode kernel over either indexer) and the same cache rows.
TEST(TextLayerCache, PagedEqualsContiguous) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 3);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  const int64_t B = 2, total = 37;
  Tensor x(DType::kF32, {B, total, kHidden});
  fill_uniform(x, 5);
  OwnedCache paged(KvLayout::kPaged, B, 48), contiguous(KvLayout::kContiguous, B, 48);
  for (int64_t at = 0, n = 19; at < total; at += n, n = 1) {
    const TensorView xs = testing::token_slice(x, 1, at, n);
    const Tensor a = (*layer)(xs, {}, {}, &paged.cache).output;
    const Tensor b = (*layer)(xs, {}, {}, &contiguous.cache).output;
    EXPECT_LT(testing::rel_error(a, b), 1e-6) << "at " << at;
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < total; ++j) {
      const int32_t block =
          paged.cache
              .block_table()[static_cast<size_t>(b * paged.cache.config().max_blocks + j / 16)];
      for (int64_t c = 0; c < kKvHeads * kDim; ++c)
        ASSERT_EQ(paged.k.get((block * 16 + j % 16) * kKvHeads * kDim + c),
                  contiguous.k.get((b * 48 + j) * kKvHeads * kDim + c));
    }
}

// More than 8 new rows after past tokens (chunked prefill) runs the prefill kernel over the
// contiguous storage; attention weights with past tokens too.
TEST(TextLayerCache, ChunkedPrefillAndWeightsWithPast) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 21);
  for (bool weights : {false, true}) {
    SCOPED_TRACE(weights ? "standard with weights" : "auto");
    const auto layer = layers::Qwen3VLTextAttention::create(small_config(weights), w.views());
    const int64_t B = 2, first = 10, second = 12, total = first + second;
    Tensor x(DType::kF32, {B, total, kHidden});
    fill_uniform(x, 9);
    const auto full = (*layer)(x);
    OwnedCache oc(KvLayout::kContiguous, B, 30);
    (*layer)(testing::token_slice(x, 1, 0, first), {}, {}, &oc.cache);
    const auto part = (*layer)(testing::token_slice(x, 1, first, second), {}, {}, &oc.cache);
    for (int64_t b = 0; b < B; ++b)
      EXPECT_LT(testing::rel_error(testing::rows(part.output, b, 0, second),
                                   testing::rows(full.output, b, first, second)),
                1e-5);
    if (!weights) continue;
    ASSERT_EQ(part.attn_weights.size(3), total);
    double worst = 0.0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < kHeads; ++h)
        for (int64_t i = 0; i < second; ++i)
          for (int64_t j = 0; j < total; ++j)
            worst = std::max<double>(
                worst,
                std::fabs(
                    part.attn_weights.get(((b * kHeads + h) * second + i) * total + j) -
                    full.attn_weights.get(((b * kHeads + h) * total + first + i) * total + j)));
    EXPECT_LT(worst, 1e-6);
  }
}

// Cache rows past each sequence's length hold NaN: no query sees them, so nothing leaks.
TEST(TextLayerCache, NanInUnseenRowsStaysOut) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 4);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  const int64_t B = 2, total = 20;
  Tensor x(DType::kF32, {B, total, kHidden});
  fill_uniform(x, 2);
  const Tensor full = (*layer)(x).output;
  for (KvLayout layout : {KvLayout::kContiguous, KvLayout::kPaged}) {
    OwnedCache oc(layout, B, 32, DType::kF32, std::numeric_limits<float>::quiet_NaN());
    (*layer)(testing::token_slice(x, 1, 0, 12), {}, {}, &oc.cache);
    for (int64_t at = 12; at < total; ++at) {
      const Tensor out = (*layer)(testing::token_slice(x, 1, at, 1), {}, {}, &oc.cache).output;
      for (int64_t b = 0; b < B; ++b)
        EXPECT_LT(testing::rel_error(testing::rows(out, b, 0, 1), testing::rows(full, b, at, 1)),
                  1e-5);
    }
  }
}

// A left-padded sequence gives, on its kept rows, what the unpadded sequence gives alone; a row
// that sees no key (padding only) gives finite output.
TEST(TextLayerCache, PaddingMask) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 8);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  const int64_t L = 10, pad = 3;
  Tensor x(DType::kF32, {2, L, kHidden}), mask(DType::kI32, {2, L}), pos(DType::kI32, {2, L});
  fill_uniform(x, 12);
  for (int64_t i = 0; i < L; ++i) {
    mask.data<int32_t>()[i] = i >= pad;
    mask.data<int32_t>()[L + i] = 1;
    pos.data<int32_t>()[i] = static_cast<int32_t>(i >= pad ? i - pad : 0);
    pos.data<int32_t>()[L + i] = static_cast<int32_t>(i);
  }
  const Tensor padded = (*layer)(x, mask, pos).output;
  Tensor alone(DType::kF32, {1, L - pad, kHidden});
  for (int64_t i = 0; i < (L - pad) * kHidden; ++i) alone.set(i, x.get(pad * kHidden + i));
  const Tensor ref = (*layer)(alone).output;
  EXPECT_LT(
      testing::rel_error(testing::rows(padded, 0, pad, L - pad), testing::rows(ref, 0, 0, L - pad)),
      1e-5);
  const Tensor unmasked =
      (*layer)(testing::token_slice(x, 0, 1, 1), {}, testing::token_slice(pos, 0, 1, 1)).output;
  EXPECT_LT(testing::rel_error(testing::rows(padded, 1, 0, L), testing::rows(unmasked, 0, 0, L)),
            1e-6);
  for (int64_t i = 0; i < pad * kHidden; ++i) ASSERT_TRUE(std::isfinite(padded.get(i)));
}

// Two prompts of 11 tokens with an image each (Qwen3-VL, merge 2): [x x x I*6 x x] with grid
// (1, 4, 6) and [x I*4 x x x x x x] with grid (1, 4, 4). Their M-RoPE positions end below their
// lengths: rope deltas -3 and -2.
rope::RopeIndexOutput image_prompts() {
  const int64_t L = 11;
  std::vector<int32_t> types(2 * L, rope::kTextToken);
  for (int64_t i = 3; i < 9; ++i) types[static_cast<size_t>(i)] = rope::kImageToken;
  for (int64_t i = 1; i < 5; ++i) types[static_cast<size_t>(L + i)] = rope::kImageToken;
  rope::RopeIndexInput in;
  in.batch = 2;
  in.seq_len = L;
  in.token_types = types.data();
  in.image_grid_thw = {{1, 4, 6}, {1, 4, 4}};
  rope::RopeIndexOutput out;
  throw_if_error(rope::get_rope_index(in, &out));
  return out;
}

Tensor i32_tensor(const std::vector<int32_t>& values, std::vector<int64_t> shape) {
  Tensor t(DType::kI32, shape);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

// Decode after a prefill with an image, without position ids, takes transformers' positions
// past_len + i + rope_delta (the same on every axis), not past_len + i.
TEST(TextLayerCache, DecodeAfterImagePrefillKeepsTheRopeDelta) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 17);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  const rope::RopeIndexOutput prompt = image_prompts();
  ASSERT_EQ(prompt.delta, (std::vector<int32_t>{-3, -2}));
  const int64_t B = 2, L = 11, steps = 5;
  const Tensor prompt_pos = i32_tensor(prompt.positions, {3, B, L});
  Tensor x(DType::kF32, {B, L + steps, kHidden});
  fill_uniform(x, 23);
  for (KvLayout layout : {KvLayout::kContiguous, KvLayout::kPaged}) {
    SCOPED_TRACE(layout == KvLayout::kPaged ? "paged" : "contiguous");
    // implicit: no position ids after the prefill; explicit: transformers' decode positions;
    // undelta'd: what decode without the delta used to compute.
    OwnedCache implicit(layout, B, 32), explicit_pos(layout, B, 32), undelta(layout, B, 32);
    for (OwnedCache* c : {&implicit, &explicit_pos, &undelta})
      (*layer)(testing::token_slice(x, 1, 0, L), {}, prompt_pos, &c->cache);
    for (int64_t at = L, n = 1; at < L + steps; at += n, n = 2) {  // 1 row, then 2 rows a step
      const TensorView xs = testing::token_slice(x, 1, at, n);
      std::vector<int32_t> with_delta, without;
      for (int64_t a = 0; a < 3; ++a)
        for (int64_t b = 0; b < B; ++b)
          for (int64_t i = 0; i < n; ++i) {
            with_delta.push_back(
                static_cast<int32_t>(at + i + prompt.delta[static_cast<size_t>(b)]));
            without.push_back(static_cast<int32_t>(at + i));
          }
      const Tensor got = (*layer)(xs, {}, {}, &implicit.cache).output;
      const Tensor want =
          (*layer)(xs, {}, i32_tensor(with_delta, {3, B, n}), &explicit_pos.cache).output;
      const Tensor old = (*layer)(xs, {}, i32_tensor(without, {3, B, n}), &undelta.cache).output;
      EXPECT_EQ(testing::rel_error(got, want), 0.0) << "rows " << at << ".." << at + n;
      EXPECT_GT(testing::rel_error(got, old), 1e-3) << "rows " << at << ".." << at + n;
    }
  }
}

// The cache carries each sequence's delta: recorded from calls with position ids (the highest
// position so far + 1 - length), kept by calls without, copied by fork, cleared by reset.
TEST(TextLayerCache, CacheCarriesEachSequencesRopeDelta) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 18);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  const rope::RopeIndexOutput prompt = image_prompts();
  Tensor x(DType::kF32, {2, 14, kHidden});
  fill_uniform(x, 29);
  OwnedCache oc(KvLayout::kPaged, 2, 32);
  EXPECT_EQ(oc.cache.position_delta(0), 0);
  (*layer)(testing::token_slice(x, 1, 0, 11), {}, i32_tensor(prompt.positions, {3, 2, 11}),
           &oc.cache);
  EXPECT_EQ(oc.cache.position_delta(0), -3);
  EXPECT_EQ(oc.cache.position_delta(1), -2);
  (*layer)(testing::token_slice(x, 1, 11, 1), {}, {}, &oc.cache);
  EXPECT_EQ(oc.cache.position_delta(0), -3);
  // Explicit positions below the highest so far leave the highest in charge.
  (*layer)(testing::token_slice(x, 1, 12, 1), {}, i32_tensor({0, 0, 0, 0, 0, 0}, {3, 2, 1}),
           &oc.cache);
  EXPECT_EQ(oc.cache.position_delta(0), -4);  // highest 8 + 1 - length 13
  ASSERT_TRUE(oc.cache.reset(1).ok());
  EXPECT_EQ(oc.cache.position_delta(1), 0);
  ASSERT_TRUE(oc.cache.fork(0, 1).ok());
  EXPECT_EQ(oc.cache.position_delta(1), -4);
  EXPECT_EQ(oc.cache.set_position_delta(2, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(oc.cache.set_position_delta(0, int64_t{1} << 40).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(oc.cache.position_delta(0), -4);
}

// The KV cache stores f16 unless told otherwise, and says so: the layer's and the cache's
// describe() name the default and its cost, which the decode error here shows.
TEST(TextLayerCache, F16CacheDefaultIsStatedAndMeasured) {
  EXPECT_EQ(KvCacheConfig().dtype, DType::kF16);
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 11);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  const std::string why = layer->describe();
  EXPECT_NE(why.find("KvCacheConfig::dtype defaults to f16"), std::string::npos) << why;
  const int64_t B = 2, total = 40, prefill = 13;
  Tensor x(DType::kF32, {B, total, kHidden});
  fill_uniform(x, 7);
  const Tensor full = (*layer)(x).output;
  double worst[2] = {0.0, 0.0};
  for (DType dtype : {DType::kF32, DType::kF16}) {
    OwnedCache oc(KvLayout::kPaged, B, total + 5, dtype);
    const std::string cache = oc.cache.describe();
    EXPECT_NE(cache.find(to_string(dtype)), std::string::npos) << cache;
    EXPECT_EQ(cache.find("default") != std::string::npos, dtype == DType::kF16) << cache;
    (*layer)(testing::token_slice(x, 1, 0, prefill), {}, {}, &oc.cache);
    for (int64_t at = prefill; at < total; ++at) {
      const Tensor out = (*layer)(testing::token_slice(x, 1, at, 1), {}, {}, &oc.cache).output;
      for (int64_t b = 0; b < B; ++b)
        worst[dtype == DType::kF16] = std::max(
            worst[dtype == DType::kF16],
            testing::rel_error(testing::rows(out, b, 0, 1), testing::rows(full, b, at, 1)));
    }
  }
  EXPECT_LT(worst[0], 2e-6);  // f32 storage: ~6e-7
  EXPECT_GT(worst[1], 1e-4);  // f16 storage: ~4e-4, what the docs quote
  EXPECT_LT(worst[1], 2e-3);
}

// The allocation-free forward() equals the convenience call, and reports its step times.
TEST(TextLayerCache, ForwardWithWorkspaceAndProfile) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 30);
  const auto layer = layers::Qwen3VLTextAttention::create(small_config(), w.views());
  Tensor x(DType::kF32, {2, 9, kHidden}), out(DType::kF32, {2, 9, kHidden});
  fill_uniform(x, 1);
  const layers::TextAttentionInputs in{x.view(), {}, {}};
  const layers::TextAttentionOutputs outs{out.view(), {}};
  std::vector<char> ws(layer->workspace_size(in, nullptr, outs));
  ASSERT_GT(ws.size(), 0u);
  layers::LayerProfile profile;
  ASSERT_TRUE(
      layer->forward(in, nullptr, outs, Workspace{ws.data(), ws.size()}, nullptr, &profile).ok());
  EXPECT_EQ(testing::rel_error(out, (*layer)(x).output), 0.0);
  EXPECT_EQ(profile.calls, 1);
  EXPECT_GT(profile.projections, 0.0);
  EXPECT_GT(profile.attention, 0.0);
  const Status small = layer->forward(in, nullptr, outs, Workspace{ws.data(), ws.size() / 2});
  EXPECT_EQ(small.code(), StatusCode::kWorkspaceTooSmall);
  EXPECT_NE(layer->describe().find("Qwen3VLTextAttention layer 0"), std::string::npos);
}

}  // namespace
}  // namespace qwen3vl
