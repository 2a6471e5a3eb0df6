// BlockAllocator properties: random sequences of allocate / share / release (and invalid calls)
// against a plain reference model. After every step: used + free = capacity, no reference count
// below 0, a double free or a bad id is an error that changes nothing, and blocks handed out were
// free.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "qwen3vl/kv_cache/block_allocator.hpp"

namespace qwen3vl {
namespace {

TEST(BlockAllocator, AllocatesAllOrNothing) {
  BlockAllocator a(4);
  int32_t ids[5];
  EXPECT_EQ(a.allocate(5, ids).code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(a.free_count(), 4);
  ASSERT_TRUE(a.allocate(3, ids).ok());
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[2], 2);
  EXPECT_EQ(a.allocate(2, ids).code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(a.used_count(), 3);
  EXPECT_EQ(a.allocate(-1, ids).code(), StatusCode::kInvalidArgument);
}

TEST(BlockAllocator, RejectsBadIdsAndDoubleFrees) {
  BlockAllocator a(3);
  int32_t id;
  ASSERT_TRUE(a.allocate(1, &id).ok());
  for (int32_t bad : {-1, 3, 1000}) {
    EXPECT_EQ(a.release(bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(a.share(bad).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(a.share(1).code(), StatusCode::kInvalidArgument);  // free block
  ASSERT_TRUE(a.release(id).ok());
  EXPECT_EQ(a.release(id).code(), StatusCode::kInvalidArgument);  // double free
  EXPECT_EQ(a.free_count(), 3);
  EXPECT_EQ(a.ref_count(id), 0);
}

TEST(BlockAllocator, RandomOperationsMatchAReferenceModel) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int32_t capacity = 1 + static_cast<int32_t>(rng() % 40);
    BlockAllocator a(capacity);
    std::map<int32_t, int32_t> model;  // id -> reference count, for blocks in use
    auto random_used = [&]() {
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      return it->first;
    };
    for (int step = 0; step < 2000; ++step) {
      const int op = static_cast<int>(rng() % 6);
      if (op == 0) {  // allocate a few
        const int32_t n = static_cast<int32_t>(rng() % 5);
        std::vector<int32_t> ids(static_cast<size_t>(n));
        const Status st = a.allocate(n, ids.data());
        const bool fits = n <= capacity - static_cast<int32_t>(model.size());
        ASSERT_EQ(st.ok(), fits);
        if (fits)
          for (int32_t id : ids) {
            ASSERT_TRUE(id >= 0 && id < capacity);
            ASSERT_EQ(model.count(id), 0u) << "handed out a block in use";
            model[id] = 1;
          }
        else
          ASSERT_EQ(st.code(), StatusCode::kOutOfMemory);
      } else if (op == 1 && !model.empty()) {  // share
        const int32_t id = random_used();
        ASSERT_TRUE(a.share(id).ok());
        ++model[id];
      } else if ((op == 2 || op == 3) && !model.empty()) {  // release
        const int32_t id = random_used();
        ASSERT_TRUE(a.release(id).ok());
        if (--model[id] == 0) model.erase(id);
      } else if (op == 4) {  // release or share a block not in use, or outside the pool
        const int32_t id = static_cast<int32_t>(rng() % (capacity + 4)) - 2;
        if (model.count(id)) continue;
        ASSERT_FALSE(a.release(id).ok());
        ASSERT_FALSE(a.share(id).ok());
      }
      ASSERT_EQ(a.used_count() + a.free_count(), capacity);
      ASSERT_EQ(a.used_count(), static_cast<int32_t>(model.size()));
      for (int32_t id = 0; id < capacity; ++id) {
        const auto it = model.find(id);
        ASSERT_EQ(a.ref_count(id), it == model.end() ? 0 : it->second);
        ASSERT_GE(a.ref_count(id), 0);
      }
    }
  }
}

}  // namespace
}  // namespace qwen3vl
