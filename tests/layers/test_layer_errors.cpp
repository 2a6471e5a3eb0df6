// Bad configs, weights, shapes, dtypes, caches and positions give typed errors naming the argument,
// and a failed call leaves the KV cache unchanged.
#include <gtest/gtest.h>

#include "layer_support.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr int64_t kHidden = 48, kHeads = 4, kKvHeads = 2, kDim = 16;

layers::TextAttentionConfig config() {
  layers::TextAttentionConfig c;
  c.hidden_size = kHidden;
  c.num_heads = kHeads;
  c.num_kv_heads = kKvHeads;
  c.head_dim = kDim;
  c.mrope_section = {4, 2, 2};
  c.max_position = 64;
  return c;
}

void expect_error(const Status& s, StatusCode code, const char* names) {
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(names), std::string::npos) << s.to_string();
}

TEST(LayerErrors, CreateChecksConfigAndWeights) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 1);
  std::unique_ptr<layers::Qwen3VLTextAttention> layer;
  auto c = config();
  c.num_kv_heads = 3;
  expect_error(layers::Qwen3VLTextAttention::try_create(c, w.views(), 0, &layer),
               StatusCode::kInvalidArgument, "num_kv_heads");
  c = config();
  c.mrope_section = {24, 20, 20};  // adds up to 64, not D/2 = 8
  expect_error(layers::Qwen3VLTextAttention::try_create(c, w.views(), 0, &layer),
               StatusCode::kInvalidArgument, "mrope_section");
  c = config();
  c.options.dtype = DType::kI32;
  expect_error(layers::Qwen3VLTextAttention::try_create(c, w.views(), 0, &layer),
               StatusCode::kInvalidArgument, "options.dtype");
  c = config();
  c.options.need_weights = true;
  c.options.variant = Variant::kFlash2;
  expect_error(layers::Qwen3VLTextAttention::try_create(c, w.views(), 0, &layer),
               StatusCode::kUnsupported, "need_weights");
  auto views = w.views();
  views.o_proj = w.q.view();  // [Hq D, hidden] where [hidden, Hq D] belongs
  expect_error(layers::Qwen3VLTextAttention::try_create(config(), views, 0, &layer),
               StatusCode::kShapeMismatch, "weights.o_proj");
  views = w.views();
  views.k_norm = TensorView{};
  expect_error(layers::Qwen3VLTextAttention::try_create(config(), views, 0, &layer),
               StatusCode::kNullPointer, "weights.k_norm");
  EXPECT_EQ(layer, nullptr);
  EXPECT_THROW(layers::Qwen3VLTextAttention::create(c, w.views()), Error);
}

TEST(LayerErrors, ForwardChecksInputsAndLeavesTheCacheUnchanged) {
  const testing::TextWeights w(kHidden, kHeads, kKvHeads, kDim, 2);
  const auto layer = layers::Qwen3VLTextAttention::create(config(), w.views());
  KvCacheConfig kc;
  kc.layout = KvLayout::kPaged;
  kc.batch = 2;
  kc.kv_heads = kKvHeads;
  kc.head_dim = kDim;
  kc.dtype = DType::kF32;
  kc.num_blocks = 2;
  kc.max_blocks = 3;
  Tensor ks(DType::kF32, kv_storage_shape(kc)), vs(DType::kF32, kv_storage_shape(kc));
  KvCache cache;
  ASSERT_TRUE(KvCache::create(kc, ks.view(), vs.view(), &cache).ok());
  Tensor x(DType::kF32, {2, 16, kHidden});
  fill_uniform(x, 3);
  (*layer)(x, {}, {}, &cache);  // 16 tokens each: one full block each, the pool is used up
  const std::vector<int32_t> lengths = cache.lengths(), table = cache.block_table();
  const auto unchanged = [&] {
    EXPECT_EQ(cache.lengths(), lengths);
    EXPECT_EQ(cache.block_table(), table);
  };
  std::vector<char> ws(1 << 20);
  const Workspace work{ws.data(), ws.size()};
  const auto run = [&](const TensorView& hidden, const TensorView& o, const TensorView& pos = {},
                       KvCache* c = nullptr, const TensorView& mask = {}) {
    return layer->forward({hidden, pos, mask}, c, {o, {}}, work);
  };
  Tensor one(DType::kF32, {2, 1, kHidden}), one_out(DType::kF32, {2, 1, kHidden});
  Tensor twelve(DType::kF32, {2, 13, kHidden}), twelve_out(DType::kF32, {2, 13, kHidden});
  // Overflow: 16 + 33 > 48 tokens of capacity.
  Tensor big(DType::kF32, {2, 33, kHidden}), big_out(DType::kF32, {2, 33, kHidden});
  expect_error(run(big, big_out, {}, &cache), StatusCode::kInvalidArgument, "capacity");
  unchanged();
  // Out of blocks: the capacity allows one more token, the pool has no free block left.
  EXPECT_EQ(run(one, one_out, {}, &cache).code(), StatusCode::kOutOfMemory);
  unchanged();
  // Shapes, dtypes, devices.
  Tensor bad_hidden(DType::kF32, {2, 1, kHidden + 1});
  expect_error(run(bad_hidden, one_out), StatusCode::kShapeMismatch, "hidden_states");
  Tensor bf16(DType::kBF16, {2, 1, kHidden});
  expect_error(run(bf16, one_out), StatusCode::kInvalidArgument, "hidden_states.dtype");
  Tensor bad_out(DType::kF32, {2, 2, kHidden});
  expect_error(run(one, bad_out), StatusCode::kShapeMismatch, "output");
  Tensor rank2(DType::kF32, {2, kHidden});
  expect_error(run(rank2, one_out), StatusCode::kShapeMismatch, "hidden_states");
  // Positions: wrong dtype, wrong shape, out of the table (the cache must not change).
  Tensor pos_f(DType::kF32, {2, 1});
  expect_error(run(one, one_out, pos_f), StatusCode::kInvalidArgument, "position_ids");
  Tensor pos_far(DType::kI32, {3, 2, 1});
  pos_far.data<int32_t>()[0] = 64;
  KvCache* c = &cache;
  EXPECT_EQ(run(one, one_out, pos_far, c).code(), StatusCode::kInvalidArgument);
  unchanged();
  Tensor pos_shape(DType::kI32, {3, 2, 2});
  EXPECT_EQ(run(one, one_out, pos_shape).code(), StatusCode::kShapeMismatch);
  // A cache of another shape; a mask with past tokens; weights without need_weights.
  KvCacheConfig other = kc;
  other.kv_heads = 1;
  Tensor ks1(DType::kF32, kv_storage_shape(other)), vs1(DType::kF32, kv_storage_shape(other));
  KvCache cache1;
  ASSERT_TRUE(KvCache::create(other, ks1.view(), vs1.view(), &cache1).ok());
  expect_error(run(one, one_out, {}, &cache1), StatusCode::kShapeMismatch, "cache Hkv");
  Tensor mask(DType::kI32, {2, 1});
  expect_error(run(one, one_out, {}, &cache, mask), StatusCode::kUnsupported, "attention_mask");
  unchanged();
  Tensor weights(DType::kF32, {2, kHeads, 1, 1});
  expect_error(
      layer->forward({one.view(), {}, {}}, nullptr, {one_out.view(), weights.view()}, work),
      StatusCode::kUnsupported, "need_weights");
  // Paged cache, more than 8 new rows after past tokens: append attention runs them.
  kc.num_blocks = 8;
  kc.max_blocks = 4;
  Tensor ks2(DType::kF32, kv_storage_shape(kc)), vs2(DType::kF32, kv_storage_shape(kc));
  KvCache paged;
  ASSERT_TRUE(KvCache::create(kc, ks2.view(), vs2.view(), &paged).ok());
  ASSERT_TRUE(run(one, one_out, {}, &paged).ok());
  ASSERT_TRUE(run(twelve, twelve_out, {}, &paged).ok());
  EXPECT_EQ(paged.length(0), 14);
  EXPECT_THROW((*layer)(bad_hidden), Error);
}

TEST(LayerErrors, VisionInputs) {
  const int64_t hidden = 32, heads = 4;
  Tensor qkv_w(DType::kF32, {3 * hidden, hidden}), qkv_b(DType::kF32, {3 * hidden});
  Tensor proj_w(DType::kF32, {hidden, hidden}), proj_b(DType::kF32, {hidden});
  layers::VisionAttentionConfig c;
  c.hidden_size = hidden;
  c.num_heads = heads;
  const layers::VisionAttentionWeights w{qkv_w.view(), qkv_b.view(), proj_w.view(), proj_b.view()};
  std::unique_ptr<layers::Qwen3VLVisionAttention> layer;
  c.num_heads = 5;
  expect_error(layers::Qwen3VLVisionAttention::try_create(c, w, 0, &layer),
               StatusCode::kInvalidArgument, "num_heads");
  c.num_heads = heads;
  const layers::VisionAttentionWeights bad{qkv_w.view(), proj_b.view(), proj_w.view(),
                                           proj_b.view()};
  expect_error(layers::Qwen3VLVisionAttention::try_create(c, bad, 0, &layer),
               StatusCode::kShapeMismatch, "weights.qkv_bias");
  ASSERT_TRUE(layers::Qwen3VLVisionAttention::try_create(c, w, 0, &layer).ok());
  Tensor x(DType::kF32, {8, hidden}), pos(DType::kI32, {2, 8}), cu(DType::kI32, {3});
  cu.data<int32_t>()[1] = 4;
  cu.data<int32_t>()[2] = 7;  // one patch in no frame
  expect_error(layer->supports({x.view(), pos.view(), cu.view()}, x.view()),
               StatusCode::kShapeMismatch, "cu_seqlens[2]");
  cu.data<int32_t>()[2] = 8;
  EXPECT_TRUE(layer->supports({x.view(), pos.view(), cu.view()}, x.view()).ok());
  cu.data<int32_t>()[1] = 9;
  expect_error(layer->supports({x.view(), pos.view(), cu.view()}, x.view()),
               StatusCode::kInvalidArgument, "cu_seqlens");
  cu.data<int32_t>()[1] = 4;
  Tensor pos_bad(DType::kI32, {8, 2});
  expect_error(layer->supports({x.view(), pos_bad.view(), cu.view()}, x.view()),
               StatusCode::kShapeMismatch, "positions");
  pos.data<int32_t>()[3] = 4096;  // past max_grid_side
  EXPECT_THROW((*layer)(x, pos, cu), Error);
}

}  // namespace
}  // namespace qwen3vl
