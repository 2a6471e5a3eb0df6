// The text layer example of docs/api.md (a test keeps the two equal): prefill a prompt with an
// image (M-RoPE position ids from get_rope_index) into an f32 KV cache, then decode without
// position ids: the cache's rope delta puts the new token where transformers does.
#include <qwen3vl/attention.hpp>
#include <qwen3vl/testing/random_fill.hpp>

#include <cstdio>
#include <vector>

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

int main() {
  layers::TextAttentionConfig config;  // a tiny Qwen3-VL-shaped layer
  config.hidden_size = 64;
  config.num_heads = 4;
  config.num_kv_heads = 2;
  config.head_dim = 32;
  config.mrope_section = {6, 5, 5};  // adds up to head_dim / 2
  Tensor wq(DType::kF32, {128, 64}), wk(DType::kF32, {64, 64}), wv(DType::kF32, {64, 64});
  Tensor wo(DType::kF32, {64, 128}), q_norm(DType::kF32, {32}), k_norm(DType::kF32, {32});
  for (Tensor* w : {&wq, &wk, &wv, &wo}) fill_uniform(*w, 1, -0.1f, 0.1f);
  fill_uniform(q_norm, 2, 0.5f, 1.5f), fill_uniform(k_norm, 3, 0.5f, 1.5f);
  auto layer = layers::Qwen3VLTextAttention::create(config, {wq, wk, wv, wo, q_norm, k_norm});

  KvCacheConfig cache_config;
  cache_config.layout = KvLayout::kContiguous;
  cache_config.kv_heads = 2;
  cache_config.head_dim = 32;
  cache_config.max_len = 64;
  cache_config.dtype = DType::kF32;  // the default is f16 (half the memory, ~4e-4 decode error)
  Tensor k_cache(DType::kF32, kv_storage_shape(cache_config));
  Tensor v_cache(DType::kF32, kv_storage_shape(cache_config));
  KvCache cache;
  throw_if_error(KvCache::create(cache_config, k_cache, v_cache, &cache));

  // [x x x <6 image tokens> x x]: M-RoPE positions [3, B, L] and their delta (-3).
  std::vector<int32_t> types = {0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0};
  rope::RopeIndexInput index;
  index.seq_len = 11;
  index.token_types = types.data();
  index.image_grid_thw = {{1, 4, 6}};
  rope::RopeIndexOutput ids;
  throw_if_error(rope::get_rope_index(index, &ids));
  const TensorView positions =
      TensorView::contiguous(ids.positions.data(), DType::kI32, {3, 1, 11});

  Tensor prompt(DType::kF32, {1, 11, 64}), next(DType::kF32, {1, 1, 64});
  fill_uniform(prompt, 4);
  fill_uniform(next, 5);
  (*layer)(prompt, /*attention_mask=*/{}, positions, &cache);  // records the delta
  auto [output, attn_weights, past_key_value] = (*layer)(next, {}, {}, &cache);  // position 8
  std::printf("%s\n%s\ncache: %d tokens, rope delta %d; output[0] = %g\n",
              layer->describe().c_str(), cache.describe().c_str(), cache.lengths()[0],
              cache.position_delta(0), output.get(0));
  return cache.position_delta(0) == ids.delta[0] ? 0 : 1;
}
