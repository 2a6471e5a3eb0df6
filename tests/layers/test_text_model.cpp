// Three text layers over one KvPageTable (a model's shared table, a storage per layer, one append
// step per forward pass) give exactly what the same layers give over a KvCache each: prefill, then
// decode steps and a chunk of 12 rows (append attention on a paged cache), paged and contiguous.
// Each decode step makes one decode plan for all layers, and a prefill forward() plans and
// validates its attention once; a layer error inside a step, then abort(), leaves the table as it
// was.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "layer_support.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr int64_t kHidden = 64, kHeads = 4, kKvHeads = 2, kDim = 32;
constexpr int kLayers = 3;

layers::TextAttentionConfig config() {
  layers::TextAttentionConfig c;
  c.hidden_size = kHidden;
  c.num_heads = kHeads;
  c.num_kv_heads = kKvHeads;
  c.head_dim = kDim;
  c.mrope_section = {6, 5, 5};
  c.max_position = 4096;
  c.options.cpu.num_threads = 2;
  return c;
}

KvCacheConfig cache_config(KvLayout layout, int64_t batch, int64_t max_len) {
  KvCacheConfig c;
  c.layout = layout;
  c.batch = batch;
  c.kv_heads = kKvHeads;
  c.head_dim = kDim;
  c.dtype = DType::kF32;
  c.max_len = max_len;
  c.block_size = 16;
  c.max_blocks = (max_len + 15) / 16;
  c.num_blocks = batch * c.max_blocks + 2;
  return c;
}

struct StepOutputs {
  std::vector<Tensor> outputs;  // per layer
  // Per layer: Attention plans made and validate(AttentionParams) calls during its forward().
  std::vector<uint64_t> plans, validations;
};

// The layers one after another on one hidden state each (every layer sees the same input: the
// test is about the cache, not the residual stream).
StepOutputs model_step(const std::vector<std::unique_ptr<layers::Qwen3VLTextAttention>>& ls,
                       KvPageTable& table, const std::vector<KvLayerStorage>& storage,
                       const TensorView& x) {
  StepOutputs r;
  const int64_t B = x.shape[0], L = x.shape[1];
  throw_if_error(table.begin_append(L));
  for (int l = 0; l < kLayers; ++l) {
    r.outputs.emplace_back(DType::kF32, std::vector<int64_t>{B, L, kHidden});
    const layers::TextAttentionInputs in{x, {}, {}};
    const layers::TextAttentionOutputs out{r.outputs.back().view(), {}};
    std::vector<char> ws(ls[l]->workspace_size(in, &table, &storage[l], out));
    EXPECT_GT(ws.size(), 0u);
    const uint64_t plans = detail::plan_count(), checks = detail::validation_count();
    throw_if_error(ls[l]->forward(in, &table, &storage[l], out, Workspace{ws.data(), ws.size()}));
    r.plans.push_back(detail::plan_count() - plans);
    r.validations.push_back(detail::validation_count() - checks);
  }
  throw_if_error(table.commit());
  return r;
}

class TextModel : public ::testing::TestWithParam<KvLayout> {};

TEST_P(TextModel, SharedTableEqualsACachePerLayer) {
  const KvLayout layout = GetParam();
  const int64_t B = 2, prefill = 19, steps = 16, max_len = 40;
  const int64_t chunk_at = prefill + 1, chunk = 12;  // a chunked-prefill step among the decodes
  std::vector<std::unique_ptr<layers::Qwen3VLTextAttention>> ls;
  std::vector<testing::TextWeights> weights;
  for (int l = 0; l < kLayers; ++l)
    weights.emplace_back(kHidden, kHeads, kKvHeads, kDim, 100 + 10 * l);
  for (int l = 0; l < kLayers; ++l)
    ls.push_back(layers::Qwen3VLTextAttention::create(config(), weights[l].views(), l));

  const KvCacheConfig cc = cache_config(layout, B, max_len);
  KvPageTable table;
  ASSERT_TRUE(KvPageTable::create(table_config(cc), &table).ok());
  std::vector<Tensor> k, v;
  std::vector<KvLayerStorage> storage(kLayers);
  std::vector<KvCache> caches(kLayers);
  std::vector<Tensor> ck, cv;
  for (int l = 0; l < kLayers; ++l) {
    k.emplace_back(DType::kF32, kv_storage_shape(cc));
    v.emplace_back(DType::kF32, kv_storage_shape(cc));
    ck.emplace_back(DType::kF32, kv_storage_shape(cc));
    cv.emplace_back(DType::kF32, kv_storage_shape(cc));
  }
  for (int l = 0; l < kLayers; ++l) {
    ASSERT_TRUE(KvLayerStorage::create(&table, k[l].view(), v[l].view(), {}, &storage[l]).ok());
    ASSERT_TRUE(KvCache::create(cc, ck[l].view(), cv[l].view(), &caches[l]).ok());
  }

  Tensor x(DType::kF32, {B, prefill + steps, kHidden});
  fill_uniform(x, 5);
  for (int64_t at = 0; at < prefill + steps;) {
    const int64_t n = at == 0 ? prefill : at == chunk_at ? chunk : 1;
    const TensorView xs = testing::token_slice(x, 1, at, n);
    const uint64_t plans = detail::decode_plan_count();
    const StepOutputs shared = model_step(ls, table, storage, xs);
    if (at > 0)
      EXPECT_EQ(detail::decode_plan_count() - plans, n == 1 ? 1u : 0u)
          << "one decode plan a step, for every layer";
    // Prefill, and a chunk over the contiguous cache: the layer plans its attention once a call
    // (a chunk over the paged cache runs append attention, which keeps no such counter).
    const bool attention = at == 0 || (n > 1 && layout == KvLayout::kContiguous);
    for (int l = 0; l < kLayers; ++l) {
      EXPECT_EQ(shared.plans[l], attention ? 1u : 0u) << "layer " << l << " tokens " << at;
      EXPECT_EQ(shared.validations[l], attention ? 1u : 0u) << "layer " << l << " tokens " << at;
    }
    for (int l = 0; l < kLayers; ++l) {
      const Tensor alone = (*ls[l])(xs, {}, {}, &caches[l]).output;
      ASSERT_EQ(std::memcmp(shared.outputs[l].view().data, alone.view().data,
                            static_cast<size_t>(alone.bytes())),
                0)
          << "layer " << l << " tokens " << at << ".." << at + n;
      ASSERT_EQ(table.lengths(), caches[l].lengths());
    }
    at += n;
  }

  // A layer error inside a step: abort() leaves the table as it was, and the model goes on.
  const std::vector<int32_t> lens = table.lengths(), blocks = table.block_table();
  ASSERT_TRUE(table.begin_append(1).ok());
  Tensor out(DType::kF32, {B, 1, kHidden});
  const layers::TextAttentionInputs in{testing::token_slice(x, 1, 0, 1), {}, {}};
  std::vector<char> ws(ls[0]->workspace_size(in, &table, &storage[0], {out.view(), {}}));
  ASSERT_TRUE(
      ls[0]
          ->forward(in, &table, &storage[0], {out.view(), {}}, Workspace{ws.data(), ws.size()})
          .ok());
  Tensor wrong(DType::kF32, {B, 2, kHidden});  // two tokens in a one-token step
  const layers::TextAttentionInputs bad{wrong.view(), {}, {}};
  EXPECT_FALSE(
      ls[1]
          ->forward(bad, &table, &storage[1], {wrong.view(), {}}, Workspace{ws.data(), ws.size()})
          .ok());
  ASSERT_TRUE(table.abort().ok());
  EXPECT_EQ(table.lengths(), lens);
  EXPECT_EQ(table.block_table(), blocks);
  // Without an open step the model form refuses to run.
  EXPECT_EQ(
      ls[0]
          ->forward(in, &table, &storage[0], {out.view(), {}}, Workspace{ws.data(), ws.size()})
          .code(),
      StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Layers, TextModel,
                         ::testing::Values(KvLayout::kPaged, KvLayout::kContiguous));

}  // namespace
}  // namespace qwen3vl
