// Block stores: round trips on the host tier and on the file tier with each engine, on a real disk
// and on tmpfs; batches deeper than the queue; reopen + recover; argument errors; CRC32C.
#include <gtest/gtest.h>

#include <iostream>
#include <tuple>

#include "lifecycle/store_test_support.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"
#include "src/lifecycle/crc32c.hpp"
#include "src/lifecycle/slot_format.hpp"

namespace qwen3vl::lifecycle {
namespace {

using testing::payload;
using testing::ScratchDir;

TEST(Crc32c, KnownValueAndPathsAgree) {
  const char* text = "123456789";
  EXPECT_EQ(detail::crc32c(text, 9), 0xE3069283u);  // the CRC32C check value
  EXPECT_EQ(detail::crc32c_table(text, 9), 0xE3069283u);
  for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 4097}) {
    const auto data = payload(n, 100 + n);
    EXPECT_EQ(detail::crc32c(data.data(), n), detail::crc32c_table(data.data(), n)) << n;
  }
  std::cout << "crc32c path: " << (detail::crc32c_uses_sse42() ? "sse4.2" : "table") << "\n";
}

TEST(BlockStore, Names) {
  EXPECT_STREQ(to_string(Tier::kDevice), "device");
  EXPECT_STREQ(to_string(Tier::kHost), "host");
  EXPECT_STREQ(to_string(Tier::kDisk), "disk");
  EXPECT_STREQ(to_string(IoEngine::kIoUring), "io_uring");
  EXPECT_STREQ(to_string(IoOp::kWrite), "write");
}

// Writes every slot with seeded data, reads it back (checked tag), and checks version and tag.
void round_trip(BlockStore& store, uint64_t seed) {
  const size_t n = store.block_bytes();
  for (int64_t s = 0; s < store.slots(); ++s) {
    const auto data = payload(n, seed + s);
    ASSERT_TRUE(store.write(s, data.data(), /*tag=*/0xABC0 + s, /*version=*/7 + s).ok());
  }
  for (int64_t s = store.slots() - 1; s >= 0; --s) {
    std::vector<unsigned char> out(n, 0);
    const uint64_t tag = 0xABC0 + s;
    uint64_t version = 0;
    const Status st = store.read(s, out.data(), &tag, &version);
    ASSERT_TRUE(st.ok()) << st.to_string();
    EXPECT_EQ(out, payload(n, seed + s)) << "slot " << s;
    EXPECT_EQ(version, 7u + s);
  }
  // A wrong expected tag is corruption from the caller's point of view: never served.
  std::vector<unsigned char> out(n);
  const uint64_t wrong = 1;
  const Status st = store.read(0, out.data(), &wrong);
  EXPECT_EQ(st.code(), StatusCode::kDataCorrupt);
  EXPECT_NE(st.message().find("slot 0"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("tag"), std::string::npos) << st.message();
}

TEST(HostStore, RoundTripOddSizes) {
  for (size_t bytes : {size_t{1}, size_t{63}, size_t{4097}, size_t{65539}}) {
    std::unique_ptr<HostStore> store;
    ASSERT_TRUE(HostStore::create(bytes, 5, &store).ok());
    EXPECT_EQ(store->tier(), Tier::kHost);
    round_trip(*store, 11 * bytes);
  }
}

TEST(HostStore, EmptySlotIsNotServedAndRecoverCounts) {
  std::unique_ptr<HostStore> store;
  ASSERT_TRUE(HostStore::create(100, 4, &store).ok());
  std::vector<unsigned char> out(100);
  const Status st = store->read(2, out.data());
  EXPECT_EQ(st.code(), StatusCode::kDataCorrupt);
  EXPECT_NE(st.message().find("never written"), std::string::npos) << st.message();
  const auto data = payload(100, 3);
  ASSERT_TRUE(store->write(1, data.data(), 5, 6).ok());
  RecoveryReport report;
  ASSERT_TRUE(store->recover(&report).ok());
  ASSERT_EQ(report.valid.size(), 1u);
  EXPECT_EQ(report.valid[0].slot, 1);
  EXPECT_EQ(report.valid[0].tag, 5u);
  EXPECT_EQ(report.valid[0].version, 6u);
  EXPECT_EQ(report.empty, 3);
}

TEST(HostStore, AllocatorHookIsUsed) {
  int allocations = 0, frees = 0;
  HostAllocator base = default_host_allocator();
  HostAllocator counting;
  counting.allocate = [&](size_t bytes) {
    ++allocations;
    return base.allocate(bytes);
  };
  counting.deallocate = [&](void* p) {
    ++frees;
    base.deallocate(p);
  };
  counting.name = "counting";
  {
    std::unique_ptr<HostStore> store;
    ASSERT_TRUE(HostStore::create(256, 3, &store, counting).ok());
    EXPECT_NE(store->describe().find("counting"), std::string::npos);
    round_trip(*store, 5);
  }
  EXPECT_EQ(allocations, 1);
  EXPECT_EQ(frees, 1);
  HostAllocator failing = counting;
  failing.allocate = [](size_t) -> void* { return nullptr; };
  std::unique_ptr<HostStore> store;
  EXPECT_EQ(HostStore::create(256, 3, &store, failing).code(), StatusCode::kOutOfMemory);
}

TEST(HostStore, BadArguments) {
  std::unique_ptr<HostStore> store;
  Status st = HostStore::create(0, 4, &store);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("block_bytes = 0"), std::string::npos) << st.message();
  st = HostStore::create(16, 0, &store);
  EXPECT_NE(st.message().find("slots = 0"), std::string::npos) << st.message();
  ASSERT_TRUE(HostStore::create(16, 4, &store).ok());
  std::vector<unsigned char> buf(16);
  st = store->write(4, buf.data(), 0, 0);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("slot = 4: allowed 0..3"), std::string::npos) << st.message();
  st = store->write(-1, buf.data(), 0, 0);
  EXPECT_NE(st.message().find("slot = -1"), std::string::npos) << st.message();
  st = store->read(0, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kNullPointer);
  EXPECT_NE(st.message().find("buffer = null"), std::string::npos) << st.message();
  // A bad request in a batch fails alone; the good one runs.
  IoRequest requests[2];
  requests[0].op = IoOp::kWrite;
  requests[0].slot = 9;
  requests[0].buffer = buf.data();
  requests[1].op = IoOp::kWrite;
  requests[1].slot = 1;
  requests[1].buffer = buf.data();
  EXPECT_EQ(store->submit(requests, 2).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->wait().ok());
  EXPECT_EQ(requests[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(requests[1].status.ok());
}

// --- FileStore --------------------------------------------------------------------------------

enum class Where { kDisk, kTmpfs };

struct FileCase {
  IoEngine engine;
  Where where;
};

std::string case_name(const ::testing::TestParamInfo<FileCase>& info) {
  return std::string(info.param.engine == IoEngine::kIoUring ? "IoUring" : "ThreadPool") +
         (info.param.where == Where::kDisk ? "_Disk" : "_Tmpfs");
}

class FileStoreEngines : public ::testing::TestWithParam<FileCase> {
 protected:
  void SetUp() override {
    root_ = GetParam().where == Where::kDisk ? testing::disk_root() : testing::tmpfs_root();
    if (root_.empty()) GTEST_SKIP() << "no tmpfs mounted at /dev/shm";
    dir_ = std::make_unique<ScratchDir>(root_);
    ASSERT_FALSE(dir_->path().empty());
  }
  FileStoreOptions options(int queue_depth = 8, size_t request_bytes = 1u << 20) const {
    FileStoreOptions o;
    o.engine = GetParam().engine;
    o.queue_depth = queue_depth;
    o.request_bytes = request_bytes;
    o.threads = 3;
    return o;
  }
  // io_uring may be missing from the build or refused by the kernel (seccomp): skip, not fail.
  Status create(const std::string& name, size_t bytes, int64_t slots, const FileStoreOptions& o,
                std::unique_ptr<FileStore>* out) {
    Status st = FileStore::create(dir_->file(name), bytes, slots, o, out);
    if (st.code() == StatusCode::kUnsupported && o.engine == IoEngine::kIoUring) {
      unsupported_ = st.message();
    }
    return st;
  }

  std::string root_;
  std::unique_ptr<ScratchDir> dir_;
  std::string unsupported_;
};

#define CREATE_OR_SKIP(...)                                  \
  do {                                                       \
    Status st_ = create(__VA_ARGS__);                        \
    if (!unsupported_.empty()) GTEST_SKIP() << unsupported_; \
    ASSERT_TRUE(st_.ok()) << st_.to_string();                \
  } while (0)

TEST_P(FileStoreEngines, RoundTripOddSizes) {
  for (size_t bytes : {size_t{1}, size_t{4000}, size_t{4096 - 64}, size_t{100003}}) {
    std::unique_ptr<FileStore> store;
    CREATE_OR_SKIP("rt" + std::to_string(bytes), bytes, 6, options(), &store);
    EXPECT_EQ(store->tier(), Tier::kDisk);
    EXPECT_EQ(store->engine(), GetParam().engine);
    EXPECT_EQ(store->slot_stride() % store->alignment(), 0u);
    EXPECT_GE(store->slot_stride(), bytes + detail::kSlotHeaderBytes);
    if (bytes == 1) std::cout << root_ << ": " << store->describe() << "\n";
    round_trip(*store, 1000 + bytes);
  }
}

TEST_P(FileStoreEngines, DirectIoWhereTheFileSystemAllows) {
  std::unique_ptr<FileStore> store;
  CREATE_OR_SKIP("direct", 4096, 2, options(), &store);
  // Both file systems here take O_DIRECT (tmpfs has since Linux 6.6); describe() says otherwise.
  if (!store->direct_io()) {
    EXPECT_NE(store->describe().find("buffered"), std::string::npos) << store->describe();
  } else {
    EXPECT_NE(store->describe().find("O_DIRECT"), std::string::npos) << store->describe();
  }
}

// More requests than the queue depth, slots split into several pieces: everything completes,
// poll() drives it without blocking, and every read verifies.
TEST_P(FileStoreEngines, BatchDeeperThanQueue) {
  const size_t bytes = 3 * 4096 + 17;
  const int64_t slots = 40;
  std::unique_ptr<FileStore> store;
  CREATE_OR_SKIP("batch", bytes, slots, options(/*queue_depth=*/4, /*request_bytes=*/4096), &store);
  std::vector<std::vector<unsigned char>> data;
  std::vector<IoRequest> writes(slots);
  for (int64_t s = 0; s < slots; ++s) {
    data.push_back(payload(bytes, 77 + s));
    writes[s].op = IoOp::kWrite;
    writes[s].slot = s;
    writes[s].buffer = data.back().data();
    writes[s].tag = 1000 + s;
    writes[s].version = 1;
  }
  ASSERT_TRUE(store->submit(writes.data(), writes.size()).ok());
  while (!store->poll()) {
  }
  ASSERT_TRUE(store->wait().ok());
  for (const IoRequest& r : writes) EXPECT_TRUE(r.status.ok()) << r.status.to_string();

  std::vector<std::vector<unsigned char>> out(slots, std::vector<unsigned char>(bytes));
  std::vector<IoRequest> reads(slots);
  for (int64_t s = 0; s < slots; ++s) {
    reads[s].op = IoOp::kRead;
    reads[s].slot = slots - 1 - s;
    reads[s].buffer = out[s].data();
    reads[s].tag = 1000 + (slots - 1 - s);
    reads[s].check_tag = true;
  }
  ASSERT_TRUE(store->submit(reads.data(), reads.size()).ok());
  ASSERT_TRUE(store->wait().ok());
  for (int64_t s = 0; s < slots; ++s) {
    ASSERT_TRUE(reads[s].status.ok()) << reads[s].status.to_string();
    EXPECT_EQ(out[s], data[slots - 1 - s]);
    EXPECT_EQ(reads[s].version, 1u);
  }
}

TEST_P(FileStoreEngines, ReopenServesEveryWrittenSlot) {
  const size_t bytes = 5000;
  const std::string path = dir_->file("reopen");
  {
    std::unique_ptr<FileStore> store;
    CREATE_OR_SKIP("reopen", bytes, 9, options(), &store);
    for (int64_t s = 0; s < 9; s += 2) {  // even slots only: the odd ones stay empty
      const auto data = payload(bytes, 500 + s);
      ASSERT_TRUE(store->write(s, data.data(), 40 + s, 1).ok());
      ASSERT_TRUE(store->write(s, data.data(), 40 + s, 2).ok());  // overwrite: newer version
    }
  }
  std::unique_ptr<FileStore> store;
  ASSERT_TRUE(FileStore::open(path, options(), &store).ok());
  EXPECT_EQ(store->block_bytes(), bytes);
  EXPECT_EQ(store->slots(), 9);
  RecoveryReport report;
  ASSERT_TRUE(store->recover(&report).ok());
  EXPECT_TRUE(report.dropped.empty());
  EXPECT_EQ(report.empty, 4);
  ASSERT_EQ(report.valid.size(), 5u);
  for (const SlotRecord& r : report.valid) {
    EXPECT_EQ(r.slot % 2, 0);
    EXPECT_EQ(r.tag, 40u + r.slot);
    EXPECT_EQ(r.version, 2u);
    std::vector<unsigned char> out(bytes);
    ASSERT_TRUE(store->read(r.slot, out.data(), &r.tag).ok());
    EXPECT_EQ(out, payload(bytes, 500 + r.slot));
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, FileStoreEngines,
                         ::testing::Values(FileCase{IoEngine::kIoUring, Where::kDisk},
                                           FileCase{IoEngine::kThreadPool, Where::kDisk},
                                           FileCase{IoEngine::kIoUring, Where::kTmpfs},
                                           FileCase{IoEngine::kThreadPool, Where::kTmpfs}),
                         case_name);

TEST(FileStore, AutoEngineAndBufferedOption) {
  ScratchDir dir(testing::disk_root());
  std::unique_ptr<FileStore> store;
  FileStoreOptions o;
  ASSERT_TRUE(FileStore::create(dir.file("auto"), 4096, 2, o, &store).ok());
  std::cout << "auto on disk: " << store->describe() << "\n";
  EXPECT_NE(store->engine(), IoEngine::kAuto);
  o.direct_io = false;
  ASSERT_TRUE(FileStore::create(dir.file("buffered"), 4096, 2, o, &store).ok());
  EXPECT_FALSE(store->direct_io());
  EXPECT_EQ(store->engine(), IoEngine::kThreadPool);  // auto: io_uring only with O_DIRECT
  EXPECT_NE(store->describe().find("O_DIRECT off by option"), std::string::npos)
      << store->describe();
  round_trip(*store, 9);
}

TEST(FileStore, BadArguments) {
  ScratchDir dir(testing::disk_root());
  std::unique_ptr<FileStore> store;
  FileStoreOptions o;
  Status st = FileStore::create(dir.file("x"), 0, 4, o, &store);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("block_bytes = 0"), std::string::npos) << st.message();
  st = FileStore::create(dir.file("x"), 64, -3, o, &store);
  EXPECT_NE(st.message().find("slots = -3"), std::string::npos) << st.message();
  st = FileStore::create(dir.path() + "/missing/dir/file", 64, 4, o, &store);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("missing/dir/file"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("directory does not exist"), std::string::npos) << st.message();
  FileStoreOptions bad = o;
  bad.queue_depth = 0;
  st = FileStore::create(dir.file("x"), 64, 4, bad, &store);
  EXPECT_NE(st.message().find("options.queue_depth = 0"), std::string::npos) << st.message();
  bad = o;
  bad.threads = 1000;
  st = FileStore::create(dir.file("x"), 64, 4, bad, &store);
  EXPECT_NE(st.message().find("options.threads = 1000"), std::string::npos) << st.message();
  st = FileStore::create("", 64, 4, o, &store);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  st = FileStore::open(dir.file("nonexistent"), o, &store);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("no such file"), std::string::npos) << st.message();
  // A file that is not a store.
  const std::string junk = dir.file("junk");
  std::vector<unsigned char> bytes(8192, 0x33);
  {
    FILE* f = std::fopen(junk.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  st = FileStore::open(junk, o, &store);
  EXPECT_EQ(st.code(), StatusCode::kDataCorrupt);
  EXPECT_NE(st.message().find("superblock"), std::string::npos) << st.message();

  ASSERT_TRUE(FileStore::create(dir.file("ok"), 64, 4, o, &store).ok());
  std::vector<unsigned char> buf(64);
  st = store->write(4, buf.data(), 0, 0);
  EXPECT_NE(st.message().find("slot = 4: allowed 0..3"), std::string::npos) << st.message();
  st = store->read(1, nullptr);
  EXPECT_EQ(st.code(), StatusCode::kNullPointer);
  st = store->read(1, buf.data());  // never written
  EXPECT_EQ(st.code(), StatusCode::kDataCorrupt);
}

}  // namespace
}  // namespace qwen3vl::lifecycle
