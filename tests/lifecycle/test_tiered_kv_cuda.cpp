// TieredKvStore over a CUDA arena: CUDA decode through the store (fetch mode) equals CUDA decode
// over all-resident device storage bit for bit, over seeded schedules of prefill, decode steps,
// resets and forks, with an arena of one layer's working set and with "evict everything every
// step" (the host store and the disk hold the rest). Every copy runs on the decode stream, a
// non-blocking one here. Also: a mismatched arena and the asynchronous mover are refused. Label
// gpu: skips where no CUDA device exists.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "qwen3vl/lifecycle/cuda_arena.hpp"
#include "qwen3vl/lifecycle/tiered_kv.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/cuda_device.hpp"

namespace qwen3vl::lifecycle {
namespace {

using testing::fill_uniform;

#define QWEN3VL_REQUIRE_GPU() \
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device"

constexpr int32_t kLayers = 3;
constexpr int64_t kBatch = 2, kHeads = 4, kKvHeads = 2, kDim = 64, kBlock = 16, kMaxBlocks = 6;

KvTableConfig table_config() {
  KvTableConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = kBatch;
  c.block_size = kBlock;
  c.max_blocks = kMaxBlocks;
  c.num_blocks = kBatch * kMaxBlocks + 2;
  return c;
}

ArenaShape arena_shape(int64_t units) {
  ArenaShape s;
  s.units = units;
  s.block_size = kBlock;
  s.kv_heads = kKvHeads;
  s.head_dim = kDim;
  s.dtype = DType::kF16;
  s.layers = kLayers;
  s.batch = kBatch;
  s.max_blocks = kMaxBlocks;
  return s;
}

std::string scratch(const std::string& name) {
  std::filesystem::create_directories(QWEN3VL_TEST_DISK_DIR);
  return std::string(QWEN3VL_TEST_DISK_DIR) + "/" + name;
}

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); }
  ~Stream() { cudaStreamDestroy(s); }
};

void run_schedule(uint64_t seed, int64_t arena_units, int64_t host_blocks, bool evict_all,
                  size_t staging_units) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Stream stream;
  KvPageTable table;
  ASSERT_TRUE(KvPageTable::create(table_config(), &table).ok());
  const KvTableConfig tc = table.config();
  const size_t storage_bytes = static_cast<size_t>(tc.num_blocks * kBlock * kKvHeads * kDim * 2);
  std::vector<DeviceBuffer> k, v;
  std::vector<KvLayerStorage> resident(kLayers);
  for (int l = 0; l < kLayers; ++l) {
    k.emplace_back(storage_bytes);
    v.emplace_back(storage_bytes);
  }
  for (int l = 0; l < kLayers; ++l) {
    TensorView kv[2];
    for (int h = 0; h < 2; ++h) {
      kv[h] = TensorView::contiguous((h ? v : k)[l].data(), DType::kF16,
                                     {tc.num_blocks, kBlock, kKvHeads, kDim});
      kv[h].device = Device::kCUDA;
    }
    ASSERT_TRUE(
        KvLayerStorage::create(&table, kv[0], kv[1], {}, &resident[l], &cuda_kv_storage_ops())
            .ok());
  }
  std::unique_ptr<Arena> arena;
  ASSERT_TRUE(create_cuda_arena(arena_shape(arena_units), 0, stream.s, &arena, staging_units).ok());
  TieredKvConfig cfg;
  cfg.layers = kLayers;
  cfg.kv_heads = kKvHeads;
  cfg.head_dim = kDim;
  cfg.dtype = DType::kF16;
  cfg.host_blocks = host_blocks;
  cfg.disk_blocks = 3 * (kBatch * kMaxBlocks + 2);
  cfg.disk_path = scratch("tiered_cuda_" + std::to_string(seed) + ".slots");
  std::unique_ptr<TieredKvStore> store;
  const Status created = TieredKvStore::create(table, cfg, &store, std::move(arena));
  ASSERT_TRUE(created.ok()) << created.to_string();

  std::unique_ptr<DecodeAttention> decode;
  ASSERT_TRUE(create_decode_cuda(CudaOptions{}, &decode).ok());
  const int64_t q_elems = kBatch * kHeads * kDim;
  DeviceBuffer q(static_cast<size_t>(q_elems) * 4), want(q.bytes()), got(q.bytes());
  std::vector<float> want_host(static_cast<size_t>(q_elems)), got_host(want_host.size());
  int checked = 0;
  for (int step = 0; step < 30; ++step) {
    if (step > 0 && rng() % 7 == 0) {
      const int64_t seq = static_cast<int64_t>(rng() % kBatch);
      ASSERT_TRUE(table.reset(seq).ok());
      if (rng() % 2 && table.length(1 - seq) > 0) ASSERT_TRUE(table.fork(1 - seq, seq).ok());
    }
    const int64_t rows = step == 0 || rng() % 5 == 0 ? 1 + static_cast<int64_t>(rng() % 20) : 1;
    int64_t longest = 0;
    for (int64_t b = 0; b < kBatch; ++b) longest = std::max(longest, table.length(b));
    if (longest + rows > table.capacity())
      for (int64_t b = 0; b < kBatch; ++b) ASSERT_TRUE(table.reset(b).ok());
    ASSERT_TRUE(table.begin_append(rows).ok());
    ASSERT_TRUE(store->sync(table).ok());
    ASSERT_TRUE(table.sync_mirror(stream.s).ok());
    for (int l = 0; l < kLayers; ++l) {
      Tensor nk(DType::kF32, {kBatch, rows, kKvHeads, kDim}),
          nv(DType::kF32, {kBatch, rows, kKvHeads, kDim}),
          qh(DType::kF32, {kBatch, 1, kHeads, kDim});
      fill_uniform(nk, rng());
      fill_uniform(nv, rng());
      fill_uniform(qh, rng());
      DeviceBuffer dk = DeviceBuffer::copy_of(nk), dv = DeviceBuffer::copy_of(nv);
      q.upload(qh.view().data, q.bytes());
      TensorView sk = dk.view_like(nk.view()), sv = dv.view_like(nv.view());
      ASSERT_TRUE(resident[l].apply(table, sk, sv, stream.s).ok());
      const Status applied = store->apply(table, l, sk, sv);
      ASSERT_TRUE(applied.ok()) << applied.to_string();

      DecodeParams p;
      p.q = q.view_like(qh.view());
      p.kv = resident[l].device_view(table);
      p.out = want.view_like(qh.view());
      DeviceBuffer ws(decode->workspace_size(p));
      ASSERT_TRUE(decode->forward(p, Workspace{ws.data(), ws.bytes()}, stream.s).ok());
      KvCacheView tiered;
      const Status acquired = store->acquire(table, l, &tiered);
      ASSERT_TRUE(acquired.ok()) << acquired.to_string();
      p.kv = tiered;
      p.out = got.view_like(qh.view());
      DeviceBuffer ws2(decode->workspace_size(p));
      ASSERT_TRUE(decode->forward(p, Workspace{ws2.data(), ws2.bytes()}, stream.s).ok());
      ASSERT_TRUE(store->release(l).ok());
      ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
      want.download(want_host.data(), want.bytes());
      got.download(got_host.data(), got.bytes());
      ASSERT_EQ(std::memcmp(want_host.data(), got_host.data(), want.bytes()), 0)
          << "layer " << l << " step " << step;
      ++checked;
    }
    ASSERT_TRUE(table.commit().ok());
    if (evict_all) ASSERT_TRUE(store->evict_all().ok());
    ASSERT_TRUE(store->residency().check_invariants().ok());
  }
  ASSERT_TRUE(store->wait_idle().ok());
  EXPECT_EQ(checked, 30 * kLayers);
  const TieredKvStats& s = store->stats();
  EXPECT_GT(s.fetched + s.prefetched, 0) << store->describe();
  std::printf("seed %llu: fetched %lld, prefetched %lld, hits %lld, evicted %lld (clean %lld)\n",
              static_cast<unsigned long long>(seed), static_cast<long long>(s.fetched),
              static_cast<long long>(s.prefetched), static_cast<long long>(s.hits),
              static_cast<long long>(s.evicted), static_cast<long long>(s.clean_drops));
}

TEST(TieredKvCuda, FetchModeIsBitwiseAllResident) {
  QWEN3VL_REQUIRE_GPU();
  for (uint64_t seed : {1u, 2u}) run_schedule(seed, kBatch * kMaxBlocks, 8, false, 64);
}

TEST(TieredKvCuda, EvictEverythingEveryStepThroughSmallStaging) {
  QWEN3VL_REQUIRE_GPU();
  // Three staging buffers: every wave goes through the ring in several chunks.
  for (uint64_t seed : {3u, 4u}) run_schedule(seed, kBatch * kMaxBlocks, 0, true, 3);
}

TEST(TieredKvCuda, MismatchedArenaAndAsyncMoverAreRefused) {
  QWEN3VL_REQUIRE_GPU();
  KvPageTable table;
  ASSERT_TRUE(KvPageTable::create(table_config(), &table).ok());
  TieredKvConfig cfg;
  cfg.layers = kLayers;
  cfg.kv_heads = kKvHeads;
  cfg.head_dim = kDim;
  cfg.host_blocks = 64;
  std::unique_ptr<Arena> arena;
  ArenaShape wrong = arena_shape(16);
  wrong.head_dim = 32;
  ASSERT_TRUE(create_cuda_arena(wrong, 0, nullptr, &arena).ok());
  std::unique_ptr<TieredKvStore> store;
  Status st = TieredKvStore::create(table, cfg, &store, std::move(arena));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("arena: 16 units of 16 x 2 x 32"), std::string::npos)
      << st.to_string();
  ASSERT_TRUE(create_cuda_arena(arena_shape(16), 0, nullptr, &arena).ok());
  cfg.async_mover = true;
  st = TieredKvStore::create(table, cfg, &store, std::move(arena));
  EXPECT_EQ(st.code(), StatusCode::kUnsupported) << st.to_string();
  ArenaShape empty = arena_shape(0);
  EXPECT_EQ(create_cuda_arena(empty, 0, nullptr, &arena).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qwen3vl::lifecycle
