// One KvPageTable shared by three layers' storage equals three separate KvCaches fed the same
// appends (ragged appends, fork + copy-on-write, reset, contiguous fork): the same lengths, block
// tables, reference counts, stored rows and decode outputs. A step aborted after some layers wrote
// (or refused before any) leaves the table as it was, and the model goes on like the caches.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr int kLayers = 3;
constexpr int64_t kHkv = 2, kDim = 24;

KvCacheConfig config_of(KvLayout layout, int64_t batch) {
  KvCacheConfig c;
  c.layout = layout;
  c.batch = batch;
  c.kv_heads = kHkv;
  c.head_dim = kDim;
  c.dtype = DType::kF16;  // conversions on append: both sides round alike
  c.max_len = 80;
  c.block_size = 16;
  c.max_blocks = 5;
  c.num_blocks = 12;
  return c;
}

// The model: one table, a storage per layer.
struct Model {
  KvPageTable table;
  std::vector<Tensor> k, v;
  std::vector<KvLayerStorage> layers;
  explicit Model(const KvCacheConfig& c) {
    throw_if_error(KvPageTable::create(table_config(c), &table));
    layers.resize(kLayers);
    for (int l = 0; l < kLayers; ++l) {
      k.emplace_back(c.dtype, kv_storage_shape(c));
      v.emplace_back(c.dtype, kv_storage_shape(c));
    }
    for (int l = 0; l < kLayers; ++l)
      throw_if_error(KvLayerStorage::create(&table, k[l].view(), v[l].view(), {}, &layers[l]));
  }
};

// The reference: a KvCache per layer.
struct Separate {
  std::vector<Tensor> k, v;
  std::vector<KvCache> caches;
  explicit Separate(const KvCacheConfig& c) {
    caches.resize(kLayers);
    for (int l = 0; l < kLayers; ++l) {
      k.emplace_back(c.dtype, kv_storage_shape(c));
      v.emplace_back(c.dtype, kv_storage_shape(c));
    }
    for (int l = 0; l < kLayers; ++l)
      throw_if_error(KvCache::create(c, k[l].view(), v[l].view(), &caches[l]));
  }
};

// Per-layer sources of one append: [batch, T, Hkv, D] or ragged [rows, Hkv, D].
std::vector<Tensor> sources(std::vector<int64_t> shape, uint64_t seed) {
  std::vector<Tensor> s;
  for (int l = 0; l < kLayers; ++l) {
    s.emplace_back(DType::kF32, shape);
    fill_uniform(s.back(), seed * 10 + static_cast<uint64_t>(l));
  }
  return s;
}

// The model's step over every layer, committed.
void model_append(Model& m, const std::vector<Tensor>& k, const std::vector<Tensor>& v,
                  const TensorView& cu = {}) {
  const int64_t rows = cu.present() ? k[0].view().shape[0] : k[0].view().shape[1];
  ASSERT_TRUE(m.table.begin_append(rows, cu).ok());
  for (int l = 0; l < kLayers; ++l)
    ASSERT_TRUE(m.layers[l].apply(m.table, k[l].view(), v[l].view()).ok());
  ASSERT_TRUE(m.table.commit().ok());
}

void separate_append(Separate& s, const std::vector<Tensor>& k, const std::vector<Tensor>& v,
                     const TensorView& cu = {}) {
  for (int l = 0; l < kLayers; ++l)
    ASSERT_TRUE(s.caches[l].append(k[l].view(), v[l].view(), cu).ok());
}

// Decode of layer l's view (two new rows per sequence, fixed q), through plan / run.
Tensor decode_out(const KvCacheView& kv, int64_t batch) {
  CpuOptions o;
  o.num_threads = 2;
  std::unique_ptr<DecodeAttention> dec;
  throw_if_error(create_decode_cpu(o, &dec));
  Tensor q(DType::kF32, {batch, 1, 2 * kHkv, kDim}), out(DType::kF32, {batch, 1, 2 * kHkv, kDim});
  fill_uniform(q, 99);
  DecodeParams p;
  p.q = q.view();
  p.kv = kv;
  p.out = out.view();
  dec->run(p);
  return out;
}

// Everything a reader can see agrees: table state, every stored row, decode.
void expect_same(const Model& m, const Separate& s) {
  for (int l = 0; l < kLayers; ++l) {
    const KvCache& c = s.caches[l];
    ASSERT_EQ(m.table.lengths(), c.lengths()) << "layer " << l;
    ASSERT_EQ(m.table.block_table(), c.block_table()) << "layer " << l;
    ASSERT_EQ(m.table.allocator().free_count(), c.allocator().free_count());
    for (int32_t id = 0; id < m.table.allocator().capacity(); ++id)
      ASSERT_EQ(m.table.allocator().ref_count(id), c.allocator().ref_count(id)) << "block " << id;
    const KvCacheView a = m.layers[l].view(m.table), b = c.view();
    const auto slot = [](const KvCacheView& kv, int64_t seq, int64_t j) {
      return kv.layout == KvLayout::kPaged ? detail::paged_indexer(kv).slot(seq, j)
                                           : detail::KvSlot{seq, j};
    };
    for (int64_t seq = 0; seq < a.batch(); ++seq)
      for (int64_t j = 0; j < m.table.length(seq); ++j)
        for (const bool value : {false, true}) {
          const TensorView& ta = value ? a.v : a.k;
          const TensorView& tb = value ? b.v : b.k;
          const detail::KvSlot sa = slot(a, seq, j), sb = slot(b, seq, j);
          ASSERT_EQ(
              std::memcmp(static_cast<const char*>(ta.data) + ta.offset(sa.major, sa.minor, 0) * 2,
                          static_cast<const char*>(tb.data) + tb.offset(sb.major, sb.minor, 0) * 2,
                          static_cast<size_t>(kHkv * kDim * 2)),
              0)
              << "layer " << l << " sequence " << seq << " token " << j << (value ? " v" : " k");
        }
    if (m.table.lengths()[0] > 0) {
      const Tensor da = decode_out(a, a.batch()), db = decode_out(b, b.batch());
      ASSERT_EQ(std::memcmp(da.view().data, db.view().data, static_cast<size_t>(da.numel()) * 4), 0)
          << "decode of layer " << l;
    }
  }
}

TEST(KvPageTable, ThreeLayersEqualThreeCachesPaged) {
  const KvCacheConfig c = config_of(KvLayout::kPaged, 3);
  Model m(c);
  Separate s(c);
  expect_same(m, s);

  // Ragged prompt: 20, 0 and 17 tokens.
  Tensor cu(DType::kI32, {4});
  const int32_t counts[] = {0, 20, 20, 37};
  std::memcpy(cu.view().data, counts, sizeof(counts));
  auto k = sources({37, kHkv, kDim}, 1), v = sources({37, kHkv, kDim}, 2);
  model_append(m, k, v, cu.view());
  separate_append(s, k, v, cu.view());
  expect_same(m, s);

  // Fork sequence 0 into 1: shared blocks, the partial last one copied on the next append.
  ASSERT_TRUE(m.table.fork(0, 1).ok());
  for (auto& cache : s.caches) ASSERT_TRUE(cache.fork(0, 1).ok());
  expect_same(m, s);
  EXPECT_EQ(m.table.allocator().ref_count(m.table.block_table()[0]), 2);

  for (int step = 0; step < 3; ++step) {  // decode-sized steps: copy-on-write on the first
    auto ks = sources({3, 1, kHkv, kDim}, 10 + step), vs = sources({3, 1, kHkv, kDim}, 20 + step);
    model_append(m, ks, vs);
    separate_append(s, ks, vs);
    expect_same(m, s);
  }

  // A step aborted after two layers wrote: nothing committed is lost, the table is as before.
  const std::vector<int32_t> lens = m.table.lengths(), table = m.table.block_table();
  const int32_t free_before = m.table.allocator().free_count();
  auto ks = sources({3, 15, kHkv, kDim}, 30), vs = sources({3, 15, kHkv, kDim}, 31);
  ASSERT_TRUE(m.table.begin_append(15).ok());
  EXPECT_LT(m.table.allocator().free_count(), free_before);
  EXPECT_EQ(m.table.visible_lengths()[0], lens[0] + 15);
  EXPECT_EQ(m.table.length(0), lens[0]);  // committed lengths stay until commit()
  ASSERT_TRUE(m.layers[0].apply(m.table, ks[0].view(), vs[0].view()).ok());
  ASSERT_TRUE(m.layers[1].apply(m.table, ks[1].view(), vs[1].view()).ok());
  Tensor wrong(DType::kF32, {3, 14, kHkv, kDim});  // not the step's 15 tokens
  EXPECT_EQ(m.layers[2].apply(m.table, wrong.view(), wrong.view()).code(),
            StatusCode::kShapeMismatch);
  EXPECT_EQ(m.table.fork(0, 2).code(), StatusCode::kInvalidArgument);  // no fork inside a step
  ASSERT_TRUE(m.table.abort().ok());
  EXPECT_EQ(m.table.lengths(), lens);
  EXPECT_EQ(m.table.block_table(), table);
  EXPECT_EQ(m.table.allocator().free_count(), free_before);
  EXPECT_FALSE(m.table.step_open());
  expect_same(m, s);

  // Refused before anything is taken: past the capacity, or more blocks than are free.
  EXPECT_EQ(m.table.begin_append(60).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.table.begin_append(57).code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(m.table.commit().code(), StatusCode::kInvalidArgument);  // nothing open
  expect_same(m, s);

  // Reset, then a ragged step over a reused block.
  ASSERT_TRUE(m.table.reset(2).ok());
  for (auto& cache : s.caches) ASSERT_TRUE(cache.reset(2).ok());
  expect_same(m, s);
  const int32_t counts2[] = {0, 1, 1, 19};
  std::memcpy(cu.view().data, counts2, sizeof(counts2));
  auto k2 = sources({19, kHkv, kDim}, 40), v2 = sources({19, kHkv, kDim}, 41);
  model_append(m, k2, v2, cu.view());
  separate_append(s, k2, v2, cu.view());
  expect_same(m, s);
}

TEST(KvPageTable, ThreeLayersEqualThreeCachesContiguous) {
  const KvCacheConfig c = config_of(KvLayout::kContiguous, 2);
  Model m(c);
  Separate s(c);
  auto k = sources({2, 21, kHkv, kDim}, 5), v = sources({2, 21, kHkv, kDim}, 6);
  model_append(m, k, v);
  separate_append(s, k, v);
  ASSERT_TRUE(m.table.reset(1).ok());
  for (auto& cache : s.caches) ASSERT_TRUE(cache.reset(1).ok());
  // A contiguous fork copies rows in every layer: the table lists the run, each storage applies it.
  std::vector<KvRun> copies;
  ASSERT_TRUE(m.table.fork(0, 1, &copies).ok());
  ASSERT_EQ(copies.size(), 1u);
  for (auto& layer : m.layers) ASSERT_TRUE(layer.copy(copies).ok());
  for (auto& cache : s.caches) ASSERT_TRUE(cache.fork(0, 1).ok());
  expect_same(m, s);
  auto k2 = sources({2, 2, kHkv, kDim}, 7), v2 = sources({2, 2, kHkv, kDim}, 8);
  model_append(m, k2, v2);
  separate_append(s, k2, v2);
  expect_same(m, s);
}

TEST(KvPageTable, StepsCarryPositionDeltasAndRejectMisuse) {
  const KvCacheConfig c = config_of(KvLayout::kPaged, 2);
  Model m(c);
  ASSERT_TRUE(m.table.begin_append(4).ok());
  EXPECT_EQ(m.table.begin_append(1).code(), StatusCode::kInvalidArgument);  // one step at a time
  EXPECT_EQ(m.table.reset(0).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.table.set_position_delta(1, -3).ok());
  EXPECT_EQ(m.table.position_delta(1), 0);  // published by commit()
  ASSERT_TRUE(m.table.commit().ok());
  EXPECT_EQ(m.table.position_delta(1), -3);
  EXPECT_EQ(m.table.length(1), 4);
  ASSERT_TRUE(m.table.begin_append(1).ok());
  ASSERT_TRUE(m.table.set_position_delta(1, 7).ok());
  ASSERT_TRUE(m.table.abort().ok());
  EXPECT_EQ(m.table.position_delta(1), -3);  // dropped with the step
  EXPECT_EQ(m.table.length(1), 4);

  // Storage must fit the table it applies.
  KvCacheConfig other = c;
  other.num_blocks = 7;
  Tensor k(c.dtype, kv_storage_shape(other)), v(c.dtype, kv_storage_shape(other));
  KvLayerStorage bad;
  EXPECT_EQ(KvLayerStorage::create(&m.table, k.view(), v.view(), {}, &bad).code(),
            StatusCode::kShapeMismatch);
  EXPECT_EQ(m.layers[0].apply(m.table, k.view(), v.view()).code(),
            StatusCode::kInvalidArgument);  // no step
}

// The version a device mirror keys its uploads on changes with what decode reads, and only then.
TEST(KvPageTable, VersionFollowsWhatDecodeReads) {
  Model m(config_of(KvLayout::kPaged, 2));
  const uint64_t v0 = m.table.version();
  ASSERT_TRUE(m.table.begin_append(3).ok());
  const uint64_t v1 = m.table.version();
  EXPECT_NE(v1, v0);
  ASSERT_TRUE(m.table.commit().ok());
  EXPECT_EQ(m.table.version(), v1);  // the step's lengths are the committed ones now
  ASSERT_TRUE(m.table.set_position_delta(0, 2).ok());
  EXPECT_EQ(m.table.version(), v1);  // deltas are not mirrored
  ASSERT_TRUE(m.table.fork(0, 1).code() == StatusCode::kInvalidArgument);  // 1 is not empty
  EXPECT_EQ(m.table.version(), v1);
  ASSERT_TRUE(m.table.reset(1).ok());
  EXPECT_NE(m.table.version(), v1);
}

}  // namespace
}  // namespace qwen3vl
