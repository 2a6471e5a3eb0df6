// CPU decode attention against the float64 reference: contiguous and paged caches (block sizes
// 16/32/256, shuffled tables, partial last blocks, NaN in unused slots), 1..8 new rows,
// MHA/GQA/MQA, odd head dims, every ISA this machine runs, forced and automatic key splits.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "decode_problem.hpp"
#include "per_head_pages.hpp"

namespace qwen3vl {
namespace {

using testing::DecodeProblem;
using testing::DecodeSpec;

std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (cpu_isa_compiled(isa) && cpu_supports(CpuInfo::current(), isa)) isas.push_back(isa);
  return isas;
}

std::unique_ptr<DecodeAttention> make(CpuIsa isa = CpuIsa::kAuto, int threads = 2) {
  CpuOptions o;
  o.isa = isa;
  o.num_threads = threads;
  std::unique_ptr<DecodeAttention> d;
  throw_if_error(create_decode_cpu(o, &d));
  return d;
}

double lse_tolerance(DType out) { return out == DType::kF32 ? 2e-5 : 1e-3; }

std::vector<DecodeSpec> sweep() {
  const std::vector<std::vector<int32_t>> lens = {{1},           {3},          {17},   {63, 65},
                                                  {129, 0, 257}, {16, 32, 48}, {1000}, {4097, 5}};
  const int64_t heads[][2] = {{4, 4}, {8, 2}, {6, 1}, {32, 8}};
  const int64_t dims[] = {64, 72, 80, 128, 17, 256};
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  const int64_t blocks[] = {0, 16, 32, 256};  // 0: contiguous
  const int64_t splits[] = {0, 1, 3};
  std::vector<DecodeSpec> specs;
  uint64_t seed = 10;
  for (size_t i = 0; i < lens.size(); ++i)
    for (size_t variant = 0; variant < 3; ++variant) {
      const size_t k = i * 3 + variant;
      DecodeSpec s;
      s.lens = lens[i];
      s.rows = 1 + static_cast<int64_t>(k % 8);
      s.heads = heads[k % 4][0];
      s.kv_heads = heads[k % 4][1];
      s.head_dim = dims[k % 6];
      s.kv_dtype = dtypes[k % 3];
      s.q_dtype = variant == 2 ? DType::kF32 : s.kv_dtype;
      s.layout = blocks[k % 4] ? KvLayout::kPaged : KvLayout::kContiguous;
      s.block_size = blocks[k % 4] ? blocks[k % 4] : 16;
      s.num_splits = splits[k % 3];
      s.bhsd_q = k % 5 == 0;
      s.seed = ++seed;
      specs.push_back(s);
    }
  return specs;
}

TEST(DecodeCpu, MatchesTheFloat64ReferenceOnEveryIsa) {
  for (const DecodeSpec& spec : sweep()) {
    DecodeProblem p(spec);
    for (CpuIsa isa : runnable_isas()) {
      for (int64_t i = 0; i < p.out.numel(); ++i) p.out.set(i, NAN);
      for (int64_t i = 0; i < p.lse.numel(); ++i) p.lse.set(i, NAN);
      const auto dec = make(isa);
      ASSERT_TRUE(dec->supports(p.params).ok()) << dec->supports(p.params).to_string();
      dec->run(p.params);
      const testing::DecodeErrors e = testing::decode_errors(p);
      EXPECT_LE(e.out, testing::tolerance(spec.q_dtype))
          << to_string(isa) << " " << spec.to_string();
      EXPECT_LE(e.lse, lse_tolerance(spec.q_dtype)) << to_string(isa) << " " << spec.to_string();
    }
  }
}

TEST(DecodeCpu, ScaleAndHeadDimEdges) {
  for (int64_t d : {1, 8, 33, 200}) {
    DecodeSpec s;
    s.lens = {70, 19};
    s.head_dim = d;
    s.rows = 3;
    s.scale = 0.7f;
    s.num_splits = 2;
    DecodeProblem p(s);
    make()->run(p.params);
    const testing::DecodeErrors e = testing::decode_errors(p);
    EXPECT_LE(e.out, 1e-5) << s.to_string();
    EXPECT_LE(e.lse, 2e-5) << s.to_string();
  }
}

// Same data through both layouts: equal within float rounding; bit-identical where the chunking is
// the same (one split and 256-token blocks, a multiple of the 64-key chunk).
TEST(DecodeCpu, PagedEqualsContiguous) {
  for (int64_t bs : {16, 32, 256})
    for (int64_t splits : {1, 4}) {
      DecodeSpec s;
      s.lens = {300, 1, 77, 512};
      s.heads = 8;
      s.kv_heads = 2;
      s.rows = 2;
      s.head_dim = 128;
      s.kv_dtype = DType::kF16;
      s.num_splits = splits;
      s.block_size = bs;
      DecodeProblem paged(s);
      s.layout = KvLayout::kContiguous;
      DecodeProblem contiguous(s);
      const auto dec = make();
      dec->run(paged.params);
      dec->run(contiguous.params);
      double diff = 0, norm = 0;
      for (int64_t i = 0; i < paged.out.numel(); ++i) {
        const double a = paged.out.get(i), b = contiguous.out.get(i);
        diff += (a - b) * (a - b);
        norm += b * b;
      }
      EXPECT_LE(std::sqrt(diff / norm), 1e-6) << s.to_string();
      if (bs == 256 && splits == 1) {
        EXPECT_EQ(0, std::memcmp(paged.out.data<float>(), contiguous.out.data<float>(),
                                 static_cast<size_t>(paged.out.bytes())));
      }
    }
}

// Per-KV-head pages (block_table [B, Hkv, pages], seq_lens [B, Hkv]): one call equals each head
// decoded alone on its own table, on every ISA; GQA, an empty sequence, partial last blocks,
// splits.
TEST(DecodeCpu, PerHeadPagesEqualOneDecodePerHead) {
  DecodeSpec a, b, c;
  a.lens = {100, 0, 257};
  a.heads = 8;
  a.kv_heads = 4;
  a.kv_dtype = a.q_dtype = DType::kF16;
  b.lens = {700};
  b.heads = 12;
  b.kv_heads = 3;
  b.head_dim = 72;
  b.block_size = 32;
  b.num_splits = 3;
  c.lens = {45, 333};
  c.rows = 3;
  c.head_dim = 128;
  c.kv_dtype = DType::kBF16;
  uint64_t seed = 70;
  for (DecodeSpec s : {a, b, c}) {
    s.seed = ++seed;
    for (CpuIsa isa : runnable_isas()) {
      DecodeProblem all(s), alone(s);
      const testing::PerHeadPages pages(all);
      const auto dec = make(isa);
      dec->run(
          pages.all_heads(all.params, pages.table.data<int32_t>(), pages.lens.data<int32_t>()));
      for (int64_t h = 0; h < s.kv_heads; ++h)
        dec->run(pages.one_head(alone.params, h, pages.table.data<int32_t>(),
                                pages.lens.data<int32_t>()));
      EXPECT_LE(testing::relative_diff(all.out, alone.out), 1e-6)
          << s.to_string() << " " << to_string(isa);
      EXPECT_LE(testing::relative_diff(all.lse, alone.lse), 1e-6)
          << s.to_string() << " " << to_string(isa);
    }
  }
}

// Per-head metadata: a [B, Hkv, pages] table needs [B, Hkv] lengths; lengths must have Hkv
// columns; each head's block ids and lengths are checked, the message naming (b, h).
TEST(DecodeCpu, PerHeadPagesAreValidated) {
  DecodeSpec s;
  s.lens = {40, 20};
  DecodeProblem p(s);
  const testing::PerHeadPages pages(p);
  const auto dec = make();
  const DecodeParams good =
      pages.all_heads(p.params, pages.table.data<int32_t>(), pages.lens.data<int32_t>());
  ASSERT_TRUE(dec->supports(good).ok());
  DecodeParams bad = good;
  bad.kv.seq_lens = p.params.kv.seq_lens;  // [B] lengths with a per-head table
  EXPECT_EQ(dec->supports(bad).code(), StatusCode::kShapeMismatch);
  bad = good;
  bad.kv.seq_lens.shape[1] = 3;
  EXPECT_EQ(dec->supports(bad).code(), StatusCode::kInvalidArgument);
  const int32_t saved = pages.table.data<int32_t>()[pages.pages];  // head 0, sequence 1, page 0
  pages.table.data<int32_t>()[pages.pages] = 99;
  const Status st = dec->supports(good);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("kv.block_table[1, 0, 0] = 99"), std::string::npos) << st.message();
  pages.table.data<int32_t>()[pages.pages] = saved;
  pages.lens.data<int32_t>()[1] = 1000;  // head 0, sequence 1
  EXPECT_EQ(dec->supports(good).code(), StatusCode::kInvalidArgument);
}

TEST(DecodeCpu, EverySplitCountAgrees) {
  DecodeSpec s;
  s.lens = {333, 40};
  s.heads = 4;
  s.kv_heads = 1;
  s.rows = 5;
  DecodeProblem base(s);
  make()->run(base.params);
  for (int64_t splits : {0, 1, 2, 3, 5, 8, 21, 64}) {
    s.num_splits = splits;
    DecodeProblem p(s);
    const auto dec = make();
    dec->run(p.params);
    const testing::DecodeErrors e = testing::decode_errors(p);
    EXPECT_LE(e.out, 1e-5) << "splits " << splits << " (used " << dec->splits(p.params) << ")";
    EXPECT_LE(e.lse, 2e-5) << "splits " << splits;
  }
}

TEST(DecodeCpu, RowsThatSeeNoKeyGiveZeroAndMinusInfLse) {
  DecodeSpec s;
  s.lens = {0, 2};
  s.rows = 4;  // sequence 1: rows 0 and 1 see nothing, rows 2 and 3 see 1 and 2 keys
  s.num_splits = 3;
  for (CpuIsa isa : runnable_isas()) {
    DecodeProblem p(s);
    make(isa)->run(p.params);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t r = 0; r < 4; ++r)
        for (int64_t h = 0; h < s.heads; ++h) {
          const bool empty = b == 0 || r < 2;
          const float lse = p.lse.get((b * s.heads + h) * 4 + r);
          EXPECT_EQ(empty, lse == -std::numeric_limits<float>::infinity()) << b << " " << r;
          for (int64_t c = 0; c < s.head_dim; ++c) {
            const float o = p.out.get(((b * 4 + r) * s.heads + h) * s.head_dim + c);
            EXPECT_FALSE(std::isnan(o));
            if (empty) {
              EXPECT_EQ(o, 0.0f);
            }
          }
        }
    EXPECT_LE(testing::decode_errors(p).out, 1e-5) << to_string(isa);
  }
}

TEST(DecodeCpu, IsDeterministicAcrossRunsAndThreadCounts) {
  DecodeSpec s;
  s.lens = {700, 90, 3};
  s.heads = 8;
  s.kv_heads = 4;
  s.kv_dtype = DType::kBF16;
  s.q_dtype = DType::kF32;
  s.num_splits = 5;
  DecodeProblem a(s), b(s);
  make(CpuIsa::kAuto, 1)->run(a.params);
  const auto three = make(CpuIsa::kAuto, 3);
  for (int repeat = 0; repeat < 3; ++repeat) {
    three->run(b.params);
    ASSERT_EQ(0, std::memcmp(a.out.data<float>(), b.out.data<float>(),
                             static_cast<size_t>(a.out.bytes())));
    ASSERT_EQ(0, std::memcmp(a.lse.data<float>(), b.lse.data<float>(),
                             static_cast<size_t>(a.lse.bytes())));
  }
}

TEST(DecodeCpu, RejectsBadArgumentsWithTypedErrors) {
  DecodeSpec s;
  s.lens = {40, 20};
  s.rows = 2;
  DecodeProblem p(s);
  const auto dec = make();
  auto code = [&](const DecodeParams& params) { return dec->supports(params).code(); };
  ASSERT_EQ(code(p.params), StatusCode::kOk);

  DecodeParams bad = p.params;
  bad.q.shape[1] = bad.out.shape[1] = 9;
  EXPECT_EQ(code(bad), StatusCode::kInvalidArgument);  // rows outside 1..8
  bad = p.params;
  bad.q.shape[2] = bad.out.shape[2] = 3;  // Hq not a multiple of Hkv = 2
  EXPECT_EQ(code(bad), StatusCode::kInvalidArgument);
  bad = p.params;
  bad.out.shape[0] = 3;
  EXPECT_EQ(code(bad), StatusCode::kShapeMismatch);
  bad = p.params;
  bad.q.stride[3] = 2;
  EXPECT_EQ(code(bad), StatusCode::kBadStride);
  bad = p.params;
  bad.lse.shape[2] = 1;
  EXPECT_EQ(code(bad), StatusCode::kShapeMismatch);
  bad = p.params;
  bad.kv.k.device = bad.kv.v.device = Device::kCUDA;
  EXPECT_EQ(code(bad), StatusCode::kUnsupported);
  bad = p.params;
  bad.q.dtype = DType::kI32;
  EXPECT_EQ(code(bad), StatusCode::kInvalidArgument);

  // Cache metadata: an out-of-range block id, a length past the capacity, a bad block size.
  p.table.data<int32_t>()[1] = 1000;  // sequence 0 uses blocks 0..2
  EXPECT_EQ(code(p.params), StatusCode::kInvalidArgument);
  p.table.data<int32_t>()[1] = -1;
  EXPECT_EQ(code(p.params), StatusCode::kInvalidArgument);
  EXPECT_THROW(dec->run(p.params), Error);
  DecodeProblem q(s);
  q.lens.data<int32_t>()[1] = 10000;
  EXPECT_EQ(code(q.params), StatusCode::kInvalidArgument);
  q.lens.data<int32_t>()[1] = -1;
  EXPECT_EQ(code(q.params), StatusCode::kInvalidArgument);
  DecodeProblem r(s);
  r.params.kv.k.shape[1] = r.params.kv.v.shape[1] = 8;
  EXPECT_EQ(code(r.params), StatusCode::kInvalidArgument);

  // Workspace too small.
  DecodeSpec big = s;
  big.lens = {2000};
  big.num_splits = 4;
  DecodeProblem w(big);
  const size_t need = dec->workspace_size(w.params);
  ASSERT_GT(need, 0u);
  std::vector<char> small(need / 2);
  EXPECT_EQ(dec->forward(w.params, Workspace{small.data(), small.size()}).code(),
            StatusCode::kWorkspaceTooSmall);
}

}  // namespace
}  // namespace qwen3vl
