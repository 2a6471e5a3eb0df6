// Quest on the host: the cache's per-block key bounds equal the min / max of the stored keys
// through appends of odd sizes, forks (copy-on-write) and resets; U_p bounds every score of its
// page; selection keeps the forced pages last and in order, and the output is exact attention over
// the selection (float64); a budget covering the sequence is the dense decode, bit for bit; a
// planted page is found; bad knobs are typed errors that leave the cache untouched.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>

#include "quest_problem.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;
using testing::QuestProblem;
using testing::QuestSpec;

std::unique_ptr<DecodeAttention> dense_decode() {
  CpuOptions o;
  o.num_threads = 2;
  std::unique_ptr<DecodeAttention> d;
  throw_if_error(create_decode_cpu(o, &d));
  return d;
}

std::unique_ptr<QuestDecode> make_quest(int64_t budget,
                                        QuestAggregation agg = QuestAggregation::kMax) {
  std::unique_ptr<QuestDecode> q;
  throw_if_error(QuestDecode::create(QuestConfig{budget, agg}, dense_decode(), &q));
  return q;
}

// Every block a sequence uses holds, in the bounds, the min / max of its filled rows.
void expect_bounds_exact(const KvCache& cache, const TensorView& bounds, const char* when) {
  const KvCacheConfig& c = cache.config();
  const TensorView& k = cache.k_storage();
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t len = cache.length(b);
    for (int64_t page = 0; page * c.block_size < len; ++page) {
      const int64_t block = cache.block_table()[static_cast<size_t>(b * c.max_blocks + page)];
      const int64_t fill = std::min(c.block_size, len - page * c.block_size);
      for (int64_t g = 0; g < c.kv_heads; ++g)
        for (int64_t ch = 0; ch < c.head_dim; ++ch) {
          float lo = INFINITY, hi = -INFINITY;
          for (int64_t i = 0; i < fill; ++i) {
            const float x = load_float(k, k.offset(block, i, g) + ch);
            lo = std::min(lo, x);
            hi = std::max(hi, x);
          }
          ASSERT_EQ(bounds.ptr<float>()[bounds.offset(block, 0, g) + ch], lo)
              << when << " seq " << b << " page " << page << " head " << g << " ch " << ch;
          ASSERT_EQ(bounds.ptr<float>()[bounds.offset(block, 1, g) + ch], hi)
              << when << " seq " << b << " page " << page << " head " << g << " ch " << ch;
        }
    }
  }
}

TEST(QuestKeyBounds, EqualTheStoredKeysThroughAppendsForksAndResets) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int64_t bs : {16, 32}) {
      QuestSpec s;
      s.lens = {77, 45, 0};
      s.kv_dtype = dt;
      s.block_size = bs;
      s.head_dim = 80;
      s.seed = 3 + static_cast<uint64_t>(bs);
      s.spare_pages = 4;
      QuestProblem p(s);
      expect_bounds_exact(p.cache, p.bounds.view(), "appends");
      // Fork sequence 0 into 2: both share the partial last block; appends copy it (COW).
      throw_if_error(p.cache.fork(0, 2));
      throw_if_error(testing::quest_append(p.cache, s, {77, 45, 77}, {80, 45, 111}));
      expect_bounds_exact(p.cache, p.bounds.view(), "fork + copy-on-write append");
      throw_if_error(p.cache.reset(1));
      throw_if_error(p.cache.reset(0));
      throw_if_error(testing::quest_append(p.cache, s, {0, 0, 111}, {5, 33, 112}));
      expect_bounds_exact(p.cache, p.bounds.view(), "reset + append into recycled blocks");
    }
}

TEST(QuestKeyBounds, BadConfigurationsAreTypedErrors) {
  QuestSpec s;
  KvCacheConfig c = testing::quest_cache_config(s);
  Tensor k(c.dtype, kv_storage_shape(c)), v(c.dtype, kv_storage_shape(c));
  Tensor bounds(DType::kF32, kv_key_bounds_shape(c));
  KvCache cache;
  Status st = KvCache::create(c, k.view(), v.view(), &cache);  // no bounds given
  EXPECT_EQ(st.code(), StatusCode::kNullPointer) << st.to_string();
  EXPECT_NE(st.message().find("key_bounds"), std::string::npos) << st.to_string();
  Tensor wrong(DType::kF32, {c.num_blocks, 2, c.kv_heads, c.head_dim + 1});
  st = KvCache::create(c, k.view(), v.view(), wrong.view(), &cache);
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch) << st.to_string();
  Tensor half_bounds(DType::kF16, kv_key_bounds_shape(c));
  st = KvCache::create(c, k.view(), v.view(), half_bounds.view(), &cache);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  KvCacheConfig off = c;
  off.key_bounds = false;
  st = KvCache::create(off, k.view(), v.view(), bounds.view(), &cache);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  KvCacheConfig flat = c;
  flat.layout = KvLayout::kContiguous;
  flat.max_len = 64;
  Tensor kc(c.dtype, kv_storage_shape(flat)), vc(c.dtype, kv_storage_shape(flat));
  st = KvCache::create(flat, kc.view(), vc.view(), bounds.view(), &cache);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("paged"), std::string::npos) << st.to_string();
}

TEST(QuestPageBound, BoundsEveryScoreOfItsPage) {
  QuestSpec s;
  s.lens = {300};
  s.kv_heads = 1;
  s.head_dim = 77;
  s.kv_dtype = DType::kBF16;
  QuestProblem p(s);
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> q(static_cast<size_t>(s.head_dim));
  int64_t tight = 0;
  for (int trial = 0; trial < 200; ++trial) {
    for (float& x : q) x = normal(rng) * (trial % 3 == 0 ? 10.0f : 1.0f);
    for (int64_t page = 0; page * s.block_size < s.lens[0]; ++page) {
      const int64_t block = p.cache.block_table()[static_cast<size_t>(page)];
      const float* lo = p.bounds.data<float>() + p.bounds.view().offset(block, 0, 0);
      const float* hi = p.bounds.data<float>() + p.bounds.view().offset(block, 1, 0);
      const float u = quest_page_bound([&](int64_t d) { return q[static_cast<size_t>(d)]; }, lo, hi,
                                       s.head_dim);
      double best = -INFINITY, magnitude = 0;
      for (int64_t i = 0; i < std::min<int64_t>(s.block_size, s.lens[0] - page * s.block_size);
           ++i) {
        double dot = 0, mag = 0;
        for (int64_t c = 0; c < s.head_dim; ++c) {
          dot += static_cast<double>(q[static_cast<size_t>(c)]) * p.key(block, i, 0, c);
          mag += std::abs(static_cast<double>(q[static_cast<size_t>(c)]) * p.key(block, i, 0, c));
        }
        best = std::max(best, dot);
        magnitude = std::max(magnitude, mag);
      }
      ASSERT_GE(u, best - 1e-6 * magnitude) << "trial " << trial << " page " << page;
      tight += u < best + 0.5 * magnitude;  // not a vacuous bound either
    }
  }
  EXPECT_GT(tight, 0);
}

// The selection is sorted by position, ends with the pages of the newest rows, fits max_pages,
// and its length counts full pages plus the last page's fill.
void expect_selection_well_formed(const QuestProblem& p, const QuestDecode& quest,
                                  const QuestDecode::Selection& sel, const QuestParams& params) {
  const QuestSpec& s = p.spec;
  const int64_t width = quest.max_pages(params.decode.kv), bs = s.block_size;
  for (int64_t g = 0; g < s.kv_heads; ++g)
    for (int64_t b = 0; b < s.batch(); ++b) {
      const int64_t len = s.lens[static_cast<size_t>(b)], count = sel.lens[g * s.batch() + b];
      const int32_t* row = sel.table + (g * s.batch() + b) * width;
      const int32_t* cache_row = p.cache.block_table().data() + b * p.config.max_blocks;
      const int64_t pages = (count + bs - 1) / bs;
      ASSERT_LE(pages, width);
      ASSERT_EQ(count % bs, len % bs);
      std::vector<int64_t> position;
      for (int64_t i = 0; i < pages; ++i)
        for (int64_t page = 0; page * bs < len; ++page)
          if (cache_row[page] == row[i]) position.push_back(page);
      ASSERT_EQ(static_cast<int64_t>(position.size()), pages);
      for (size_t i = 1; i < position.size(); ++i) ASSERT_LT(position[i - 1], position[i]);
      if (len == 0) continue;
      // The newest R tokens are the selection's last R tokens.
      for (int64_t r = 0; r < std::min<int64_t>(s.rows, len); ++r) {
        const int64_t orig = len - 1 - r, comp = count - 1 - r;
        ASSERT_EQ(row[comp / bs], cache_row[orig / bs]) << "row " << r << " seq " << b;
      }
    }
}

TEST(Quest, IsExactAttentionOverItsSelection) {
  const int64_t shapes[][5] = {// rows, heads, kv_heads, head_dim, block_size
                               {1, 4, 2, 72, 16},
                               {5, 8, 2, 80, 16},
                               {8, 6, 1, 64, 32},
                               {3, 4, 4, 17, 16},
                               {2, 8, 2, 128, 48}};
  uint64_t seed = 40;
  for (const auto& sh : shapes)
    for (int64_t budget : {1, 40, 100})
      for (QuestAggregation agg : {QuestAggregation::kMax, QuestAggregation::kSum}) {
        QuestSpec s;
        s.lens = {301, 18, 2, 0, 129};  // partial pages of 13, 2, 2, none, 1 tokens
        s.rows = sh[0];
        s.heads = sh[1];
        s.kv_heads = sh[2];
        s.head_dim = sh[3];
        s.block_size = sh[4];
        s.seed = ++seed;
        for (int32_t& l : s.lens) l = std::max<int32_t>(l, l ? static_cast<int32_t>(s.rows) : 0);
        QuestProblem p(s);
        const auto quest = make_quest(budget, agg);
        QuestParams params = p.params();
        ASSERT_TRUE(quest->supports(params).ok()) << quest->supports(params).to_string();
        std::vector<char> ws(quest->workspace_size(params));
        throw_if_error(quest->forward(params, Workspace{ws.data(), ws.size()}));
        const QuestDecode::Selection sel =
            quest->selection(params, Workspace{ws.data(), ws.size()});
        expect_selection_well_formed(p, *quest, sel, params);
        const int64_t width = quest->max_pages(params.decode.kv);
        double worst = 0;
        for (int64_t b = 0; b < s.batch(); ++b)
          for (int64_t h = 0; h < s.heads; ++h)
            for (int64_t r = 0; r < s.rows; ++r) {
              const int64_t g = h / (s.heads / s.kv_heads);
              const std::vector<double> want = testing::selected_attention(
                  p, sel.table + (g * s.batch() + b) * width, sel.lens[g * s.batch() + b], b, h, r);
              for (int64_t c = 0; c < s.head_dim; ++c) {
                const float got = p.out.get(p.out.view().offset(b, r, h) + c);
                ASSERT_FALSE(std::isnan(got)) << "seq " << b << " head " << h << " row " << r;
                worst = std::max(worst, std::abs(got - want[static_cast<size_t>(c)]));
              }
            }
        EXPECT_LE(worst, 2e-5) << "budget " << budget << " agg " << to_string(agg) << " rows "
                               << s.rows << " D " << s.head_dim << " bs " << s.block_size;
      }
}

// Both ways: a length bound within the budget (forward runs the dense decode directly), and a
// bound past it (0: the capacity), where every sequence still fits and the per-head path keeps
// all its pages.
TEST(Quest, BudgetCoveringTheSequenceIsTheDenseDecode) {
  for (int64_t splits : {1, 3, 0})
    for (bool per_head : {false, true}) {
      QuestSpec s;
      s.lens = {250, 33, 97};
      s.rows = 4;
      s.heads = 8;
      s.kv_heads = 2;
      s.head_dim = 80;
      s.kv_dtype = DType::kF16;
      s.q_dtype = DType::kF16;
      s.seed = 70 + static_cast<uint64_t>(splits);
      QuestProblem p(s);
      const auto quest = make_quest(256);
      QuestParams params = p.params(splits);
      if (per_head) params.decode.kv.max_seq_len = 0;
      ASSERT_EQ(params.decode.kv.length_bound() > 256, per_head);
      std::vector<char> ws(quest->workspace_size(params));
      throw_if_error(quest->forward(params, Workspace{ws.data(), ws.size()}));
      if (per_head) {  // the selection kept every page, in order
        const QuestDecode::Selection sel =
            quest->selection(params, Workspace{ws.data(), ws.size()});
        for (int64_t g = 0; g < s.kv_heads; ++g)
          for (int64_t b = 0; b < s.batch(); ++b)
            ASSERT_EQ(sel.lens[g * s.batch() + b], s.lens[static_cast<size_t>(b)]);
      }
      Tensor dense_out(s.q_dtype, {s.batch(), s.rows, s.heads, s.head_dim});
      Tensor dense_lse(DType::kF32, {s.batch(), s.heads, s.rows});
      DecodeParams dense = params.decode;
      dense.kv.max_seq_len = p.cache.view().max_seq_len;  // the same split plan in both runs
      dense.out = dense_out.view();
      dense.lse = dense_lse.view();
      dense_decode()->run(dense);
      EXPECT_EQ(std::memcmp(p.out.data<char>(), dense_out.data<char>(),
                            static_cast<size_t>(dense_out.bytes())),
                0)
          << "splits " << splits << " per-head " << per_head;
      EXPECT_EQ(std::memcmp(p.lse.data<char>(), dense_lse.data<char>(),
                            static_cast<size_t>(dense_lse.bytes())),
                0)
          << "splits " << splits;
    }
}

TEST(Quest, FindsThePlantedPage) {
  // Every key small and random except one token per (sequence, KV head) that matches the first
  // query head of its group; that token's page must be kept with a budget of 3 pages out of 40.
  for (QuestAggregation agg : {QuestAggregation::kMax, QuestAggregation::kSum}) {
    QuestSpec s;
    s.lens = {640, 333};
    s.heads = 8;
    s.kv_heads = 2;
    s.head_dim = 64;
    s.seed = 90;
    const int64_t planted[2][2] = {{77, 402}, {200, 5}};  // token per (sequence, KV head)
    Tensor q(DType::kF32, {2, 1, 8, 64});
    fill_uniform(q, 123);
    s.shape_key = [&](int64_t b, int64_t j, int64_t g, float* key) {
      for (int64_t c = 0; c < 64; ++c)
        key[c] =
            j == planted[b][g] ? 4.0f * q.get(q.view().offset(b, 0, g * 4) + c) : 0.05f * key[c];
    };
    QuestProblem p(s);
    for (int64_t i = 0; i < q.numel(); ++i) p.q.set(i, q.get(i));
    const auto quest = make_quest(3 * 16, agg);
    QuestParams params = p.params();
    std::vector<char> ws(quest->workspace_size(params));
    throw_if_error(quest->forward(params, Workspace{ws.data(), ws.size()}));
    const QuestDecode::Selection sel = quest->selection(params, Workspace{ws.data(), ws.size()});
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t g = 0; g < 2; ++g) {
        const int32_t want =
            p.cache
                .block_table()[static_cast<size_t>(b * p.config.max_blocks + planted[b][g] / 16)];
        const int32_t* row = sel.table + (g * 2 + b) * 3;
        EXPECT_TRUE(row[0] == want || row[1] == want)
            << to_string(agg) << " seq " << b << " head " << g;
        EXPECT_EQ(sel.lens[g * 2 + b], 2 * 16 + (s.lens[static_cast<size_t>(b)] - 1) % 16 + 1);
      }
  }
}

TEST(Quest, BadKnobsAreTypedErrorsAndLeaveTheCacheAlone) {
  std::unique_ptr<QuestDecode> q;
  Status st = QuestDecode::create(QuestConfig{0, QuestAggregation::kMax}, dense_decode(), &q);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("token_budget = 0"), std::string::npos) << st.to_string();
  st = QuestDecode::create(QuestConfig{64, static_cast<QuestAggregation>(7)}, dense_decode(), &q);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("aggregation = 7"), std::string::npos) << st.to_string();
  st = QuestDecode::create(QuestConfig{64, QuestAggregation::kMax}, nullptr, &q);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();

  QuestSpec s;
  s.lens = {100, 60};
  QuestProblem p(s);
  const std::vector<int32_t> lens = p.cache.lengths(), table = p.cache.block_table();
  const std::vector<float> bounds(p.bounds.data<float>(),
                                  p.bounds.data<float>() + p.bounds.numel());
  const auto quest = make_quest(32);
  QuestParams params = p.params();
  std::vector<char> ws(quest->workspace_size(params));
  QuestParams bad = params;
  bad.key_bounds = TensorView{};
  EXPECT_EQ(quest->forward(bad, Workspace{ws.data(), ws.size()}).code(), StatusCode::kNullPointer);
  bad = params;
  bad.key_bounds.shape[2] = 3;
  EXPECT_EQ(quest->forward(bad, Workspace{ws.data(), ws.size()}).code(),
            StatusCode::kShapeMismatch);
  bad = params;
  bad.decode.kv.layout = KvLayout::kContiguous;
  EXPECT_EQ(quest->supports(bad).code(), StatusCode::kUnsupported);
  st = quest->forward(params, Workspace{ws.data(), ws.size() - 1});
  EXPECT_EQ(st.code(), StatusCode::kWorkspaceTooSmall) << st.to_string();
  bad = params;
  const Tensor nine_rows(DType::kF32, {2, 9, 4, 72});
  bad.decode.q = nine_rows.view();
  EXPECT_EQ(quest->supports(bad).code(), StatusCode::kInvalidArgument);
  // A failed append (too long) changes neither the cache nor its bounds.
  EXPECT_FALSE(testing::quest_append(p.cache, s, {100, 60}, {100, 60 + 1000}).ok());
  EXPECT_EQ(p.cache.lengths(), lens);
  EXPECT_EQ(p.cache.block_table(), table);
  EXPECT_EQ(std::memcmp(bounds.data(), p.bounds.data<float>(), bounds.size() * sizeof(float)), 0);
  throw_if_error(quest->forward(params, Workspace{ws.data(), ws.size()}));
  EXPECT_EQ(p.cache.lengths(), lens);
}

}  // namespace
}  // namespace qwen3vl
