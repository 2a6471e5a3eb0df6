// Everything docs/api.md documents is reachable from the umbrella header alone: decode, Quest,
// block-sparse, merge_states, KV caches, the layers and RoPE (a missing include fails the build).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include <qwen3vl/attention.hpp>

namespace qwen3vl {
namespace {

TEST(UmbrellaHeader, ReachesDecodeQuestBlockSparseAndMergeStates) {
  std::unique_ptr<DecodeAttention> decode;
  ASSERT_TRUE(create_decode_cpu(CpuOptions{}, &decode).ok());
  EXPECT_EQ(decode->device(), Device::kCPU);
  std::unique_ptr<QuestDecode> quest;
  ASSERT_TRUE(QuestDecode::create(QuestConfig{}, std::move(decode), &quest).ok());
  EXPECT_EQ(quest->device(), Device::kCPU);

  std::unique_ptr<Attention> block_sparse;
  ASSERT_TRUE(create_block_sparse_cpu(CpuOptions{}, &block_sparse).ok());
  EXPECT_EQ(block_sparse->variant(), Variant::kBlockSparse);

  // Two partials of one (token, head): equal LSEs weigh them equally.
  Tensor o1(DType::kF32, {1, 1, 2}), o2(DType::kF32, {1, 1, 2}), out(DType::kF32, {1, 1, 2});
  Tensor lse1(DType::kF32, {1, 1}), lse2(DType::kF32, {1, 1}), lse(DType::kF32, {1, 1});
  o1.set(0, 1.0f), o2.set(0, 3.0f);
  ASSERT_TRUE(merge_states(o1, lse1, o2, lse2, out, lse).ok());
  EXPECT_FLOAT_EQ(out.get(0), 2.0f);
  EXPECT_FLOAT_EQ(lse.get(0), std::log(2.0f));

  KvCacheConfig cache;
  EXPECT_EQ(kv_storage_shape(cache).size(), 4u);
  rope::RopeTable table;
  ASSERT_TRUE(rope::make_vision_table(8, 1e4, 4, rope::AngleRecipe::kExact,
                                      rope::TableLayout::kFull, &table)
                  .ok());
  Tensor pos(DType::kI32, {3}), c(DType::kF32, {3, 4}), s(DType::kF32, {3, 4});
  EXPECT_TRUE(rope::rope_cos_sin(table.view(), pos, c, s).ok());
  EXPECT_EQ(c.get(0), 1.0f);
}

}  // namespace
}  // namespace qwen3vl
