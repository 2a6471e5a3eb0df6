// TieredKvStore in fetch mode gives decode exactly what an all-resident cache gives, bit for bit:
// seeded random schedules of prefill, decode steps, sequence resets and forks (copy-on-write),
// with an arena of one layer's working set, the rest on the host and on disk, and with
// "evict everything every step", each with the asynchronous mover and with the synchronous one. A
// disk read that fails under a fetch or a prefetch is the acquire's typed error, the table stays
// consistent, and the same call succeeds once the fault clears. Also: admission control, and bad
// arguments named.
#include "qwen3vl/lifecycle/tiered_kv.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/layer_storage.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "src/lifecycle/io_faults.hpp"

namespace qwen3vl::lifecycle {
namespace {

using testing::fill_uniform;

constexpr int32_t kLayers = 3;
constexpr int64_t kBatch = 2, kHeads = 4, kKvHeads = 2, kDim = 32, kBlock = 16, kMaxBlocks = 6;

// Under ThreadSanitizer the decode runs on the calling thread: libtbb is not instrumented, so its
// task handoffs would read as races between the caller's (or the mover's) writes and the kernel.
#if defined(__SANITIZE_THREAD__)
constexpr int kDecodeThreads = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kDecodeThreads = 1;
#else
constexpr int kDecodeThreads = 2;
#endif
#else
constexpr int kDecodeThreads = 2;
#endif

KvTableConfig table_config() {
  KvTableConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = kBatch;
  c.block_size = kBlock;
  c.max_blocks = kMaxBlocks;
  c.num_blocks = kBatch * kMaxBlocks + 2;
  return c;
}

std::string scratch_path(const std::string& name) {
  std::filesystem::create_directories(QWEN3VL_TEST_DISK_DIR);
  return std::string(QWEN3VL_TEST_DISK_DIR) + "/" + name;
}

struct Schedule {
  uint64_t seed;
  int64_t arena_blocks, host_blocks, disk_blocks;
  bool evict_every_step;
  EvictionPolicy policy;
  bool async_mover = true;
  // At this step, just before layer 0 is acquired, the disk fails one read: the first fetch of
  // layer 0 or, with fault_prefetch, the first read after them (a prefetch of a later layer).
  int fault_step = -1;
  bool fault_prefetch = false;
  bool keep_disk_copies = true;
};

// The blocks layer `layer` reads that are not in the arena now.
int count_not_resident(const KvPageTable& table, const TieredKvStore& store, int32_t layer) {
  std::vector<int32_t> seen;
  const KvTableConfig& t = table.config();
  for (int64_t b = 0; b < t.batch; ++b) {
    const int64_t n =
        (table.visible_lengths()[static_cast<size_t>(b)] + t.block_size - 1) / t.block_size;
    for (int64_t j = 0; j < n; ++j) {
      const int32_t id = table.block_table()[static_cast<size_t>(b * t.max_blocks + j)];
      if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
      seen.push_back(id);
    }
  }
  int n = 0;
  for (int32_t id : seen) n += store.residency().state(UnitId{layer, id})->tier != Tier::kDevice;
  return n;
}

// The same steps into per-layer KvLayerStorage (all resident) and into a TieredKvStore; after
// every step each layer's decode over both must match to the bit.
void run_schedule(const Schedule& sch) {
  SCOPED_TRACE("seed " + std::to_string(sch.seed) +
               (sch.async_mover ? ", asynchronous mover" : ", synchronous mover"));
  detail::io_faults().reset();
  std::mt19937_64 rng(sch.seed);
  KvPageTable table;
  ASSERT_TRUE(KvPageTable::create(table_config(), &table).ok());
  const KvTableConfig tc = table.config();
  std::vector<Tensor> k, v;
  std::vector<KvLayerStorage> resident(kLayers);
  for (int l = 0; l < kLayers; ++l) {
    k.emplace_back(DType::kF16, std::vector<int64_t>{tc.num_blocks, kBlock, kKvHeads, kDim});
    v.emplace_back(DType::kF16, std::vector<int64_t>{tc.num_blocks, kBlock, kKvHeads, kDim});
  }
  for (int l = 0; l < kLayers; ++l)
    ASSERT_TRUE(KvLayerStorage::create(&table, k[l].view(), v[l].view(), {}, &resident[l]).ok());

  TieredKvConfig cfg;
  cfg.layers = kLayers;
  cfg.kv_heads = kKvHeads;
  cfg.head_dim = kDim;
  cfg.dtype = DType::kF16;
  cfg.arena_blocks = sch.arena_blocks;
  cfg.host_blocks = sch.host_blocks;
  cfg.disk_blocks = sch.disk_blocks;
  cfg.disk_path = scratch_path("tiered_" + std::to_string(sch.seed) + ".slots");
  cfg.policy = sch.policy;
  cfg.async_mover = sch.async_mover;
  cfg.keep_disk_copies = sch.keep_disk_copies;
  std::unique_ptr<TieredKvStore> store;
  const Status created = TieredKvStore::create(table, cfg, &store);
  ASSERT_TRUE(created.ok()) << created.to_string();

  std::unique_ptr<DecodeAttention> decode;
  CpuOptions cpu;
  cpu.num_threads = kDecodeThreads;
  ASSERT_TRUE(create_decode_cpu(cpu, &decode).ok());

  // A call that fails under the injected fault: the typed error, a consistent table, and the same
  // call succeeding once the fault has cleared.
  int faults_seen = 0;
  const auto call = [&](const std::function<Status()>& f) {
    Status st = f();
    if (st.ok()) return st;
    EXPECT_EQ(st.code(), StatusCode::kIoError) << st.to_string();
    EXPECT_TRUE(store->residency().check_invariants().ok());
    ++faults_seen;
    detail::io_faults().reset();
    return f();
  };
  int checked = 0;
  for (int step = 0; step < 40; ++step) {
    // Now and then a sequence starts over: empty, or a fork of the other (shared blocks, then
    // copy-on-write on its next append).
    if (step > 0 && rng() % 7 == 0) {
      const int64_t seq = static_cast<int64_t>(rng() % kBatch);
      ASSERT_TRUE(table.reset(seq).ok());
      if (rng() % 2 && table.length(1 - seq) > 0) ASSERT_TRUE(table.fork(1 - seq, seq).ok());
    }
    int64_t rows = step == 0 || rng() % 5 == 0 ? 1 + static_cast<int64_t>(rng() % 20) : 1;
    int64_t longest = 0;
    for (int64_t b = 0; b < kBatch; ++b) longest = std::max(longest, table.length(b));
    if (longest + rows > table.capacity()) {  // full: start both over
      for (int64_t b = 0; b < kBatch; ++b) ASSERT_TRUE(table.reset(b).ok());
    }
    ASSERT_TRUE(table.begin_append(rows).ok());
    ASSERT_TRUE(store->sync(table).ok());
    for (int l = 0; l < kLayers; ++l) {
      Tensor nk(DType::kF32, {kBatch, rows, kKvHeads, kDim}),
          nv(DType::kF32, {kBatch, rows, kKvHeads, kDim});
      fill_uniform(nk, rng());
      fill_uniform(nv, rng());
      ASSERT_TRUE(resident[l].apply(table, nk.view(), nv.view()).ok());
      const Status applied = call([&] { return store->apply(table, l, nk.view(), nv.view()); });
      ASSERT_TRUE(applied.ok()) << applied.to_string();

      Tensor q(DType::kF32, {kBatch, 1, kHeads, kDim});
      fill_uniform(q, rng());
      Tensor want(DType::kF32, {kBatch, 1, kHeads, kDim}),
          got(DType::kF32, {kBatch, 1, kHeads, kDim});
      DecodeParams p;
      p.q = q.view();
      p.kv = resident[l].view(table);
      p.out = want.view();
      decode->run(p);
      KvCacheView tiered;
      if (step == sch.fault_step && l == 0)
        detail::io_faults().fail_next(
            detail::FaultOp::kRead, 1, EIO,
            sch.fault_prefetch ? count_not_resident(table, *store, 0) : 0);
      const Status acquired = call([&] { return store->acquire(table, l, &tiered); });
      ASSERT_TRUE(acquired.ok()) << acquired.to_string();
      p.kv = tiered;
      p.out = got.view();
      decode->run(p);
      ASSERT_TRUE(store->release(l).ok());
      ASSERT_EQ(std::memcmp(want.view().data, got.view().data, static_cast<size_t>(want.bytes())),
                0)
          << "layer " << l << " step " << step;
      ++checked;
    }
    ASSERT_TRUE(table.commit().ok());
    if (sch.evict_every_step) ASSERT_TRUE(store->evict_all().ok());
    ASSERT_TRUE(store->residency().check_invariants().ok());
  }
  if (sch.fault_step >= 0) EXPECT_EQ(faults_seen, 1);
  ASSERT_TRUE(store->wait_idle().ok());
  const TieredKvStats& s = store->stats();
  EXPECT_EQ(checked, 40 * kLayers);
  // The schedules are built to move blocks: a test that never fetched would prove nothing.
  EXPECT_GT(s.fetched + s.prefetched, 0) << store->describe();
  // Evicting everything to a disk each step: the blocks read up and not written since go back
  // into their clean copies.
  if (sch.evict_every_step && sch.host_blocks == 0 && sch.keep_disk_copies)
    EXPECT_GT(s.clean_drops, 0);
  if (!sch.keep_disk_copies) EXPECT_EQ(s.clean_drops, 0);
  std::printf(
      "seed %llu, %s: fetched %lld, prefetched %lld, hits %lld, evicted %lld (clean %lld), failed "
      "%lld, %lld bytes moved; stall %.2f ms, busy %.2f ms\n",
      static_cast<unsigned long long>(sch.seed), sch.async_mover ? "async" : "sync",
      static_cast<long long>(s.fetched), static_cast<long long>(s.prefetched),
      static_cast<long long>(s.hits), static_cast<long long>(s.evicted),
      static_cast<long long>(s.clean_drops), static_cast<long long>(s.failed),
      static_cast<long long>(s.bytes_moved(store->unit_bytes())), s.stall_ms, s.busy_ms);
}

TEST(TieredKv, FetchModeIsBitwiseAllResidentWithHostAndDisk) {
  // Arena: one layer's working set (both sequences at their longest); host a few blocks more.
  for (bool async : {false, true})
    for (uint64_t seed : {1u, 2u, 3u})
      run_schedule({seed, kBatch * kMaxBlocks, 8, 3 * (kBatch * kMaxBlocks + 2), false,
                    EvictionPolicy::kScheduleDriven, async});
}

TEST(TieredKv, EvictEverythingEveryStep) {
  for (bool async : {false, true})
    for (uint64_t seed : {4u, 5u})
      for (bool copies : {true, false})
        run_schedule({seed, kBatch * kMaxBlocks, 0, 3 * (kBatch * kMaxBlocks + 2), true,
                      EvictionPolicy::kLru, async, -1, false, copies});
}

TEST(TieredKv, HostOnlyLowerTier) {
  for (bool async : {false, true})
    run_schedule({6, kBatch * kMaxBlocks + 3, 3 * (kBatch * kMaxBlocks + 2), 0, true,
                  EvictionPolicy::kScheduleDriven, async});
}

// Everything on disk at each step's start (evict everything), so layer 0's acquire reads from disk;
// an arena of every layer's working set leaves room for prefetches.
TEST(TieredKv, AFailedDiskReadIsTheAcquiresErrorAndARetrySucceeds) {
  for (bool async : {false, true})
    for (bool prefetch : {false, true})
      run_schedule({7, kLayers * kBatch * kMaxBlocks, 0, 3 * (kBatch * kMaxBlocks + 2), true,
                    EvictionPolicy::kScheduleDriven, async, 5, prefetch});
  detail::io_faults().reset();
}

TEST(TieredKv, ALayerThatCannotFitIsRefused) {
  KvPageTable table;
  ASSERT_TRUE(KvPageTable::create(table_config(), &table).ok());
  TieredKvConfig cfg;
  cfg.layers = 1;
  cfg.kv_heads = kKvHeads;
  cfg.head_dim = kDim;
  cfg.arena_blocks = 2;
  cfg.host_blocks = 64;
  std::unique_ptr<TieredKvStore> store;
  ASSERT_TRUE(TieredKvStore::create(table, cfg, &store).ok());
  // 3 blocks per sequence, 2 sequences: 6 blocks read, the arena holds 2.
  ASSERT_TRUE(table.begin_append(3 * kBlock).ok());
  ASSERT_TRUE(store->sync(table).ok());
  Tensor nk(DType::kF32, {kBatch, 3 * kBlock, kKvHeads, kDim});
  fill_uniform(nk, 9);
  const Status applied = store->apply(table, 0, nk.view(), nk.view());
  ASSERT_EQ(applied.code(), StatusCode::kOutOfMemory) << applied.to_string();
  ASSERT_TRUE(table.abort().ok());
}

TEST(TieredKv, BadArgumentsAreNamed) {
  KvPageTable table;
  ASSERT_TRUE(KvPageTable::create(table_config(), &table).ok());
  TieredKvConfig cfg;
  cfg.layers = 2;
  cfg.kv_heads = kKvHeads;
  cfg.head_dim = kDim;
  std::unique_ptr<TieredKvStore> store;
  Status st = TieredKvStore::create(table, cfg, &store);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("arena_blocks"), std::string::npos) << st.message();
  cfg.arena_blocks = 4;
  cfg.disk_blocks = 4;
  st = TieredKvStore::create(table, cfg, &store);
  EXPECT_NE(st.message().find("disk_path"), std::string::npos) << st.message();
  cfg.disk_blocks = 0;
  ASSERT_TRUE(TieredKvStore::create(table, cfg, &store).ok());
  KvCacheView view;
  st = store->acquire(table, 2, &view);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("layer = 2"), std::string::npos) << st.message();
  Tensor nk(DType::kF32, {kBatch, 1, kKvHeads, kDim});
  st = store->apply(table, 0, nk.view(), nk.view());
  EXPECT_NE(st.message().find("no open append step"), std::string::npos) << st.message();
  // Source rows that do not match the step or the storage: typed errors, nothing written.
  ASSERT_TRUE(table.begin_append(1).ok());
  ASSERT_TRUE(store->sync(table).ok());
  Tensor wide(DType::kF32, {kBatch, 1, kKvHeads + 1, kDim});
  st = store->apply(table, 0, wide.view(), wide.view());
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch) << st.to_string();
  EXPECT_NE(st.message().find("k.shape"), std::string::npos) << st.message();
  Tensor two(DType::kF32, {kBatch, 2, kKvHeads, kDim});
  st = store->apply(table, 0, two.view(), two.view());
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch) << st.to_string();
  EXPECT_NE(st.message().find("the step appends 1"), std::string::npos) << st.message();
  EXPECT_EQ(store->residency().live_units(), 0);
  ASSERT_TRUE(table.abort().ok());
}

}  // namespace
}  // namespace qwen3vl::lifecycle
