// A Qwen3-VL text attention layer: prefill a prompt into a KV cache, then decode one token. The
// decoded token's output must equal the last row of one prefill over prompt + token.
#include <qwen3vl/attention.hpp>
#include <qwen3vl/testing/random_fill.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace qwen3vl;
  using qwen3vl::testing::fill_uniform;
  layers::TextAttentionConfig config;  // a tiny Qwen3-VL-shaped layer
  config.hidden_size = 64;
  config.num_heads = 4;
  config.num_kv_heads = 2;
  config.head_dim = 32;
  config.mrope_section = {6, 5, 5};  // adds up to head_dim / 2
  Tensor wq(DType::kF32, {4 * 32, 64}), wk(DType::kF32, {2 * 32, 64}),
      wv(DType::kF32, {2 * 32, 64});
  Tensor wo(DType::kF32, {64, 4 * 32}), q_norm(DType::kF32, {32}), k_norm(DType::kF32, {32});
  fill_uniform(wq, 1, -0.1f, 0.1f), fill_uniform(wk, 2, -0.1f, 0.1f);
  fill_uniform(wv, 3, -0.1f, 0.1f), fill_uniform(wo, 4, -0.1f, 0.1f);
  fill_uniform(q_norm, 5, 0.5f, 1.5f), fill_uniform(k_norm, 6, 0.5f, 1.5f);
  auto attention = layers::Qwen3VLTextAttention::create(config, {wq, wk, wv, wo, q_norm, k_norm},
                                                        /*layer_idx=*/0);

  KvCacheConfig cache_config;  // one sequence, f16 pages of 16 tokens
  cache_config.kv_heads = 2;
  cache_config.head_dim = 32;
  cache_config.num_blocks = cache_config.max_blocks = 4;
  Tensor k_pages(DType::kF16, kv_storage_shape(cache_config));
  Tensor v_pages(DType::kF16, kv_storage_shape(cache_config));
  KvCache cache;
  throw_if_error(KvCache::create(cache_config, k_pages, v_pages, &cache));

  const int64_t prompt = 9;
  Tensor hidden_states(DType::kF32, {1, prompt + 1, 64});
  fill_uniform(hidden_states, 7);
  TensorView prompt_states = hidden_states.view(), next_token = hidden_states.view();
  prompt_states.shape[1] = prompt;
  next_token.shape[1] = 1;
  next_token.data = hidden_states.data<float>() + prompt * 64;
  // position_ids [3, B, L] (t, h, w) may be given; absent, they continue the cache: text tokens.
  attention->operator()(prompt_states, /*attention_mask=*/{}, /*position_ids=*/{}, &cache);
  auto [output, attn_weights, past_key_value] = (*attention)(next_token, {}, {}, &cache);

  const Tensor whole = (*attention)(hidden_states).output;  // no cache: one prefill
  double worst = 0.0;
  for (int64_t c = 0; c < 64; ++c)
    worst = std::fmax(worst, std::fabs(output.get(c) - whole.get(prompt * 64 + c)));
  std::printf("%s\ncache holds %lld tokens; decode vs prefill: max difference %.2e\n",
              attention->describe().c_str(), static_cast<long long>(past_key_value->length(0)),
              worst);
  return past_key_value->length(0) == prompt + 1 && worst < 5e-3 ? 0 : 1;
}
