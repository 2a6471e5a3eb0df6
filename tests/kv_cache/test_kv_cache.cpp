// KvCache on host storage: appends (BSHD and ragged THD, strided, dtype conversion) land where the
// view says, blocks are allocated as needed, forks share blocks and copy a shared partial last
// block on append (copy-on-write), resets release blocks, and every rejected call leaves the cache
// exactly as it was.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

struct Storage {
  Tensor k, v;
  KvCache cache;
  explicit Storage(const KvCacheConfig& c)
      : k(c.dtype, kv_storage_shape(c)), v(c.dtype, kv_storage_shape(c)) {
    throw_if_error(KvCache::create(c, k.view(), v.view(), &cache));
  }
};

KvCacheConfig paged(int64_t batch, int64_t num_blocks, int64_t max_blocks, int64_t bs = 16,
                    DType dt = DType::kF32) {
  KvCacheConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = batch;
  c.kv_heads = 2;
  c.head_dim = 8;
  c.dtype = dt;
  c.num_blocks = num_blocks;
  c.block_size = bs;
  c.max_blocks = max_blocks;
  return c;
}

KvCacheConfig contiguous(int64_t batch, int64_t max_len, DType dt = DType::kF32) {
  KvCacheConfig c = paged(batch, 1, 1, 16, dt);
  c.layout = KvLayout::kContiguous;
  c.max_len = max_len;
  return c;
}

// Element (token j of sequence b, head h, channel c) of the cache's K (or V) through its view.
float cached(const KvCache& cache, bool value, int64_t b, int64_t j, int64_t h, int64_t c) {
  const KvCacheView view = cache.view();
  const detail::KvSlot s = view.layout == KvLayout::kPaged ? detail::paged_indexer(view).slot(b, j)
                                                           : detail::KvSlot{b, j};
  const TensorView& t = value ? view.v : view.k;
  return load_float(t, t.offset(s.major, s.minor, h) + c);
}

// Checks tokens [from, from + n) of sequence b against source tokens (b_src, t_src + i) of k / v.
void expect_tokens(const KvCache& cache, int64_t b, int64_t from, int64_t n, const TensorView& k,
                   const TensorView& v, int64_t b_src, int64_t t_src) {
  const KvCacheConfig& c = cache.config();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t ch = 0; ch < c.head_dim; ++ch) {
        const int64_t off = k.rank == 4 ? k.offset(b_src, t_src + i, h) : k.offset(t_src + i, h);
        const int64_t voff = v.rank == 4 ? v.offset(b_src, t_src + i, h) : v.offset(t_src + i, h);
        // Stored values are the source rounded to the storage dtype.
        Tensor one(c.dtype, {1});
        one.set(0, load_float(k, off + ch));
        ASSERT_EQ(cached(cache, false, b, from + i, h, ch), one.get(0)) << b << " " << from + i;
        one.set(0, load_float(v, voff + ch));
        ASSERT_EQ(cached(cache, true, b, from + i, h, ch), one.get(0)) << b << " " << from + i;
      }
}

TEST(KvCache, AppendsBshdAndRaggedTokensInEveryLayoutAndDtype) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (bool is_paged : {false, true}) {
      Storage s(is_paged ? paged(3, 40, 8, 32, dt) : contiguous(3, 200, dt));
      // A prefill of 37 tokens per sequence, from f32 in BHSD memory (strides), then ragged steps.
      Tensor k(DType::kF32, {3, 2, 37, 8}), v(DType::kF32, {3, 2, 37, 8});
      fill_uniform(k, 1);
      fill_uniform(v, 2);
      const TensorView kt = k.view().transposed(1, 2), vt = v.view().transposed(1, 2);
      ASSERT_TRUE(s.cache.append(kt, vt).ok());
      for (int64_t b = 0; b < 3; ++b) expect_tokens(s.cache, b, 0, 37, kt, vt, b, 0);
      Tensor rk(dt, {9, 2, 8}), rv(dt, {9, 2, 8}), cu(DType::kI32, {4});
      fill_uniform(rk, 3);
      fill_uniform(rv, 4);
      const int32_t offsets[] = {0, 5, 5, 9};  // sequence 1 gets nothing
      std::memcpy(cu.data<int32_t>(), offsets, sizeof offsets);
      ASSERT_TRUE(s.cache.append(rk, rv, cu).ok());
      EXPECT_EQ(s.cache.lengths(), (std::vector<int32_t>{42, 37, 41}));
      expect_tokens(s.cache, 0, 37, 5, rk.view(), rv.view(), 0, 0);
      expect_tokens(s.cache, 2, 37, 4, rk.view(), rv.view(), 0, 5);
      expect_tokens(s.cache, 1, 0, 37, kt, vt, 1, 0);
      if (is_paged) {
        EXPECT_EQ(s.cache.allocator().used_count(), 2 + 2 + 2);  // 32-token blocks
      }
    }
}

TEST(KvCache, ForkSharesBlocksAndCopiesASharedPartialBlockOnAppend) {
  Storage s(paged(3, 12, 4));
  Tensor k(DType::kF32, {37, 2, 8}), v(DType::kF32, {37, 2, 8}), cu(DType::kI32, {4});
  fill_uniform(k, 5);
  fill_uniform(v, 6);
  const int32_t first[] = {0, 37, 37, 37};
  std::memcpy(cu.data<int32_t>(), first, sizeof first);
  ASSERT_TRUE(s.cache.append(k, v, cu).ok());  // sequence 0: blocks 0, 1 full, block 2 holds 5
  ASSERT_TRUE(s.cache.fork(0, 1).ok());
  ASSERT_TRUE(s.cache.fork(1, 2).ok());
  const std::vector<int32_t>& table = s.cache.block_table();
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(table[static_cast<size_t>(4 + i)], table[static_cast<size_t>(i)]);
    EXPECT_EQ(s.cache.allocator().ref_count(table[static_cast<size_t>(i)]), 3);
  }
  EXPECT_EQ(s.cache.allocator().used_count(), 3);
  const int32_t shared_last = table[2];

  // Three new tokens for sequence 1 only: its last block is copied first, then written.
  Tensor k2(DType::kF32, {3, 2, 8}), v2(DType::kF32, {3, 2, 8});
  fill_uniform(k2, 7);
  fill_uniform(v2, 8);
  const int32_t second[] = {0, 0, 3, 3};
  std::memcpy(cu.data<int32_t>(), second, sizeof second);
  ASSERT_TRUE(s.cache.append(k2, v2, cu).ok());
  EXPECT_NE(table[4 + 2], shared_last);
  EXPECT_EQ(table[4 + 0], table[0]);  // full blocks stay shared
  EXPECT_EQ(s.cache.allocator().ref_count(shared_last), 2);
  EXPECT_EQ(s.cache.allocator().ref_count(table[4 + 2]), 1);
  expect_tokens(s.cache, 1, 0, 37, k.view(), v.view(), 0, 0);
  expect_tokens(s.cache, 1, 37, 3, k2.view(), v2.view(), 0, 0);
  expect_tokens(s.cache, 0, 0, 37, k.view(), v.view(), 0, 0);
  expect_tokens(s.cache, 2, 0, 37, k.view(), v.view(), 0, 0);
  // Sequence 0's copy of the shared block was not written past its length.
  const TensorView kst = s.cache.k_storage();
  for (int64_t c = 0; c < 8; ++c)
    EXPECT_EQ(load_float(kst, kst.offset(shared_last, 5, 0) + c), 0.0f);

  // 12 more tokens for sequences 0 and 2, which share the partial block (count 2): sequence 0
  // copies it, sequence 2 is then its only user and writes it in place.
  Tensor k3(DType::kF32, {24, 2, 8}), v3(DType::kF32, {24, 2, 8});
  fill_uniform(k3, 9);
  fill_uniform(v3, 10);
  const int32_t third[] = {0, 12, 12, 24};
  std::memcpy(cu.data<int32_t>(), third, sizeof third);
  const int32_t free_before = s.cache.allocator().free_count();
  ASSERT_TRUE(s.cache.append(k3, v3, cu).ok());
  EXPECT_EQ(s.cache.allocator().free_count(), free_before - 3);  // 1 copy + 1 new block each
  EXPECT_NE(table[2], shared_last);
  EXPECT_EQ(table[8 + 2], shared_last);
  EXPECT_EQ(s.cache.allocator().ref_count(shared_last), 1);
  expect_tokens(s.cache, 0, 37, 12, k3.view(), v3.view(), 0, 0);
  expect_tokens(s.cache, 2, 37, 12, k3.view(), v3.view(), 0, 12);
  expect_tokens(s.cache, 2, 0, 37, k.view(), v.view(), 0, 0);
  expect_tokens(s.cache, 1, 37, 3, k2.view(), v2.view(), 0, 0);

  // Resets release every reference; the pool is whole again.
  for (int64_t b = 0; b < 3; ++b) ASSERT_TRUE(s.cache.reset(b).ok());
  EXPECT_EQ(s.cache.allocator().free_count(), 12);
}

TEST(KvCache, ContiguousForkCopiesRows) {
  Storage s(contiguous(2, 50, DType::kF16));
  Tensor k(DType::kF16, {2, 20, 2, 8}), v(DType::kF16, {2, 20, 2, 8});
  fill_uniform(k, 11);
  fill_uniform(v, 12);
  ASSERT_TRUE(s.cache.append(k, v).ok());
  ASSERT_TRUE(s.cache.reset(1).ok());
  ASSERT_TRUE(s.cache.fork(0, 1).ok());
  expect_tokens(s.cache, 1, 0, 20, k.view(), v.view(), 0, 0);
}

// Everything observable about a cache, to show that a failed call changed nothing.
struct Snapshot {
  std::vector<int32_t> lengths, table, refs;
  int32_t free_count;
  std::vector<char> k, v;
  explicit Snapshot(const Storage& s)
      : lengths(s.cache.lengths()),
        table(s.cache.block_table()),
        free_count(s.cache.allocator().free_count()),
        k(s.k.data<char>(), s.k.data<char>() + s.k.bytes()),
        v(s.v.data<char>(), s.v.data<char>() + s.v.bytes()) {
    for (int32_t id = 0; id < s.cache.allocator().capacity(); ++id)
      refs.push_back(s.cache.allocator().ref_count(id));
  }
  bool operator==(const Snapshot& o) const {
    return lengths == o.lengths && table == o.table && refs == o.refs &&
           free_count == o.free_count && k == o.k && v == o.v;
  }
};

TEST(KvCache, RejectedCallsLeaveTheCacheUnchanged) {
  for (bool is_paged : {true, false}) {
    // Paged: 2 sequences of at most 4 blocks of 16 from a pool of 6; contiguous: 64 tokens each.
    Storage s(is_paged ? paged(2, 6, 4) : contiguous(2, 64));
    Tensor k(DType::kF32, {2, 20, 2, 8}), v(DType::kF32, {2, 20, 2, 8});
    fill_uniform(k, 13);
    fill_uniform(v, 14);
    ASSERT_TRUE(s.cache.append(k, v).ok());  // 2 blocks each when paged
    ASSERT_TRUE(s.cache.fork(0, 1).code() == StatusCode::kInvalidArgument);  // dst not empty
    const Snapshot before(s);
    auto expect_error = [&](Status st, StatusCode code, const char* what) {
      EXPECT_EQ(st.code(), code) << what << ": " << st.to_string();
      EXPECT_FALSE(st.message().empty()) << what;
      EXPECT_TRUE(Snapshot(s) == before) << what << (is_paged ? " (paged)" : " (contiguous)");
    };
    Tensor wrong_heads(DType::kF32, {2, 3, 3, 8}), wrong_dim(DType::kF32, {2, 3, 2, 9});
    Tensor wrong_batch(DType::kF32, {3, 3, 2, 8}), ints(DType::kI32, {2, 3, 2, 8});
    Tensor small(DType::kF32, {2, 3, 2, 8}), rank3(DType::kF32, {6, 2, 8});
    expect_error(s.cache.append(wrong_heads, wrong_heads), StatusCode::kShapeMismatch, "Hkv");
    expect_error(s.cache.append(wrong_dim, wrong_dim), StatusCode::kShapeMismatch, "head_dim");
    expect_error(s.cache.append(wrong_batch, wrong_batch), StatusCode::kShapeMismatch, "batch");
    expect_error(s.cache.append(small, wrong_dim), StatusCode::kShapeMismatch, "k vs v");
    expect_error(s.cache.append(ints, ints), StatusCode::kInvalidArgument, "dtype");
    expect_error(s.cache.append(rank3, rank3), StatusCode::kShapeMismatch,
                 "rank without cu_seqlens");
    TensorView strided = small.view();
    strided.stride[3] = 2;
    expect_error(s.cache.append(strided, small), StatusCode::kBadStride, "last stride");
    TensorView gpu = small.view();
    gpu.device = Device::kCUDA;
    expect_error(s.cache.append(gpu, gpu), StatusCode::kInvalidArgument, "device");
    Tensor cu_short(DType::kI32, {2}), cu_bad(DType::kI32, {3});
    cu_short.data<int32_t>()[1] = 6;
    expect_error(s.cache.append(rank3, rank3, cu_short), StatusCode::kShapeMismatch,
                 "cu_seqlens size");
    const int32_t decreasing[] = {0, 5, 3};
    std::memcpy(cu_bad.data<int32_t>(), decreasing, sizeof decreasing);
    expect_error(s.cache.append(rank3, rank3, cu_bad), StatusCode::kInvalidArgument,
                 "cu_seqlens order");

    // Overflow: past max_len / max_blocks (capacity 64), and (paged) more blocks than are free:
    // sequence 0 would fit, sequence 1 would not, so neither is written.
    Tensor many(DType::kF32, {2, 45, 2, 8});
    expect_error(s.cache.append(many, many), StatusCode::kInvalidArgument, "past the capacity");
    if (is_paged) {
      Tensor some(DType::kF32, {2, 29, 2, 8});  // 20 + 29 = 49 tokens: 4 blocks each, 2 free
      expect_error(s.cache.append(some, some), StatusCode::kOutOfMemory, "no free block");
      Tensor ragged(DType::kF32, {43, 2, 8}), cu(DType::kI32, {3});
      const int32_t offsets[] = {0, 13,
                                 43};  // sequence 0 alone would fit (1 block), 1 needs 2 more
      std::memcpy(cu.data<int32_t>(), offsets, sizeof offsets);
      expect_error(s.cache.append(ragged, ragged, cu), StatusCode::kOutOfMemory, "ragged overflow");
    }

    // Fork and reset with bad sequence ids.
    expect_error(s.cache.fork(0, 2), StatusCode::kInvalidArgument, "fork dst out of range");
    expect_error(s.cache.fork(-1, 1), StatusCode::kInvalidArgument, "fork src out of range");
    expect_error(s.cache.fork(1, 1), StatusCode::kInvalidArgument, "fork onto itself");
    expect_error(s.cache.reset(5), StatusCode::kInvalidArgument, "reset out of range");
  }
}

TEST(KvCache, RejectsBadConfigsAndStorage) {
  KvCacheConfig c = paged(2, 8, 4);
  Tensor k(DType::kF32, kv_storage_shape(c)), v(DType::kF32, kv_storage_shape(c));
  KvCache cache;
  KvCacheConfig bad = c;
  bad.block_size = 24;
  EXPECT_EQ(KvCache::create(bad, k, v, &cache).code(), StatusCode::kInvalidArgument);
  bad = c;
  bad.dtype = DType::kI32;
  EXPECT_EQ(KvCache::create(bad, k, v, &cache).code(), StatusCode::kInvalidArgument);
  bad = c;
  bad.num_blocks = 9;  // storage has 8
  EXPECT_EQ(KvCache::create(bad, k, v, &cache).code(), StatusCode::kShapeMismatch);
  bad = c;
  bad.dtype = DType::kF16;  // storage is f32
  EXPECT_EQ(KvCache::create(bad, k, v, &cache).code(), StatusCode::kInvalidArgument);
  TensorView gpu_k = k.view(), gpu_v = v.view();
  gpu_k.device = gpu_v.device = Device::kCUDA;
  EXPECT_EQ(KvCache::create(c, gpu_k, gpu_v, &cache).code(),
            StatusCode::kInvalidArgument);                             // no ops
  EXPECT_EQ(cache.append(k, v).code(), StatusCode::kInvalidArgument);  // never created
}

}  // namespace
}  // namespace qwen3vl
