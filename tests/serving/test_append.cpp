// Append attention (kv_cache/append.hpp) against the float64 reference on seeded random ragged
// batches: empty chunks, decode rows, chunks crossing block boundaries, contiguous and paged
// caches, shared and unshared prefixes; cascade equals non-cascade; a prompt appended in random
// chunk sizes equals one append; one plan serves every step; bad shapes, values and tables give
// typed errors and change nothing.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "append_problem.hpp"
#include "kv_cache/decode_problem.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "src/core/host_workspace.hpp"

namespace qwen3vl {
namespace {

using testing::AppendProblem;
using testing::AppendSpec;
using testing::PrefixGroupSpec;

std::unique_ptr<AppendAttention> make(CpuIsa isa = CpuIsa::kAuto, int threads = 2) {
  CpuOptions o;
  o.isa = isa;
  o.num_threads = threads;
  std::unique_ptr<AppendAttention> a;
  throw_if_error(create_append_attention_cpu(o, &a));
  return a;
}

std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (cpu_isa_compiled(isa) && cpu_supports(CpuInfo::current(), isa)) isas.push_back(isa);
  return isas;
}

double out_tolerance(const AppendSpec& s) {
  return s.q_dtype == DType::kF32 ? 2e-5 : (s.q_dtype == DType::kF16 ? 2e-3 : 1.5e-2);
}
double lse_tolerance(const AppendSpec& s) { return s.q_dtype == DType::kF32 ? 5e-5 : 2e-3; }

// A random ragged batch: rows from {0, 1, 2..8, 9..64, 65..300} (decode, speculative and prefill
// sequences mixed), pasts of 0..400 tokens, and (paged) shared-prefix groups over runs of
// sequences, shared lengths on and off block boundaries.
AppendSpec random_spec(uint64_t seed, bool with_groups) {
  std::mt19937_64 rng(seed);
  const auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  AppendSpec s;
  s.seed = seed;
  const int64_t batch = pick(1, 6);
  s.past.clear();
  s.rows.clear();
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t kind = pick(0, 4);
    const int64_t rows = kind == 0   ? 0
                         : kind == 1 ? 1
                         : kind == 2 ? pick(2, 8)
                         : kind == 3 ? pick(9, 64)
                                     : pick(65, 300);
    s.rows.push_back(static_cast<int32_t>(rows));
    s.past.push_back(static_cast<int32_t>(pick(0, 1) ? pick(0, 400) : pick(0, 40)));
  }
  const int64_t heads[][2] = {{4, 4}, {8, 2}, {6, 1}, {4, 2}};
  const int64_t h = pick(0, 3);
  s.heads = heads[h][0];
  s.kv_heads = heads[h][1];
  const int64_t dims[] = {64, 80, 17, 128, 32};
  s.head_dim = dims[pick(0, 4)];
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  s.kv_dtype = dtypes[pick(0, 2)];
  s.q_dtype = pick(0, 1) ? DType::kF32 : s.kv_dtype;
  s.layout = with_groups || pick(0, 2) ? KvLayout::kPaged : KvLayout::kContiguous;
  s.block_size = pick(0, 1) ? 16 : 32;
  if (with_groups) {
    for (int64_t b = 0; b < batch;) {
      const int64_t end = std::min(batch, b + pick(1, 4));
      int32_t least = s.past[static_cast<size_t>(b)];
      for (int64_t m = b; m < end; ++m) least = std::min(least, s.past[static_cast<size_t>(m)]);
      if (pick(0, 3) > 0)
        s.groups.push_back(PrefixGroupSpec{static_cast<int32_t>(b), static_cast<int32_t>(end),
                                           static_cast<int32_t>(pick(0, least))});
      b = end;
    }
  }
  return s;
}

TEST(AppendAttention, RaggedBatchesMatchTheReference) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const AppendSpec spec = random_spec(seed, /*with_groups=*/false);
    SCOPED_TRACE(spec.to_string());
    AppendProblem p(spec);
    make()->run(p.params);
    const auto [out, lse] = p.errors();
    EXPECT_LE(out, out_tolerance(spec));
    EXPECT_LE(lse, lse_tolerance(spec));
  }
}

TEST(AppendAttention, SharedPrefixGroupsMatchTheReference) {
  for (uint64_t seed = 100; seed <= 140; ++seed) {
    const AppendSpec spec = random_spec(seed, /*with_groups=*/true);
    SCOPED_TRACE(spec.to_string());
    AppendProblem p(spec);
    make()->run(p.params);
    const auto [out, lse] = p.errors();
    EXPECT_LE(out, out_tolerance(spec));
    EXPECT_LE(lse, lse_tolerance(spec));
  }
}

TEST(AppendAttention, EveryIsaAndThreadCount) {
  AppendSpec spec;
  spec.past = {100, 0, 37, 250, 16};
  spec.rows = {1, 70, 0, 8, 33};
  spec.heads = 8;
  spec.kv_heads = 2;
  spec.head_dim = 72;
  spec.kv_dtype = DType::kF16;
  for (CpuIsa isa : runnable_isas())
    for (int threads : {1, 2, 3}) {
      SCOPED_TRACE(std::string(to_string(isa)) + " threads " + std::to_string(threads));
      AppendProblem p(spec);
      make(isa, threads)->run(p.params);
      const auto [out, lse] = p.errors();
      EXPECT_LE(out, 2e-5);
      EXPECT_LE(lse, 5e-5);
    }
}

// Cascade: the same problem with and without its prefix groups gives the same result (fp32
// rounding apart: the shared keys are summed in another order).
TEST(AppendAttention, CascadeEqualsNonCascade) {
  for (uint64_t seed = 200; seed <= 215; ++seed) {
    AppendSpec spec = random_spec(seed, /*with_groups=*/true);
    spec.kv_dtype = spec.q_dtype = DType::kF32;
    if (spec.groups.empty()) continue;
    SCOPED_TRACE(spec.to_string());
    AppendProblem with(spec);
    make()->run(with.params);
    AppendProblem without(spec);
    without.params.prefix_groups = TensorView();
    make()->run(without.params);
    EXPECT_LE(testing::relative_diff(with.out, without.out), 1e-5);
    for (int64_t i = 0; i < with.lse.numel(); ++i)
      if (std::isfinite(without.lse.get(i))) EXPECT_NEAR(with.lse.get(i), without.lse.get(i), 2e-5);
  }
}

// Rows that see no key cannot happen in an append (a new row sees itself), but a sequence with no
// new rows writes nothing: out rows of other sequences only.
TEST(AppendAttention, EmptyBatchAndEmptySequences) {
  AppendSpec spec;
  spec.past = {5, 0, 19};
  spec.rows = {0, 0, 0};
  AppendProblem p(spec);
  make()->run(p.params);  // Tq = 0: nothing to do
  SUCCEED();
}

// One plan serves every step of a growing cache: run() checks the step's values only.
TEST(AppendAttention, OnePlanServesEveryStep) {
  AppendSpec spec;
  spec.past = {10, 30, 3};
  spec.rows = {20, 1, 5};
  spec.block_size = 16;
  AppendProblem p(spec);
  auto a = make();
  AppendPlan plan;
  ASSERT_TRUE(a->plan(p.params, &plan).ok());
  EXPECT_NE(plan.reason.find("decode"), std::string::npos);
  const detail::HostWorkspace ws(plan.workspace_bytes);
  ASSERT_TRUE(a->run(plan, p.params, ws.workspace()).ok());
  EXPECT_LE(p.errors().first, 2e-5);
  // Another ragged split of the same Tq over the same cache shape.
  AppendSpec other = spec;
  other.past = {25, 20, 0};
  other.rows = {5, 11, 10};
  AppendProblem q(other);
  ASSERT_TRUE(a->run(plan, q.params, ws.workspace()).ok());
  EXPECT_LE(q.errors().first, 2e-5);
}

// A prompt appended through a page table in random chunk sizes gives the rows one append of the
// whole prompt gives (the same keys and values, summed in another order).
TEST(AppendAttention, ChunkedPrefillEqualsOnePrefill) {
  const int64_t hkv = 2, heads = 8, d = 64, n = 700;
  for (KvLayout layout : {KvLayout::kPaged, KvLayout::kContiguous})
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      SCOPED_TRACE(std::string(to_string(layout)) + " seed " + std::to_string(seed));
      Tensor q(DType::kF32, {n, heads, d}), k(DType::kF32, {n, hkv, d}),
          v(DType::kF32, {n, hkv, d});
      testing::fill_uniform(q, seed * 3);
      testing::fill_uniform(k, seed * 3 + 1);
      testing::fill_uniform(v, seed * 3 + 2);
      KvCacheConfig c;
      c.layout = layout;
      c.batch = 1;
      c.kv_heads = hkv;
      c.head_dim = d;
      c.dtype = DType::kF32;
      c.max_len = 768;
      c.block_size = 32;
      c.max_blocks = 24;
      c.num_blocks = 30;
      auto a = make();
      const auto run_chunks = [&](const std::vector<int64_t>& chunks, Tensor* out) {
        Tensor ks(c.dtype, kv_storage_shape(c)), vs(c.dtype, kv_storage_shape(c));
        KvPageTable table;
        throw_if_error(KvPageTable::create(table_config(c), &table));
        KvLayerStorage storage;
        throw_if_error(KvLayerStorage::create(&table, ks.view(), vs.view(), {}, &storage));
        int64_t at = 0;
        for (int64_t len : chunks) {
          Tensor cu(DType::kI32, {2});
          cu.data<int32_t>()[1] = static_cast<int32_t>(len);
          AppendParams p;
          p.q = q.view().narrowed(0, at, len);
          p.out = out->view().narrowed(0, at, len);
          p.cu_seqlens = cu.view();
          p.kv = storage.view(table);
          p.kv.max_seq_len = 0;  // the capacity: one bound for every step
          const detail::HostWorkspace ws(a->workspace_size(p));
          throw_if_error(append_and_attend(*a, nullptr, &table, storage,
                                           k.view().narrowed(0, at, len),
                                           v.view().narrowed(0, at, len), p, ws.workspace()));
          at += len;
        }
        EXPECT_EQ(table.length(0), n);
      };
      Tensor one(DType::kF32, {n, heads, d}), chunked(DType::kF32, {n, heads, d});
      run_chunks({n}, &one);
      std::mt19937_64 rng(seed);
      std::vector<int64_t> chunks;
      for (int64_t left = n; left > 0;) {
        const int64_t sizes[] = {1, 3, 8, 9, 31, 32, 33, 100, 257};
        const int64_t len = std::min(left, sizes[rng() % 9]);
        chunks.push_back(len);
        left -= len;
      }
      run_chunks(chunks, &chunked);
      EXPECT_LE(testing::relative_diff(chunked, one), 1e-6);
    }
}

// Trees of draft rows (speculative decoding): every row sees the past, itself and its ancestors;
// random forests of 1..64 rows a sequence, on decode (<= 8 rows) and flash (more) sequences, with
// and without a shared prefix; a chain (every parent the row before) equals the causal append.
TEST(AppendAttention, TreeMasksMatchTheOracle) {
  for (uint64_t seed = 300; seed <= 330; ++seed) {
    AppendSpec spec = random_spec(seed, /*with_groups=*/seed % 3 == 0);
    std::mt19937_64 rng(seed);
    for (int32_t& r : spec.rows) r = std::min<int32_t>(r, 64);
    for (int32_t r : spec.rows)
      for (int32_t i = 0; i < r; ++i)
        spec.parents.push_back(i == 0 || rng() % 5 == 0 ? -1 : static_cast<int32_t>(rng() % i));
    SCOPED_TRACE(spec.to_string());
    AppendProblem p(spec);
    make()->run(p.params);
    const auto [out, lse] = p.tree_errors();
    EXPECT_LE(out, out_tolerance(spec));
    EXPECT_LE(lse, lse_tolerance(spec));
  }
  AppendSpec chain;
  chain.past = {30, 0, 77};
  chain.rows = {5, 40, 64};
  for (int32_t r : chain.rows)
    for (int32_t i = 0; i < r; ++i) chain.parents.push_back(i - 1);
  AppendProblem tree(chain);
  make()->run(tree.params);
  chain.parents.clear();
  AppendProblem causal(chain);
  make()->run(causal.params);
  EXPECT_LE(testing::relative_diff(tree.out, causal.out), 1e-5);
}

// Sliding windows with attention sinks: windows smaller and larger than the cache, 0..40 sinks,
// decode rows (the decode kernel) and chunks (flash tiles), on caches whose blocks outside every
// window were evicted (-1 in the table, NaN in storage).
TEST(AppendAttention, WindowsAndSinksMatchTheOracle) {
  for (uint64_t seed = 400; seed <= 440; ++seed) {
    AppendSpec spec = random_spec(seed, /*with_groups=*/false);
    std::mt19937_64 rng(seed);
    const int64_t windows[] = {1, 7, 16, 50, 130, 1000};
    spec.window = windows[rng() % 6];
    spec.sinks = static_cast<int64_t>(rng() % 3 == 0 ? 0 : rng() % 41);
    spec.evict = spec.layout == KvLayout::kPaged && rng() % 2 == 0;
    SCOPED_TRACE(spec.to_string() + " window " + std::to_string(spec.window) + " sinks " +
                 std::to_string(spec.sinks) + (spec.evict ? " evicted" : ""));
    AppendProblem p(spec);
    make()->run(p.params);
    const auto [out, lse] = p.window_errors();
    EXPECT_LE(out, out_tolerance(spec));
    EXPECT_LE(lse, lse_tolerance(spec));
  }
}

// KvPageTable::evict_outside_window returns the blocks no later token sees to the pool; appends
// with the same window go on, fork and reset keep the allocator's counts right.
TEST(AppendAttention, EvictionFollowsTheWindow) {
  KvCacheConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = 2;
  c.kv_heads = 2;
  c.head_dim = 32;
  c.dtype = DType::kF32;
  c.block_size = 16;
  c.max_blocks = 20;
  c.num_blocks = 30;
  Tensor ks(c.dtype, kv_storage_shape(c)), vs(c.dtype, kv_storage_shape(c));
  KvPageTable table;
  throw_if_error(KvPageTable::create(table_config(c), &table));
  KvLayerStorage storage;
  throw_if_error(KvLayerStorage::create(&table, ks.view(), vs.view(), {}, &storage));
  auto a = make();
  const int64_t window = 40, sinks = 4;
  std::mt19937_64 rng(3);
  Tensor all_k(DType::kF32, {2, 300, 2, 32}), all_v(DType::kF32, {2, 300, 2, 32});
  testing::fill_uniform(all_k, 5);
  testing::fill_uniform(all_v, 6);
  int64_t at = 0;
  for (int step = 0; step < 12; ++step) {
    const int64_t n = step == 0 ? 30 : 1 + static_cast<int64_t>(rng() % 20);
    Tensor cu(DType::kI32, {3});
    cu.data<int32_t>()[1] = static_cast<int32_t>(n);
    cu.data<int32_t>()[2] = static_cast<int32_t>(2 * n);
    Tensor q(DType::kF32, {2 * n, 4, 32}), out(DType::kF32, {2 * n, 4, 32});
    Tensor k(DType::kF32, {2 * n, 2, 32}), v(DType::kF32, {2 * n, 2, 32});
    testing::fill_uniform(q, 10 + static_cast<uint64_t>(step));
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t e = 0; e < 64; ++e) {
          k.set((b * n + i) * 64 + e, all_k.get((b * 300 + at + i) * 64 + e));
          v.set((b * n + i) * 64 + e, all_v.get((b * 300 + at + i) * 64 + e));
        }
    AppendParams p;
    p.q = q.view();
    p.out = out.view();
    p.cu_seqlens = cu.view();
    p.kv = storage.view(table);
    p.kv.max_seq_len = 0;
    p.window = window;
    p.sinks = sinks;
    const detail::HostWorkspace ws(a->workspace_size(p));
    ASSERT_TRUE(
        append_and_attend(*a, nullptr, &table, storage, k.view(), v.view(), p, ws.workspace())
            .ok());
    // The rows against the whole history, windowed, in float64.
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = 0; h < 4; ++h) {
          const int64_t pos = at + i, start = std::max<int64_t>(0, pos - window + 1);
          std::vector<double> sc, o(32, 0.0);
          double top = -INFINITY, sum = 0;
          for (int64_t j = 0; j <= pos; ++j) {
            if (j < start && j >= sinks) continue;
            double x = 0;
            for (int64_t e = 0; e < 32; ++e)
              x += static_cast<double>(q.get(((b * n + i) * 4 + h) * 32 + e)) *
                   all_k.get(((b * 300 + j) * 2 + h / 2) * 32 + e);
            sc.push_back(x / std::sqrt(32.0));
            top = std::max(top, sc.back());
          }
          size_t m = 0;
          for (int64_t j = 0; j <= pos; ++j) {
            if (j < start && j >= sinks) continue;
            const double w = std::exp(sc[m++] - top);
            sum += w;
            for (int64_t e = 0; e < 32; ++e)
              o[static_cast<size_t>(e)] += w * all_v.get(((b * 300 + j) * 2 + h / 2) * 32 + e);
          }
          for (int64_t e = 0; e < 32; ++e)
            ASSERT_NEAR(out.get(((b * n + i) * 4 + h) * 32 + e), o[static_cast<size_t>(e)] / sum,
                        2e-5);
        }
    at += n;
    const int32_t free_before = table.allocator().free_count();
    int64_t released = 0;
    ASSERT_TRUE(table.evict_outside_window(window, sinks, &released).ok());
    EXPECT_EQ(table.allocator().free_count(), free_before + released);
    // What is left: the sink block and the blocks from the next token's window on.
    const int64_t keep_from = at + 1 - window;
    for (int64_t i = 0; i * 16 < at; ++i)
      EXPECT_EQ(table.block_table()[static_cast<size_t>(i)] < 0,
                i >= 1 && (i + 1) * 16 <= keep_from)
          << "block " << i << " after " << at << " tokens";
  }
  EXPECT_GT(at, 100);  // the window moved past several blocks
  ASSERT_TRUE(table.reset(1).ok());
  ASSERT_TRUE(table.fork(0, 1).ok());
  ASSERT_TRUE(table.reset(0).ok());
  ASSERT_TRUE(table.reset(1).ok());
  EXPECT_EQ(table.allocator().free_count(), 30);
}

// find_prefix_groups over forks of two prompts: the runs and their shared keys (whole blocks left
// after the step's copy-on-write), and cascade over them equals the call without groups.
TEST(AppendAttention, FindPrefixGroupsOverForks) {
  KvCacheConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = 7;
  c.kv_heads = 2;
  c.head_dim = 48;
  c.dtype = DType::kF32;
  c.block_size = 16;
  c.max_blocks = 10;
  c.num_blocks = 50;
  Tensor ks(c.dtype, kv_storage_shape(c)), vs(c.dtype, kv_storage_shape(c));
  KvPageTable table;
  throw_if_error(KvPageTable::create(table_config(c), &table));
  KvLayerStorage storage;
  throw_if_error(KvLayerStorage::create(&table, ks.view(), vs.view(), {}, &storage));
  const auto append = [&](const std::vector<int32_t>& rows) {
    Tensor cu(DType::kI32, {8});
    for (size_t b = 0; b < rows.size(); ++b)
      cu.data<int32_t>()[b + 1] = cu.data<int32_t>()[b] + rows[b];
    const int64_t n = cu.data<int32_t>()[7];
    Tensor k(DType::kF32, {n, 2, 48}), v(DType::kF32, {n, 2, 48});
    testing::fill_uniform(k, static_cast<uint64_t>(n));
    testing::fill_uniform(v, static_cast<uint64_t>(n) + 1);
    throw_if_error(table.begin_append(n, cu.view()));
    throw_if_error(storage.apply(table, k.view(), v.view()));
    return cu;
  };
  Tensor cu = append({100, 0, 0, 0, 50, 0, 7});
  throw_if_error(table.commit());
  for (int64_t dst : {1, 2, 3}) throw_if_error(table.fork(0, dst));
  throw_if_error(table.fork(4, 5));
  cu = append({1, 3, 1, 20, 1, 2, 1});  // copy-on-write of the shared partial blocks
  const KvCacheView kv = storage.view(table);
  std::vector<int32_t> groups;
  ASSERT_TRUE(find_prefix_groups(kv, cu.view(), 16, &groups).ok());
  EXPECT_EQ(groups, (std::vector<int32_t>{0, 4, 96, 4, 6, 48}));
  ASSERT_TRUE(find_prefix_groups(kv, cu.view(), 64, &groups).ok());
  EXPECT_EQ(groups, (std::vector<int32_t>{0, 4, 96}));

  const int64_t tq = cu.data<int32_t>()[7];
  Tensor q(DType::kF32, {tq, 6, 48}), with(DType::kF32, {tq, 6, 48}),
      without(DType::kF32, {tq, 6, 48});
  testing::fill_uniform(q, 9);
  Tensor g(DType::kI32, {2, 3});
  ASSERT_TRUE(find_prefix_groups(kv, cu.view(), 16, &groups).ok());
  std::copy(groups.begin(), groups.end(), g.data<int32_t>());
  AppendParams p;
  p.q = q.view();
  p.cu_seqlens = cu.view();
  p.kv = kv;
  p.out = without.view();
  make()->run(p);
  p.out = with.view();
  p.prefix_groups = g.view();
  make()->run(p);
  EXPECT_LE(testing::relative_diff(with, without), 1e-5);
  throw_if_error(table.commit());
  EXPECT_EQ(find_prefix_groups(KvCacheView{}, cu.view(), 1, &groups).code(),
            StatusCode::kUnsupported);  // a contiguous (default) view
}

// Typed errors naming the argument, and nothing written: out keeps its poison.
TEST(AppendAttention, BadShapesAndValuesGiveTypedErrors) {
  AppendSpec spec;
  spec.past = {20, 40};
  spec.rows = {9, 1};
  spec.groups = {PrefixGroupSpec{0, 2, 16}};
  auto a = make();
  const auto expect = [&](auto edit, StatusCode code, const char* text) {
    AppendProblem p(spec);
    edit(p);
    const Status st = a->forward(p.params, Workspace{});
    const detail::HostWorkspace ws(1 << 24);
    const Status with_ws = a->forward(p.params, ws.workspace());
    EXPECT_EQ(with_ws.code(), code) << with_ws.message();
    EXPECT_NE(with_ws.message().find(text), std::string::npos) << with_ws.message();
    EXPECT_FALSE(st.ok());
    for (int64_t i = 0; i < p.out.numel(); ++i) ASSERT_TRUE(std::isnan(p.out.get(i)));
  };
  expect([](AppendProblem& p) { p.params.q.rank = 4; }, StatusCode::kShapeMismatch, "q.rank");
  expect([](AppendProblem& p) { p.params.q.shape[1] = 3; }, StatusCode::kInvalidArgument, "Hq");
  expect([](AppendProblem& p) { p.params.out.shape[0] = 3; }, StatusCode::kShapeMismatch, "out");
  expect([](AppendProblem& p) { p.params.cu_seqlens.shape[0] = 2; }, StatusCode::kShapeMismatch,
         "cu_seqlens");
  expect([](AppendProblem& p) { p.cu_q.data<int32_t>()[1] = 12; }, StatusCode::kInvalidArgument,
         "cu_seqlens[1]");
  expect([](AppendProblem& p) { p.cu_q.data<int32_t>()[0] = 1; }, StatusCode::kInvalidArgument,
         "cu_seqlens[0]");
  expect([](AppendProblem& p) { p.lens.data<int32_t>()[0] = 5; }, StatusCode::kInvalidArgument,
         "new rows");
  expect([](AppendProblem& p) { p.table.data<int32_t>()[0] = 999; }, StatusCode::kInvalidArgument,
         "kv.block_table");
  expect([](AppendProblem& p) { p.groups.data<int32_t>()[2] = 30; }, StatusCode::kInvalidArgument,
         "past tokens");
  expect([](AppendProblem& p) { p.groups.data<int32_t>()[1] = 3; }, StatusCode::kInvalidArgument,
         "prefix_groups[0]");
  expect(
      [](AppendProblem& p) {  // sequence 1's first block is not sequence 0's
        const int64_t cols = p.table.size(1);
        std::swap(p.table.data<int32_t>()[cols], p.table.data<int32_t>()[cols + 2]);
      },
      StatusCode::kInvalidArgument, "same blocks");
  expect([](AppendProblem& p) { p.params.lse.shape[0] = 1; }, StatusCode::kShapeMismatch, "lse");
  expect([](AppendProblem& p) { p.params.out = p.params.q; }, StatusCode::kInvalidArgument, "out");
  expect([](AppendProblem& p) { p.params.scale = INFINITY; }, StatusCode::kInvalidArgument,
         "scale");
  expect([](AppendProblem& p) { p.params.prefix_groups.shape[1] = 2; }, StatusCode::kShapeMismatch,
         "prefix_groups");
  expect([](AppendProblem& p) { p.params.window = -1; }, StatusCode::kInvalidArgument, "window");
  expect([](AppendProblem& p) { p.params.window = 8; }, StatusCode::kUnsupported, "window");
  {  // trees: parents before the row, at most kMaxTreeRows rows a sequence
    AppendSpec tree = spec;
    tree.parents = {-1, 0, 1, 1, 0, 4, 5, 6, 2, -1};
    AppendProblem p(tree);
    p.parents.data<int32_t>()[3] = 3;
    const detail::HostWorkspace ws(1 << 24);
    const Status st = a->forward(p.params, ws.workspace());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("tree_parents[3]"), std::string::npos) << st.message();
    p.params.tree_parents.shape[0] = 4;
    EXPECT_EQ(a->forward(p.params, ws.workspace()).code(), StatusCode::kShapeMismatch);
    for (int64_t i = 0; i < p.out.numel(); ++i) ASSERT_TRUE(std::isnan(p.out.get(i)));
  }
  // A plan refuses params of another shape.
  AppendProblem p(spec);
  AppendPlan plan;
  ASSERT_TRUE(a->plan(p.params, &plan).ok());
  AppendSpec other = spec;
  other.rows = {9, 2};
  AppendProblem q(other);
  const detail::HostWorkspace ws(plan.workspace_bytes);
  const Status st = a->run(plan, q.params, ws.workspace());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("differs from the plan"), std::string::npos) << st.message();
}

// append_and_attend: a refused step leaves the table as it was (lengths, blocks, free blocks).
TEST(AppendAttention, RefusedAppendChangesNothing) {
  KvCacheConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = 2;
  c.kv_heads = 2;
  c.head_dim = 32;
  c.dtype = DType::kF16;
  c.block_size = 16;
  c.max_blocks = 4;
  c.num_blocks = 6;
  Tensor ks(c.dtype, kv_storage_shape(c)), vs(c.dtype, kv_storage_shape(c));
  KvPageTable table;
  throw_if_error(KvPageTable::create(table_config(c), &table));
  KvLayerStorage storage;
  throw_if_error(KvLayerStorage::create(&table, ks.view(), vs.view(), {}, &storage));
  auto a = make();
  const auto step = [&](std::vector<int32_t> rows, int64_t q_rows) {
    Tensor cu(DType::kI32, {3});
    cu.data<int32_t>()[1] = rows[0];
    cu.data<int32_t>()[2] = rows[0] + rows[1];
    Tensor q(DType::kF32, {q_rows, 4, 32}), out(DType::kF32, {q_rows, 4, 32});
    Tensor k(DType::kF32, {q_rows, 2, 32}), v(DType::kF32, {q_rows, 2, 32});
    testing::fill_uniform(q, 1);
    testing::fill_uniform(k, 2);
    testing::fill_uniform(v, 3);
    AppendParams p;
    p.q = q.view();
    p.out = out.view();
    p.cu_seqlens = cu.view();
    p.kv = storage.view(table);
    p.kv.max_seq_len = 0;
    const detail::HostWorkspace ws(a->workspace_size(p) + 64);
    const Status st =
        append_and_attend(*a, nullptr, &table, storage, k.view(), v.view(), p, ws.workspace());
    if (!st.ok()) std::printf("refused: %s\n", st.message().c_str());
    return st;
  };
  ASSERT_TRUE(step({20, 3}, 23).ok());
  const std::vector<int32_t> lengths = table.lengths(), blocks = table.block_table();
  const int32_t free_blocks = table.allocator().free_count();
  EXPECT_FALSE(step({20, 3}, 24).ok());   // cu_seqlens ends before Tq
  EXPECT_FALSE(step({45, 0}, 45).ok());   // past the capacity of 64
  EXPECT_FALSE(step({30, 30}, 60).ok());  // more blocks than the pool holds
  EXPECT_EQ(table.lengths(), lengths);
  EXPECT_EQ(table.block_table(), blocks);
  EXPECT_EQ(table.allocator().free_count(), free_blocks);
  EXPECT_FALSE(table.step_open());
  ASSERT_TRUE(step({1, 9}, 10).ok());
  EXPECT_EQ(table.length(0), 21);
  EXPECT_EQ(table.length(1), 12);
}

}  // namespace
}  // namespace qwen3vl
