// FileStore under injected faults (src/lifecycle/io_faults.hpp) and on-disk damage, for each
// engine: EIO / ENOSPC give typed errors and leave other slots intact, short transfers are retried
// or reported, corrupt and torn slots are never served and recover() drops them.
#include <gtest/gtest.h>

#include <cerrno>

#include "lifecycle/store_test_support.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"
#include "src/lifecycle/io_faults.hpp"
#include "src/lifecycle/slot_format.hpp"

namespace qwen3vl::lifecycle {
namespace {

using detail::FaultOp;
using detail::io_faults;
using testing::payload;
using testing::ScratchDir;

bool contains(const Status& st, const std::string& text) {
  return st.message().find(text) != std::string::npos;
}

class FileStoreFaults : public ::testing::TestWithParam<IoEngine> {
 protected:
  void SetUp() override {
    io_faults().reset();
    dir_ = std::make_unique<ScratchDir>(testing::disk_root());
    ASSERT_FALSE(dir_->path().empty());
  }
  void TearDown() override { io_faults().reset(); }

  FileStoreOptions options() const {
    FileStoreOptions o;
    o.engine = GetParam();
    o.queue_depth = 4;
    o.request_bytes = 4096;  // several pieces per slot: a write can tear between them
    o.threads = 2;
    return o;
  }
  // Creates a store of slots slots and writes each with payload(seed + slot), version 1.
  void make(int64_t slots, std::unique_ptr<FileStore>* store, bool fill = true) {
    const Status st = FileStore::create(dir_->file("store"), kBytes, slots, options(), store);
    if (st.code() == StatusCode::kUnsupported) GTEST_SKIP() << st.message();
    ASSERT_TRUE(st.ok()) << st.to_string();
    if (!fill) return;
    for (int64_t s = 0; s < slots; ++s) {
      const auto data = payload(kBytes, kSeed + s);
      ASSERT_TRUE((*store)->write(s, data.data(), kTag + s, 1).ok());
    }
  }
  void expect_intact(FileStore& store, int64_t slot) {
    std::vector<unsigned char> out(kBytes);
    const uint64_t tag = kTag + slot;
    const Status st = store.read(slot, out.data(), &tag);
    ASSERT_TRUE(st.ok()) << "slot " << slot << ": " << st.to_string();
    EXPECT_EQ(out, payload(kBytes, kSeed + slot)) << "slot " << slot;
  }

  static constexpr size_t kBytes = 3 * 4096 + 100;  // 4 pieces of 4096 with the header
  static constexpr uint64_t kSeed = 4242;
  static constexpr uint64_t kTag = 0x7700;
  std::unique_ptr<ScratchDir> dir_;
};

TEST_P(FileStoreFaults, EioOnWriteIsTypedAndOtherSlotsStay) {
  std::unique_ptr<FileStore> store;
  make(4, &store);
  if (IsSkipped()) return;
  io_faults().fail_next(FaultOp::kWrite, 1, EIO);
  const auto fresh = payload(kBytes, 1);
  const Status st = store->write(2, fresh.data(), kTag + 2, 2);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(st, "slot 2 write")) << st.message();
  EXPECT_TRUE(contains(st, "EIO")) << st.message();
  for (int64_t s : {0, 1, 3}) expect_intact(*store, s);
}

TEST_P(FileStoreFaults, EnospcOnWriteIsTyped) {
  std::unique_ptr<FileStore> store;
  make(3, &store);
  if (IsSkipped()) return;
  io_faults().fail_next(FaultOp::kWrite, 1, ENOSPC);
  const auto fresh = payload(kBytes, 2);
  const Status st = store->write(0, fresh.data(), kTag, 2);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(st, "ENOSPC")) << st.message();
  for (int64_t s : {1, 2}) expect_intact(*store, s);
}

TEST_P(FileStoreFaults, EnospcAtCreationIsTypedAndLeavesNoFile) {
  io_faults().fail_next(FaultOp::kPreallocate, 1, ENOSPC);
  std::unique_ptr<FileStore> store;
  const Status st = FileStore::create(dir_->file("full"), 4096, 1000, options(), &store);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(st, "preallocating")) << st.message();
  EXPECT_TRUE(contains(st, "ENOSPC")) << st.message();
  EXPECT_EQ(store, nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir_->file("full")));
}

TEST_P(FileStoreFaults, EioOnReadIsTyped) {
  std::unique_ptr<FileStore> store;
  make(2, &store);
  if (IsSkipped()) return;
  io_faults().fail_next(FaultOp::kRead, 1, EIO);
  std::vector<unsigned char> out(kBytes);
  const Status st = store->read(1, out.data());
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(st, "slot 1 read")) << st.message();
  expect_intact(*store, 1);  // the fault is gone: the slot itself was fine
}

TEST_P(FileStoreFaults, ShortTransfersAreRetried) {
  std::unique_ptr<FileStore> store;
  make(3, &store, /*fill=*/false);
  if (IsSkipped()) return;
  io_faults().short_next(FaultOp::kWrite, 2);
  const auto data = payload(kBytes, kSeed + 1);
  ASSERT_TRUE(store->write(1, data.data(), kTag + 1, 1).ok());
  io_faults().short_next(FaultOp::kRead, 3);
  expect_intact(*store, 1);
  EXPECT_EQ(io_faults().fired(), 5);
}

TEST_P(FileStoreFaults, ShortThatStaysShortIsIoError) {
  std::unique_ptr<FileStore> store;
  make(2, &store);
  if (IsSkipped()) return;
  io_faults().short_next(FaultOp::kRead, 1000000);
  std::vector<unsigned char> out(kBytes);
  const Status st = store->read(0, out.data());
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_TRUE(contains(st, "stayed short")) << st.message();
  io_faults().reset();
  io_faults().short_next(FaultOp::kWrite, 1000000);
  const auto fresh = payload(kBytes, 5);
  const Status wst = store->write(1, fresh.data(), kTag + 1, 2);
  EXPECT_EQ(wst.code(), StatusCode::kIoError);
  io_faults().reset();
  expect_intact(*store, 0);
}

TEST_P(FileStoreFaults, OneFailureInABatchFailsOnlyItsRequest) {
  std::unique_ptr<FileStore> store;
  make(8, &store);
  if (IsSkipped()) return;
  std::vector<std::vector<unsigned char>> out(8, std::vector<unsigned char>(kBytes));
  std::vector<IoRequest> reads(8);
  for (int s = 0; s < 8; ++s) {
    reads[s].slot = s;
    reads[s].buffer = out[s].data();
  }
  io_faults().fail_next(FaultOp::kRead, 1, EIO, /*skip=*/5);
  ASSERT_TRUE(store->submit(reads.data(), reads.size()).ok());
  const Status st = store->wait();
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  int failed = 0;
  for (int s = 0; s < 8; ++s) {
    if (!reads[s].status.ok()) {
      ++failed;
      EXPECT_EQ(reads[s].status.code(), StatusCode::kIoError);
    } else {
      EXPECT_EQ(out[s], payload(kBytes, kSeed + s));
    }
  }
  EXPECT_EQ(failed, 1);
}

TEST_P(FileStoreFaults, CorruptPayloadByteIsNeverServedAndRecoverDropsIt) {
  std::unique_ptr<FileStore> store;
  make(4, &store);
  if (IsSkipped()) return;
  ASSERT_TRUE(
      testing::flip_byte(store->path(), store->slot_offset(2) + detail::kSlotHeaderBytes + 5000));
  std::vector<unsigned char> out(kBytes);
  const Status st = store->read(2, out.data());
  EXPECT_EQ(st.code(), StatusCode::kDataCorrupt);
  EXPECT_TRUE(contains(st, "slot 2")) << st.message();
  EXPECT_TRUE(contains(st, "payload checksum")) << st.message();
  // A flipped header byte fails the header checksum.
  ASSERT_TRUE(testing::flip_byte(store->path(), store->slot_offset(3) + 30));
  EXPECT_TRUE(contains(store->read(3, out.data()), "header checksum"));
  RecoveryReport report;
  ASSERT_TRUE(store->recover(&report).ok());
  ASSERT_EQ(report.valid.size(), 2u);
  EXPECT_EQ(report.valid[0].slot, 0);
  EXPECT_EQ(report.valid[1].slot, 1);
  ASSERT_EQ(report.dropped.size(), 2u);
  EXPECT_EQ(report.dropped[0].slot, 2);
  EXPECT_NE(report.dropped[0].reason.find("payload checksum"), std::string::npos);
  EXPECT_EQ(report.dropped[1].slot, 3);
  EXPECT_NE(report.dropped[1].reason.find("header checksum"), std::string::npos);
}

// A write that fails after its first pieces landed (new header, part of the new payload over the
// old one) is reported failed, and the slot is torn: unreadable, and dropped by recover().
TEST_P(FileStoreFaults, TornWriteByFaultIsDropped) {
  std::unique_ptr<FileStore> store;
  make(3, &store);
  if (IsSkipped()) return;
  io_faults().fail_next(FaultOp::kWrite, 1, EIO, /*skip=*/2);
  const auto fresh = payload(kBytes, 99);
  EXPECT_EQ(store->write(1, fresh.data(), kTag + 1, 2).code(), StatusCode::kIoError);
  io_faults().reset();
  std::vector<unsigned char> out(kBytes);
  EXPECT_EQ(store->read(1, out.data()).code(), StatusCode::kDataCorrupt);
  RecoveryReport report;
  ASSERT_TRUE(store->recover(&report).ok());
  ASSERT_EQ(report.dropped.size(), 1u);
  EXPECT_EQ(report.dropped[0].slot, 1);
  EXPECT_EQ(report.valid.size(), 2u);
}

// What a kill mid-write leaves, built from two real slot images: each mix is dropped after reopen.
TEST_P(FileStoreFaults, TornImagesAreDroppedAfterReopen) {
  std::unique_ptr<FileStore> store;
  make(4, &store);
  if (IsSkipped()) return;
  const std::string path = store->path();
  const size_t stride = store->slot_stride();
  const auto old_image = testing::read_raw(path, store->slot_offset(0), stride);
  const auto fresh = payload(kBytes, 31337);
  ASSERT_TRUE(store->write(0, fresh.data(), kTag, 2).ok());
  const auto new_image = testing::read_raw(path, store->slot_offset(0), stride);
  ASSERT_EQ(old_image.size(), stride);
  ASSERT_EQ(new_image.size(), stride);
  const size_t h = detail::kSlotHeaderBytes;
  auto mix = [&](size_t cut_new_until) {  // new bytes before cut, old after
    std::vector<unsigned char> m(old_image);
    std::copy(new_image.begin(), new_image.begin() + cut_new_until, m.begin());
    return m;
  };
  const std::vector<unsigned char> header_only = mix(h);  // header, no payload
  const std::vector<unsigned char> half_payload = mix(h + kBytes / 2);
  std::vector<unsigned char> payload_only(new_image);  // payload, old header
  std::copy(old_image.begin(), old_image.begin() + h, payload_only.begin());
  ASSERT_TRUE(testing::write_raw(path, store->slot_offset(1), header_only.data(), stride));
  ASSERT_TRUE(testing::write_raw(path, store->slot_offset(2), half_payload.data(), stride));
  ASSERT_TRUE(testing::write_raw(path, store->slot_offset(3), payload_only.data(), stride));
  store.reset();

  ASSERT_TRUE(FileStore::open(path, options(), &store).ok());
  RecoveryReport report;
  ASSERT_TRUE(store->recover(&report).ok());
  ASSERT_EQ(report.valid.size(), 1u);
  EXPECT_EQ(report.valid[0].slot, 0);
  EXPECT_EQ(report.valid[0].version, 2u);
  ASSERT_EQ(report.dropped.size(), 3u);
  // Slot 1 and 2 carry slot 0's header: caught as misdirected before the payload is looked at.
  for (const DroppedSlot& d : report.dropped) {
    std::vector<unsigned char> out(kBytes);
    EXPECT_EQ(store->read(d.slot, out.data()).code(), StatusCode::kDataCorrupt) << d.reason;
  }
  std::vector<unsigned char> out(kBytes);
  ASSERT_TRUE(store->read(0, out.data()).ok());
  EXPECT_EQ(out, fresh);
}

TEST_P(FileStoreFaults, RefusedDirectIoFallsBack) {
  io_faults().fail_next(FaultOp::kOpenDirect, 1, EINVAL);  // what a file system without it says
  std::unique_ptr<FileStore> store;
  FileStoreOptions o = options();
  const Status st = FileStore::create(dir_->file("nodirect"), kBytes, 3, o, &store);
  if (st.code() == StatusCode::kUnsupported) GTEST_SKIP() << st.message();
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_FALSE(store->direct_io());
  EXPECT_NE(store->describe().find("O_DIRECT refused"), std::string::npos) << store->describe();
  const auto data = payload(kBytes, kSeed);
  ASSERT_TRUE(store->write(0, data.data(), kTag, 1).ok());
  expect_intact(*store, 0);
}

INSTANTIATE_TEST_SUITE_P(Engines, FileStoreFaults,
                         ::testing::Values(IoEngine::kIoUring, IoEngine::kThreadPool),
                         [](const ::testing::TestParamInfo<IoEngine>& info) {
                           return std::string(info.param == IoEngine::kIoUring ? "IoUring"
                                                                               : "ThreadPool");
                         });

TEST(FileStoreFaultsAuto, RefusedDirectIoPicksThreadPool) {
  io_faults().reset();
  io_faults().fail_next(FaultOp::kOpenDirect, 1, EINVAL);
  ScratchDir dir(testing::disk_root());
  std::unique_ptr<FileStore> store;
  ASSERT_TRUE(FileStore::create(dir.file("auto"), 1000, 2, FileStoreOptions{}, &store).ok());
  io_faults().reset();
  EXPECT_EQ(store->engine(), IoEngine::kThreadPool);
  EXPECT_NE(store->describe().find("O_DIRECT refused"), std::string::npos) << store->describe();
  std::cout << "auto, O_DIRECT refused: " << store->describe() << "\n";
}

}  // namespace
}  // namespace qwen3vl::lifecycle
