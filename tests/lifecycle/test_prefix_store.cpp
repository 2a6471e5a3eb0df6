// PrefixStore: blocks saved by content come back bit for bit (in this process, after reopening,
// after the saving process was killed mid-write), a different prefix or position finds nothing,
// damaged slots are dropped and never served, a full store evicts the least recently used, and bad
// arguments are typed errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/lifecycle/prefix_store.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl::lifecycle {
namespace {

constexpr int kLayers = 3, kKvHeads = 2, kDim = 32, kBlock = 16;

std::string scratch(const std::string& name) {
  std::filesystem::create_directories(QWEN3VL_TEST_DISK_DIR);
  return std::string(QWEN3VL_TEST_DISK_DIR) + "/" + name;
}

size_t unit_bytes() { return 2 * kBlock * kKvHeads * kDim * 2; }  // f16

// A paged model cache: one table, kLayers storages.
struct Model {
  KvPageTable table;
  std::vector<Tensor> k, v;
  std::vector<KvLayerStorage> storage;
  std::vector<const KvLayerStorage*> layers;

  explicit Model(int64_t batch = 2, int64_t blocks = 64) : storage(kLayers) {
    KvTableConfig c;
    c.layout = KvLayout::kPaged;
    c.batch = batch;
    c.num_blocks = blocks;
    c.block_size = kBlock;
    c.max_blocks = 16;
    EXPECT_TRUE(KvPageTable::create(c, &table).ok());
    for (int l = 0; l < kLayers; ++l) {
      k.emplace_back(DType::kF16, std::vector<int64_t>{blocks, kBlock, kKvHeads, kDim});
      v.emplace_back(DType::kF16, std::vector<int64_t>{blocks, kBlock, kKvHeads, kDim});
    }
    for (int l = 0; l < kLayers; ++l) {
      EXPECT_TRUE(KvLayerStorage::create(&table, k[l].view(), v[l].view(), {}, &storage[l]).ok());
      layers.push_back(&storage[l]);
    }
  }
  // `tokens` rows into sequence `seq` (the others get none), every layer's rows seeded by `seed`.
  void append(int64_t seq, int64_t tokens, uint64_t seed) {
    const int64_t batch = table.config().batch;
    std::vector<int32_t> cu(static_cast<size_t>(batch + 1), 0);
    for (int64_t b = 0; b < batch; ++b) cu[b + 1] = cu[b] + (b == seq ? tokens : 0);
    ASSERT_TRUE(
        table.begin_append(tokens, TensorView::contiguous(cu.data(), DType::kI32, {batch + 1}))
            .ok());
    for (int l = 0; l < kLayers; ++l) {
      Tensor rk(DType::kF16, {tokens, kKvHeads, kDim}), rv(DType::kF16, {tokens, kKvHeads, kDim});
      testing::fill_uniform(rk, seed * 100 + 2 * l);
      testing::fill_uniform(rv, seed * 100 + 2 * l + 1);
      ASSERT_TRUE(storage[l].apply(table, rk.view(), rv.view()).ok());
    }
    ASSERT_TRUE(table.commit().ok());
  }
  // The bytes of rows [0, rows) of sequence `seq` in layer l, K then V.
  std::vector<unsigned char> rows_of(int64_t seq, int l, int64_t rows) const {
    std::vector<unsigned char> out;
    const size_t row = kKvHeads * kDim * 2;
    for (const Tensor* t : {&k[l], &v[l]})
      for (int64_t r = 0; r < rows; ++r) {
        const int32_t id =
            table.block_table()[static_cast<size_t>(seq * table.config().max_blocks + r / kBlock)];
        const auto* p = static_cast<const unsigned char*>(t->view().data) +
                        (static_cast<size_t>(id) * kBlock + static_cast<size_t>(r % kBlock)) * row;
        out.insert(out.end(), p, p + row);
      }
    return out;
  }
};

struct Tokens {
  std::vector<int32_t> ids, positions;  // positions [3][n] (M-RoPE)
  TokenSpan span() const {
    return TokenSpan{ids.data(), positions.data(), static_cast<int64_t>(ids.size()), 3};
  }
};
Tokens random_tokens(int64_t n, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  Tokens t;
  for (int64_t i = 0; i < n; ++i) t.ids.push_back(static_cast<int32_t>(rng() % 150000));
  for (int a = 0; a < 3; ++a)
    for (int64_t i = 0; i < n; ++i) t.positions.push_back(static_cast<int32_t>(i / (a + 1)));
  return t;
}

TEST(PrefixStore, SavedBlocksLoadBitForBitAndAfterReopening) {
  const std::string path = scratch("prefix_roundtrip.slots");
  std::unique_ptr<PrefixStore> store;
  ASSERT_TRUE(PrefixStore::create(path, unit_bytes(), 64, FileStoreOptions{}, &store).ok());
  Model m;
  const Tokens t = random_tokens(70, 1);
  m.append(0, 70, 1);
  int64_t saved = 0;
  ASSERT_TRUE(store->save(m.table, m.layers, 0, t.span(), &saved).ok());
  EXPECT_EQ(saved, 4 * kLayers);  // full blocks only
  ASSERT_TRUE(store->save(m.table, m.layers, 0, t.span(), &saved).ok());
  EXPECT_EQ(saved, 0) << "stored units are not written again";

  int64_t restored = 0;
  ASSERT_TRUE(store->load(m.table, m.layers, 1, t.span(), &restored).ok());
  EXPECT_EQ(restored, 64);
  EXPECT_EQ(m.table.length(1), 64);
  for (int l = 0; l < kLayers; ++l) EXPECT_EQ(m.rows_of(1, l, 64), m.rows_of(0, l, 64)) << l;

  // Another process, later: the index comes back from the slot headers.
  store.reset();
  RecoveryReport report;
  ASSERT_TRUE(PrefixStore::open(path, FileStoreOptions{}, &store, &report).ok());
  EXPECT_EQ(store->stats().units, 4 * kLayers);
  EXPECT_EQ(report.dropped.size(), 0u);
  Model fresh;
  ASSERT_TRUE(store->load(fresh.table, fresh.layers, 0, t.span(), &restored).ok());
  EXPECT_EQ(restored, 64);
  for (int l = 0; l < kLayers; ++l) EXPECT_EQ(fresh.rows_of(0, l, 64), m.rows_of(0, l, 64)) << l;
}

TEST(PrefixStore, OnlyTheSameTokensAtTheSamePositionsMatch) {
  std::unique_ptr<PrefixStore> store;
  ASSERT_TRUE(PrefixStore::create(scratch("prefix_match.slots"), unit_bytes(), 64,
                                  FileStoreOptions{}, &store)
                  .ok());
  Model m;
  const Tokens t = random_tokens(64, 2);
  m.append(0, 64, 2);
  ASSERT_TRUE(store->save(m.table, m.layers, 0, t.span()).ok());
  int64_t restored = -1;
  Tokens diverged = t;  // the third block differs
  diverged.ids[40] ^= 1;
  ASSERT_TRUE(store->load(m.table, m.layers, 1, diverged.span(), &restored).ok());
  EXPECT_EQ(restored, 32);
  ASSERT_TRUE(m.table.reset(1).ok());
  Tokens moved = t;  // same ids, a position shifted in the first block
  moved.positions[64 + 3] += 1;
  ASSERT_TRUE(store->load(m.table, m.layers, 1, moved.span(), &restored).ok());
  EXPECT_EQ(restored, 0);
  EXPECT_EQ(m.table.length(1), 0);
}

TEST(PrefixStore, ADamagedSlotIsDroppedOnOpenAndNeverServed) {
  const std::string path = scratch("prefix_damage.slots");
  std::unique_ptr<PrefixStore> store;
  ASSERT_TRUE(PrefixStore::create(path, unit_bytes(), 64, FileStoreOptions{}, &store).ok());
  Model m;
  const Tokens t = random_tokens(64, 3);
  m.append(0, 64, 3);
  ASSERT_TRUE(store->save(m.table, m.layers, 0, t.span()).ok());
  store.reset();
  {  // flip a byte in the payload of the slot written last (block 3 of the last layer)
    std::unique_ptr<FileStore> file;
    ASSERT_TRUE(FileStore::open(path, FileStoreOptions{}, &file).ok());
    const uint64_t at = file->slot_offset(4 * kLayers - 1) + file->slot_stride() / 2;
    file.reset();
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(&c, 1);
  }
  RecoveryReport report;
  ASSERT_TRUE(PrefixStore::open(path, FileStoreOptions{}, &store, &report).ok());
  EXPECT_EQ(store->stats().dropped_on_open, 1);
  EXPECT_EQ(store->stats().units, 4 * kLayers - 1);
  int64_t restored = 0;
  Model fresh;
  ASSERT_TRUE(store->load(fresh.table, fresh.layers, 0, t.span(), &restored).ok());
  EXPECT_EQ(restored, 48) << "the damaged block and everything after it are not served";
  for (int l = 0; l < kLayers; ++l) EXPECT_EQ(fresh.rows_of(0, l, 48), m.rows_of(0, l, 48));
}

// A child process saves sequence after sequence and reports each save() that returned ok; it is
// killed (SIGKILL) mid-stream. Every acknowledged sequence then loads bit for bit.
TEST(PrefixStore, EveryAcknowledgedSaveSurvivesAKill) {
  const std::string path = scratch("prefix_kill.slots");
  constexpr int64_t kSeqTokens = 48;  // 3 blocks
  constexpr int kSeqs = 400;
  {
    std::unique_ptr<PrefixStore> store;
    ASSERT_TRUE(
        PrefixStore::create(path, unit_bytes(), 3 * kLayers * kSeqs, FileStoreOptions{}, &store)
            .ok());
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    std::unique_ptr<PrefixStore> store;
    if (!PrefixStore::open(path, FileStoreOptions{}, &store).ok()) _exit(2);
    Model m(1, 8);
    for (int i = 0; i < kSeqs; ++i) {
      if (!m.table.reset(0).ok()) _exit(3);
      m.append(0, kSeqTokens, 1000 + i);
      const Tokens t = random_tokens(kSeqTokens, 1000 + i);
      if (!store->save(m.table, m.layers, 0, t.span()).ok()) _exit(4);
      if (write(fds[1], &i, sizeof i) != sizeof i) _exit(5);
    }
    _exit(0);
  }
  close(fds[1]);
  std::vector<int> acknowledged;
  int i = 0;
  while (acknowledged.size() < 20 && read(fds[0], &i, sizeof i) == sizeof i)
    acknowledged.push_back(i);
  usleep(3000);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  while (read(fds[0], &i, sizeof i) == sizeof i) acknowledged.push_back(i);
  close(fds[0]);
  ASSERT_GE(acknowledged.size(), 20u);
  std::printf("%zu saves acknowledged before the kill (child %s)\n", acknowledged.size(),
              WIFSIGNALED(status) ? "killed" : "had finished");

  std::unique_ptr<PrefixStore> store;
  RecoveryReport report;
  ASSERT_TRUE(PrefixStore::open(path, FileStoreOptions{}, &store, &report).ok());
  EXPECT_GE(store->stats().units, static_cast<int64_t>(acknowledged.size()) * 3 * kLayers);
  for (int seq : acknowledged) {
    Model expected(1, 8), loaded(1, 8);
    expected.append(0, kSeqTokens, 1000 + seq);
    const Tokens t = random_tokens(kSeqTokens, 1000 + seq);
    int64_t restored = 0;
    ASSERT_TRUE(store->load(loaded.table, loaded.layers, 0, t.span(), &restored).ok());
    ASSERT_EQ(restored, kSeqTokens) << "acknowledged sequence " << seq << " lost";
    for (int l = 0; l < kLayers; ++l)
      ASSERT_EQ(loaded.rows_of(0, l, kSeqTokens), expected.rows_of(0, l, kSeqTokens)) << seq;
  }
}

TEST(PrefixStore, AFullStoreEvictsTheLeastRecentlyUsed) {
  std::unique_ptr<PrefixStore> store;
  ASSERT_TRUE(PrefixStore::create(scratch("prefix_lru.slots"), unit_bytes(), 4 * kLayers,
                                  FileStoreOptions{}, &store)
                  .ok());
  Model m(1, 8);
  std::vector<Tokens> seqs;
  for (int s = 0; s < 3; ++s) {
    ASSERT_TRUE(m.table.reset(0).ok());
    m.append(0, 32, 50 + s);
    seqs.push_back(random_tokens(32, 50 + s));
    ASSERT_TRUE(store->save(m.table, m.layers, 0, seqs.back().span()).ok());
  }
  EXPECT_EQ(store->stats().evicted, 2 * kLayers);
  Model fresh(1, 8);
  int64_t restored = 0;
  ASSERT_TRUE(store->load(fresh.table, fresh.layers, 0, seqs[0].span(), &restored).ok());
  EXPECT_EQ(restored, 0);
  for (int s : {1, 2}) {
    ASSERT_TRUE(fresh.table.reset(0).ok());
    ASSERT_TRUE(store->load(fresh.table, fresh.layers, 0, seqs[s].span(), &restored).ok());
    EXPECT_EQ(restored, 32) << s;
  }
}

TEST(PrefixStore, BadArgumentsAreTypedErrorsThatChangeNothing) {
  std::unique_ptr<PrefixStore> store;
  ASSERT_TRUE(PrefixStore::create(scratch("prefix_bad.slots"), unit_bytes() * 2, 8,
                                  FileStoreOptions{}, &store)
                  .ok());
  Model m;
  const Tokens t = random_tokens(32, 9);
  m.append(0, 32, 9);
  Status st = store->save(m.table, m.layers, 0, t.span());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("layers[0]"), std::string::npos) << st.to_string();
  ASSERT_TRUE(
      PrefixStore::create(scratch("prefix_bad.slots"), unit_bytes(), 8, FileStoreOptions{}, &store)
          .ok());
  st = store->save(m.table, m.layers, 5, t.span());
  EXPECT_NE(st.message().find("seq = 5"), std::string::npos) << st.to_string();
  TokenSpan null_ids = t.span();
  null_ids.token_ids = nullptr;
  EXPECT_EQ(store->save(m.table, m.layers, 0, null_ids).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->save(m.table, m.layers, 0, t.span()).ok());
  int64_t restored = 0;
  st = store->load(m.table, m.layers, 0, t.span(), &restored);  // seq 0 is not empty
  EXPECT_NE(st.message().find("empty sequence"), std::string::npos) << st.to_string();
  EXPECT_EQ(m.table.length(0), 32);
  EXPECT_EQ(store->stats().units, 2 * kLayers);
}

}  // namespace
}  // namespace qwen3vl::lifecycle
