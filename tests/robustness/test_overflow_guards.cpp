// Regression tests for arithmetic and index guards: window bounds up to INT64_MAX, out-of-range
// cache indices, the thread-count bound, overflowing strides and shapes, aliased or
// self-overlapping outputs, out-of-range enum values and attention-mask values. Each failed before
// its fix (some only under ASan/UBSan, the debug-asan preset).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "layers/layer_support.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/rope/apply.hpp"
#include "qwen3vl/rope/position_ids.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "robustness/rejected.hpp"
#include "support/cpu_variants.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr int64_t kMax = INT64_MAX;

using testing::expect_error;

// ---- window bounds near INT64_MAX ----

TEST(WindowBounds, HugeBoundsSaturate) {
  const auto keys = [](int64_t left, int64_t right, int64_t i, int64_t lq, int64_t lk) {
    const KeyRange r = visible_keys(MaskKind::kSlidingWindow, left, right, i, lq, lk);
    return std::make_pair(r.begin, r.end);
  };
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(keys(-1, kMax, i, 7, 5), std::make_pair(int64_t{0}, int64_t{5})) << i;
    EXPECT_EQ(keys(kMax, kMax, i, 7, 5), std::make_pair(int64_t{0}, int64_t{5})) << i;
    EXPECT_EQ(keys(kMax, -1, i, 5, 9), std::make_pair(int64_t{0}, int64_t{9})) << i;
  }
  // A bound of INT64_MAX on one side leaves the other side's limit intact.
  EXPECT_EQ(keys(kMax, 0, 1, 3, 5), std::make_pair(int64_t{0}, int64_t{4}));
  EXPECT_EQ(keys(0, kMax, 1, 3, 5), std::make_pair(int64_t{3}, int64_t{5}));
  // Extreme positions: INT64_MIN + 1 + INT64_MAX = 0 is the last key such a row sees.
  KeyRange at = visible_keys_at(MaskKind::kSlidingWindow, kMax, kMax, INT64_MIN + 1, 5);
  EXPECT_EQ(at.begin, 0);
  EXPECT_EQ(at.end, 1);
  at = visible_keys_at(MaskKind::kSlidingWindow, kMax, kMax, kMax, 5);
  EXPECT_EQ(at.begin, 0);
  EXPECT_EQ(at.end, 5);
  at = visible_keys_at(MaskKind::kCausal, -1, -1, kMax, 5);
  EXPECT_EQ(at.end, 5);
  EXPECT_EQ(saturating_add(kMax, 1), kMax);
  EXPECT_EQ(saturating_sub(INT64_MIN, 1), INT64_MIN);
  EXPECT_EQ(saturating_sub(0, INT64_MIN), kMax);
}

// Windows that reach past every key equal no mask, in the reference and in every CPU kernel that
// takes windows (Lq > Lk puts early rows before the first key).
TEST(WindowBounds, UnboundedWindowsEqualNoMask) {
  const std::pair<int64_t, int64_t> windows[] = {{-1, kMax}, {kMax, kMax}, {kMax, -1}};
  for (const auto& [lq, lk] :
       {std::make_pair(int64_t{7}, int64_t{5}), std::make_pair(int64_t{5}, int64_t{9})})
    for (const auto& [left, right] : windows) {
      testing::ProblemSpec none = testing::problem_spec(lq, lk, 4, 2, 16, MaskKind::kNone, 3);
      testing::ProblemSpec win = none;
      win.mask = MaskKind::kSlidingWindow;
      win.window_left = left;
      win.window_right = right;
      const std::string label = win.to_string();
      testing::Problem a(none), b(win);
      const reference::Result ra = reference::attention(a.params),
                              rb = reference::attention(b.params);
      ASSERT_EQ(ra.out.size(), rb.out.size());
      for (size_t i = 0; i < ra.out.size(); ++i)
        ASSERT_EQ(ra.out[i], rb.out[i]) << label << " " << i;
      for (testing::CpuFactory create : {&create_standard_cpu, &create_flash2_cpu}) {
        testing::Problem x(none), y(win);
        testing::make_cpu(create, CpuIsa::kAuto)->run(x.params);
        testing::make_cpu(create, CpuIsa::kAuto)->run(y.params);
        EXPECT_EQ(
            std::memcmp(x.out.data<char>(), y.out.data<char>(), static_cast<size_t>(x.out.bytes())),
            0)
            << label;
      }
    }
}

// ---- indices into cache metadata ----

TEST(CacheIndices, OutOfRangeSequencesReadNothing) {
  KvCacheConfig c;
  c.layout = KvLayout::kContiguous;
  c.batch = 2;
  c.kv_heads = 1;
  c.head_dim = 8;
  c.dtype = DType::kF32;
  c.max_len = 4;
  Tensor k(DType::kF32, kv_storage_shape(c)), v(DType::kF32, kv_storage_shape(c));
  KvCache cache;
  ASSERT_TRUE(KvCache::create(c, k.view(), v.view(), &cache).ok());
  Tensor nk(DType::kF32, {2, 3, 1, 8}), nv(DType::kF32, {2, 3, 1, 8});
  ASSERT_TRUE(cache.append(nk.view(), nv.view()).ok());
  EXPECT_EQ(cache.length(1), 3);
  for (int64_t seq : {int64_t{-1}, int64_t{2}, int64_t{1} << 40, kMax, INT64_MIN}) {
    EXPECT_EQ(cache.length(seq), 0) << seq;
    EXPECT_EQ(cache.position_delta(seq), 0) << seq;
  }
  EXPECT_EQ(KvCache().length(0), 0);
  EXPECT_EQ(KvCache().position_delta(0), 0);

  const KvCacheView view = cache.view();
  EXPECT_EQ(view.seq_len(1, 0), 3);
  for (int64_t b : {int64_t{-1}, int64_t{2}, kMax}) EXPECT_EQ(view.seq_len(b, 0), 0) << b;
  EXPECT_EQ(KvCacheView().seq_len(0, 0), 0);

  BlockAllocator pool(4);
  EXPECT_EQ(pool.ref_count(-1), 0);
  EXPECT_EQ(pool.ref_count(4), 0);
  expect_error(pool.allocate(2, nullptr), StatusCode::kNullPointer, "ids");
  EXPECT_EQ(pool.free_count(), 4);
}

// ---- the thread-count bound ----

TEST(ThreadCount, BoundedByTheDocumentedCap) {
  std::unique_ptr<Attention> a;
  CpuOptions o;
  for (int n : {kMaxCpuThreads + 1, 100000, INT32_MAX}) {
    o.num_threads = n;
    expect_error(create_flash2_cpu(o, &a), StatusCode::kInvalidArgument,
                 "num_threads = " + std::to_string(n));
    EXPECT_EQ(a, nullptr);
    expect_error(create_flash2_cpu(o, &a), StatusCode::kInvalidArgument,
                 "1.." + std::to_string(kMaxCpuThreads));
  }
  std::unique_ptr<DecodeAttention> d;
  o.num_threads = 100000;
  expect_error(create_decode_cpu(o, &d), StatusCode::kInvalidArgument, "num_threads = 100000");
  o.num_threads = kMaxCpuThreads;  // the cap itself is allowed
  ASSERT_TRUE(create_flash2_cpu(o, &a).ok());
  a.reset();
}

// ---- strides, shapes, aliasing and output layouts ----

testing::ProblemSpec small() { return testing::problem_spec(5, 7, 4, 2, 8, MaskKind::kNone, 1, 2); }

TEST(ViewChecks, OverflowingStridesAndShapes) {
  {
    testing::Problem p(small());
    p.params.k.stride[1] = int64_t{1} << 61;  // 6 * 2^61 elements: past int64
    expect_error(validate(p.params), StatusCode::kBadStride, "k.stride");
  }
  {
    testing::Problem p(small());
    p.params.q.stride[0] = -(int64_t{1} << 62);  // the lowest offset overflows in bytes
    expect_error(validate(p.params), StatusCode::kBadStride, "q.stride");
  }
  {
    testing::Problem p(small());
    p.params.v.stride[0] = int64_t{1} << 50;  // fits int64, but reaches past the address space
    p.params.v.data = reinterpret_cast<void*>(~uintptr_t{0} - 4096);
    expect_error(validate(p.params), StatusCode::kBadStride, "v.stride");
  }
  TensorView huge =
      TensorView::contiguous(nullptr, DType::kF32, {int64_t{1} << 40, int64_t{1} << 40, 4, 8});
  EXPECT_EQ(huge.numel(), kMax);  // saturates instead of wrapping
  huge.shape[2] = 0;
  EXPECT_EQ(huge.numel(), 0);
  {
    testing::Problem p(small());
    p.params.out.shape[1] = int64_t{1} << 62;
    p.params.out.shape[0] = 8;
    expect_error(validate(p.params), StatusCode::kInvalidArgument, "out.shape");
  }
  {
    testing::Problem p(small());
    p.params.q.rank = 7;
    expect_error(validate(p.params), StatusCode::kShapeMismatch, "q.rank = 7");
  }
}

TEST(ViewChecks, OutputsMustNotAliasOrOverlap) {
  for (const char* input : {"q", "k", "v"}) {
    testing::Problem p(small());
    const TensorView& in = input[0] == 'q' ? p.params.q : input[0] == 'k' ? p.params.k : p.params.v;
    p.params.out.data = in.data;
    expect_error(validate(p.params), StatusCode::kInvalidArgument,
                 std::string("must not share memory with ") + input);
  }
  {
    testing::Problem p(small());
    p.params.out.stride[1] = 0;  // every row of a sequence written to the same place
    expect_error(validate(p.params), StatusCode::kBadStride, "out.stride[1] = 0");
  }
  {
    testing::Problem p(small());
    p.params.out.stride[2] = 4;  // heads 8 wide placed 4 apart
    expect_error(validate(p.params), StatusCode::kBadStride, "out.stride[2] = 4");
  }
  {
    testing::ProblemSpec s = small();
    s.with_lse = true;
    testing::Problem p(s);
    p.params.lse.data = p.params.out.data;
    expect_error(validate(p.params), StatusCode::kInvalidArgument, "lse");
  }
  {
    testing::ProblemSpec s = small();
    s.bhsd = true;  // a transposed output is a permutation, not an overlap
    testing::Problem p(s);
    EXPECT_TRUE(validate(p.params).ok());
  }
  {  // the kernels refuse too, before writing anything
    testing::Problem p(small());
    p.params.out.data = p.params.q.data;
    std::vector<char> q_before(p.q.data<char>(), p.q.data<char>() + p.q.bytes());
    for (testing::CpuFactory create : {&create_standard_cpu, &create_flash2_cpu}) {
      EXPECT_THROW(testing::make_cpu(create, CpuIsa::kAuto)->run(p.params), Error);
      EXPECT_EQ(std::memcmp(q_before.data(), p.q.data<char>(), q_before.size()), 0);
    }
  }
}

// ---- enum values and layer masks ----

// An empty output writes nothing, so its strides are free: a varlen batch of no query rows gives
// lse [Hq, 0] with stride [0, 1] (found by the random sweep once the overlap check landed).
TEST(ViewChecks, EmptyOutputsTakeAnyStride) {
  float cell = 0.0f;
  TensorView lse = TensorView::contiguous(&cell, DType::kF32, {8, 0});
  lse.stride[0] = 0;
  EXPECT_TRUE(detail::check_no_self_overlap(lse, "lse").ok());
  lse.shape[1] = 2;
  EXPECT_EQ(detail::check_no_self_overlap(lse, "lse").code(), StatusCode::kBadStride);
}

// Views interleaved in one buffer share no element and are accepted: q, k, v and out side by side
// in each batch slot (tests/cuda's large-offset test lays them out so), and a fused QKV
// projection [T, 3, H, D] read as three views; out placed over an input stays refused.
TEST(ViewChecks, InterleavedViewsAreApart) {
  std::vector<float> buffer(2 * 4 * 3 * 8);
  // [T 2, 3, H 4, D 8]: q = [:, 0], k = [:, 1], v = [:, 2], each a [2, 4, 8] view, stride [96, 8,
  // 1].
  const auto part = [&](int i) {
    TensorView t = TensorView::contiguous(buffer.data() + i * 32, DType::kF32, {2, 4, 8});
    t.stride[0] = 96;
    return t;
  };
  EXPECT_TRUE(detail::check_disjoint(part(0), "q", part(1), "k").ok());
  EXPECT_TRUE(detail::check_disjoint(part(2), "v", part(0), "q").ok());
  EXPECT_EQ(detail::check_disjoint(part(0), "out", part(0), "q").code(),
            StatusCode::kInvalidArgument);
  TensorView shifted = part(0);  // starts half-way into q's rows: shares bytes with q
  shifted.data = buffer.data() + 16;
  EXPECT_EQ(detail::check_disjoint(shifted, "out", part(0), "q").code(),
            StatusCode::kInvalidArgument);
  // A view of another outermost stride over q's first rows is refused.
  TensorView dense = TensorView::contiguous(buffer.data() + 16, DType::kF32, {2, 4, 8});
  EXPECT_EQ(detail::check_disjoint(dense, "out", part(0), "q").code(),
            StatusCode::kInvalidArgument);
}

// A plan is made from shapes: a view with a negative stride and no data yet is accepted (its
// address range is checked when run() sees the pointer), as the same view with data is.
TEST(ViewChecks, NegativeStridesPlanFromShapes) {
  Tensor k(DType::kF32, {1, 8, 2, 16});
  TensorView reversed = k.view();  // keys in reverse order
  reversed.data = k.view().ptr<float>() + 7 * 32;
  reversed.stride[1] = -32;
  EXPECT_TRUE(detail::check_view_extent(reversed, "k").ok());
  reversed.data = nullptr;
  EXPECT_TRUE(detail::check_view_extent(reversed, "k").ok());
  reversed.data = reinterpret_cast<float*>(uintptr_t{64});  // would reach below address 0
  EXPECT_EQ(detail::check_view_extent(reversed, "k").code(), StatusCode::kBadStride);
}

TEST(EnumValues, RopeStyleAndArithmetic) {
  Tensor q(DType::kF32, {1, 2, 1, 8});
  Tensor pos(DType::kI32, {1, 2});
  pos.data<int32_t>()[0] = 0;
  pos.data<int32_t>()[1] = 1;
  rope::RopeTableSpec spec;
  spec.inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  spec.max_position = 16;
  rope::RopeTable table;
  ASSERT_TRUE(rope::RopeTable::create(spec, &table).ok());
  rope::RopeApplyParams p;
  p.q = q.view();
  p.positions = pos.view();
  p.table = table.view();
  rope::RopeApplyShape shape;
  ASSERT_TRUE(rope::validate(p, &shape).ok());
  p.style = static_cast<rope::RopeStyle>(7);
  expect_error(rope::validate(p, &shape), StatusCode::kInvalidArgument, "style = 7");
  p.style = rope::RopeStyle::kGptj;
  p.arithmetic = static_cast<rope::RopeArithmetic>(9);
  expect_error(rope::validate(p, &shape), StatusCode::kInvalidArgument, "arithmetic = 9");

  rope::RopeIndexInput in;
  in.model = static_cast<rope::RopeIndexModel>(5);
  rope::RopeIndexOutput out;
  expect_error(rope::get_rope_index(in, &out), StatusCode::kInvalidArgument, "model = 5");
  in.model = rope::RopeIndexModel::kQwen3VL;
  in.batch = int64_t{1} << 40;
  in.seq_len = int64_t{1} << 40;  // the product overflows int64
  expect_error(rope::get_rope_index(in, &out), StatusCode::kInvalidArgument, "seq_len");
}

TEST(EnumValues, TextLayerAttentionMaskIsZeroOrOne) {
  layers::TextAttentionConfig c;
  c.hidden_size = 32;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 16;
  c.mrope_section = {4, 2, 2};
  c.max_position = 64;
  const testing::TextWeights w(32, 2, 1, 16, 5);
  const auto layer = layers::Qwen3VLTextAttention::create(c, w.views());
  Tensor x(DType::kF32, {1, 3, 32}), out(DType::kF32, {1, 3, 32}), mask(DType::kI32, {1, 3});
  fill_uniform(x, 6);
  for (int32_t bad : {2, -1}) {
    mask.data<int32_t>()[0] = 1;
    mask.data<int32_t>()[1] = bad;
    mask.data<int32_t>()[2] = 1;
    layers::TextAttentionInputs in{x.view(), {}, mask.view()};
    expect_error(layer->supports(in, nullptr, {out.view(), {}}), StatusCode::kInvalidArgument,
                 "attention_mask[0, 1] = " + std::to_string(bad));
  }
}

}  // namespace
}  // namespace qwen3vl
