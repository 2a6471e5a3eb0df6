// Compressed KV cache formats (int8, int4, fp8 e4m3): the codecs' round-trip error against float64
// on random and outlier-heavy rows; CPU decode over compressed caches (contiguous and paged,
// GQA, 1..8 rows, odd lengths, every ISA this machine runs) against the float64 oracle fed with
// the dequantized cache; append encoding, fork and copy-on-write copying scales, key bounds from
// the dequantized keys; typed errors that change nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "decode_problem.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/kv_cache/quest.hpp"

namespace qwen3vl {
namespace {

using testing::DecodeProblem;
using testing::DecodeSpec;

constexpr KvFormat kFormats[] = {KvFormat::kInt8, KvFormat::kInt4, KvFormat::kFp8E4M3};

std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (cpu_isa_compiled(isa) && cpu_supports(CpuInfo::current(), isa)) isas.push_back(isa);
  return isas;
}

std::unique_ptr<DecodeAttention> make(CpuIsa isa = CpuIsa::kAuto, int threads = 2,
                                      const CpuInfo* cpu = nullptr) {
  CpuOptions o;
  o.isa = isa;
  o.num_threads = threads;
  o.cpu_info = cpu;
  std::unique_ptr<DecodeAttention> d;
  throw_if_error(create_decode_cpu(o, &d));
  return d;
}

// Rows of d values: uniform in [-1, 1], or N(0, 1) with a few persistent outlier channels 10-50x
// larger and offset (as real keys have).
std::vector<float> rows_of(int64_t n, int64_t d, bool outliers, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> mult(static_cast<size_t>(d), 1.0f);
  if (outliers)
    for (int64_t i = 0; i < 4 && i < d; ++i)
      mult[static_cast<size_t>((i * 37 + 5) % d)] = 10.0f + 40.0f * (uni(rng) + 1.0f) / 2.0f;
  std::vector<float> x(static_cast<size_t>(n * d));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < d; ++c) {
      const float m = mult[static_cast<size_t>(c)];
      x[static_cast<size_t>(r * d + c)] =
          outliers ? normal(rng) * m + (m > 1.0f ? 2.0f * m : 0.0f) : uni(rng);
    }
  return x;
}

// Encodes and decodes every row; checks each value's error against its bound (in float64) and
// returns the relative Frobenius error.
double round_trip(KvFormat f, const std::vector<float>& x, int64_t d) {
  const int64_t n = static_cast<int64_t>(x.size()) / d;
  std::vector<uint8_t> codes(static_cast<size_t>(kv_code_bytes(f, d)));
  std::vector<half> scales(static_cast<size_t>(kv_scale_count(f, d)));
  std::vector<float> y(static_cast<size_t>(d));
  double err = 0, norm = 0;
  const int64_t group = f == KvFormat::kInt4 ? kKvInt4Group : d;
  const double levels = f == KvFormat::kInt8 ? 127 : f == KvFormat::kInt4 ? 7.5 : 448;
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x.data() + r * d;
    kv_encode_row(f, row, d, codes.data(), scales.data());
    kv_decode_row(f, codes.data(), scales.data(), d, y.data());
    for (int64_t g0 = 0; g0 < d; g0 += group) {
      double amax = 0;
      for (int64_t c = g0; c < g0 + group; ++c) amax = std::max(amax, std::fabs(double(row[c])));
      const double s = to_float(scales[static_cast<size_t>(g0 / group)]);
      EXPECT_GE(s * levels, amax) << to_string(f) << " row " << r << " group " << g0 / group;
      EXPECT_LE(s, amax / levels * (1 + 0x1p-9) + 1e-7) << to_string(f) << " row " << r;
      for (int64_t c = g0; c < g0 + group; ++c) {
        const double e = std::fabs(double(y[static_cast<size_t>(c)]) - double(row[c]));
        const double bound = f == KvFormat::kFp8E4M3
                                 ? 0x1p-4 * std::fabs(double(row[c])) + 0x1p-7 * s
                                 : 0.5 * s + 1e-6 * std::fabs(double(row[c]));
        EXPECT_LE(e, bound) << to_string(f) << " row " << r << " column " << c << " x " << row[c];
        err += e * e;
        norm += double(row[c]) * double(row[c]);
      }
    }
  }
  return std::sqrt(err / norm);
}

TEST(KvFormat, RoundTripErrorBounds) {
  struct Case {
    KvFormat f;
    double uniform, outliers;  // bounds on the relative error
  };
  for (const Case& k : {Case{KvFormat::kInt8, 6e-3, 3e-2}, Case{KvFormat::kInt4, 8e-2, 0.12},
                        Case{KvFormat::kFp8E4M3, 3e-2, 3e-2}})
    for (int64_t d : {32, 64, 128, 256, 17, 73}) {
      if (k.f == KvFormat::kInt4 && d % kKvInt4Group) continue;
      const double u = round_trip(k.f, rows_of(300, d, false, 5 + d), d);
      const double o = round_trip(k.f, rows_of(300, d, true, 6 + d), d);
      EXPECT_LE(u, k.uniform) << to_string(k.f) << " D " << d;
      EXPECT_LE(o, k.outliers) << to_string(k.f) << " D " << d;
      if (d == 128)
        std::printf("%-8s D 128: relative error %.3e uniform, %.3e outlier-heavy\n", to_string(k.f),
                    u, o);
    }
}

TEST(KvFormat, ZeroTinyAndNonFiniteRows) {
  for (KvFormat f : kFormats) {
    const int64_t d = 64;
    std::vector<uint8_t> codes(static_cast<size_t>(kv_code_bytes(f, d)));
    std::vector<half> scales(static_cast<size_t>(kv_scale_count(f, d)));
    std::vector<float> x(static_cast<size_t>(d), 0.0f), y(static_cast<size_t>(d));
    kv_encode_row(f, x.data(), d, codes.data(), scales.data());
    kv_decode_row(f, codes.data(), scales.data(), d, y.data());
    for (float v : y) EXPECT_EQ(v, 0.0f) << to_string(f);
    for (int64_t c = 0; c < d; ++c) x[static_cast<size_t>(c)] = 1e-6f * float(c % 7 - 3);
    x[3] = 1e-3f;
    kv_encode_row(f, x.data(), d, codes.data(), scales.data());
    kv_decode_row(f, codes.data(), scales.data(), d, y.data());
    EXPECT_NEAR(y[3], 1e-3f, 1e-4f) << to_string(f);
    x[5] = NAN;
    kv_encode_row(f, x.data(), d, codes.data(), scales.data());
    kv_decode_row(f, codes.data(), scales.data(), d, y.data());
    EXPECT_TRUE(std::isnan(y[5])) << to_string(f);
    EXPECT_TRUE(std::isnan(y[0])) << to_string(f);  // the scale (row or group) is NaN
  }
  // Every e4m3 code but NaN decodes as the standard format says; the encoder's codes are its own.
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;
    const float v = detail::fp8_e4m3_value(static_cast<uint8_t>(code));
    if ((code & 0x7f) >= 0x08) {  // normal codes round-trip through the encoder
      const float s = 1.0f;
      const uint8_t back =
          static_cast<uint8_t>((v < 0 ? 0x80 : 0) | detail::fp8_e4m3_magnitude(std::fabs(v) / s));
      EXPECT_EQ(back, code) << v;
    }
  }
  EXPECT_EQ(detail::fp8_e4m3_value(0x7e), 448.0f);
  EXPECT_EQ(detail::fp8_e4m3_value(0x01), 0x1p-9f);
  EXPECT_EQ(detail::fp8_e4m3_value(0xb8), -1.0f);
}

// A compressed copy of a DecodeProblem's cache: every stored token encoded into codes and scales
// at its slot (unused slots hold NaN scales: reading one would show), and the problem's dense
// keys and values replaced by the dequantized ones, so the float64 oracle sees what decode reads.
struct CodedCache {
  Tensor k, v, ks, vs;
  CodedCache(DecodeProblem& p, KvFormat f) {
    const KvCacheView& kv = p.params.kv;
    const int64_t hkv = kv.kv_heads(), d = kv.head_dim(), bytes = kv_code_bytes(f, d),
                  ns = kv_scale_count(f, d);
    k = Tensor(DType::kU8, {kv.k.shape[0], kv.k.shape[1], hkv, bytes});
    v = Tensor(DType::kU8, {kv.k.shape[0], kv.k.shape[1], hkv, bytes});
    ks = Tensor(DType::kF16, {kv.k.shape[0], kv.k.shape[1], hkv, ns});
    vs = Tensor(DType::kF16, {kv.k.shape[0], kv.k.shape[1], hkv, ns});
    std::memset(k.data<uint8_t>(), 0x5a, static_cast<size_t>(k.bytes()));
    std::memset(v.data<uint8_t>(), 0x5a, static_cast<size_t>(v.bytes()));
    for (int64_t i = 0; i < ks.numel(); ++i) ks.data<half>()[i] = vs.data<half>()[i] = half{0x7e00};
    const int64_t dense_len = p.k_dense.view().shape[1];
    const detail::PagedIndexer pager =
        kv.layout == KvLayout::kPaged ? detail::paged_indexer(kv) : detail::PagedIndexer{};
    std::vector<float> row(static_cast<size_t>(d));
    for (int64_t b = 0; b < kv.batch(); ++b)
      for (int64_t j = 0; j < kv.seq_len(b, 0); ++j) {
        const detail::KvSlot slot =
            kv.layout == KvLayout::kPaged ? pager.slot(b, j) : detail::KvSlot{b, j};
        for (int64_t h = 0; h < hkv; ++h) {
          const int64_t dense = ((b * dense_len + j) * hkv + h) * d;
          const int64_t at = (slot.major * kv.k.shape[1] + slot.minor) * hkv + h;
          for (Tensor* pair : {&p.k_dense, &p.v_dense}) {
            const bool is_k = pair == &p.k_dense;
            uint8_t* codes = (is_k ? k : v).data<uint8_t>() + at * bytes;
            half* scales = (is_k ? ks : vs).data<half>() + at * ns;
            for (int64_t c = 0; c < d; ++c) row[static_cast<size_t>(c)] = pair->get(dense + c);
            kv_encode_row(f, row.data(), d, codes, scales);
            for (int64_t c = 0; c < d; ++c) pair->set(dense + c, kv_decode(f, codes, scales, c));
          }
        }
      }
    p.params.kv.format = f;
    p.params.kv.k = k.view();
    p.params.kv.v = v.view();
    p.params.kv.k_scales = ks.view();
    p.params.kv.v_scales = vs.view();
  }
};

std::vector<DecodeSpec> sweep() {
  const std::vector<std::vector<int32_t>> lens = {{1},           {3},          {17},   {63, 65},
                                                  {129, 0, 257}, {16, 32, 48}, {1000}, {4097, 5}};
  const int64_t heads[][2] = {{4, 4}, {8, 2}, {6, 1}, {32, 8}};
  const int64_t blocks[] = {0, 16, 32, 256};  // 0: contiguous
  const int64_t splits[] = {0, 1, 3};
  std::vector<DecodeSpec> specs;
  uint64_t seed = 300;
  for (size_t i = 0; i < lens.size(); ++i)
    for (size_t variant = 0; variant < 2; ++variant) {
      const size_t k = i * 2 + variant;
      DecodeSpec s;
      s.lens = lens[i];
      s.rows = 1 + static_cast<int64_t>(k % 8);
      s.heads = heads[k % 4][0];
      s.kv_heads = heads[k % 4][1];
      s.layout = blocks[k % 4] ? KvLayout::kPaged : KvLayout::kContiguous;
      s.block_size = blocks[k % 4] ? blocks[k % 4] : 16;
      s.num_splits = splits[k % 3];
      s.bhsd_q = k % 5 == 0;
      s.seed = ++seed;
      specs.push_back(s);
    }
  return specs;
}

// q (any layout: rows of d values) as the integer Q.K path of int8 caches reads it: each row
// quantized by kv_quantize_query and dequantized (code * scale, rounded once to fp32).
Tensor quantized_q(const Tensor& q, int64_t d) {
  const TensorView v = q.view();
  Tensor out(DType::kF32, std::vector<int64_t>(v.shape, v.shape + v.rank));
  std::vector<float> x(static_cast<size_t>(d));
  std::vector<int8_t> codes(static_cast<size_t>(d));
  for (int64_t r = 0; r < q.numel() / d; ++r) {
    for (int64_t c = 0; c < d; ++c) x[static_cast<size_t>(c)] = q.get(r * d + c);
    const float scale = kv_quantize_query(x.data(), d, codes.data());
    for (int64_t c = 0; c < d; ++c)
      out.set(r * d + c, static_cast<float>(codes[static_cast<size_t>(c)]) * scale);
  }
  return out;
}

// Every format through the float Q.K (the default), and int8 also through the integer Q.K against
// the oracle fed with q quantized as that path quantizes it.
TEST(KvFormatDecode, MatchesTheFloat64OracleOnTheDequantizedCache) {
  const int64_t dims8[] = {64, 72, 17, 128, 256}, dims4[] = {32, 64, 96, 128, 256};
  size_t n = 0;
  for (DecodeSpec spec : sweep())
    for (KvFormat f : kFormats) {
      spec.head_dim = f == KvFormat::kInt4 ? dims4[n % 5] : dims8[n % 5];
      ++n;
      DecodeProblem p(spec);
      const CodedCache coded(p, f);
      const TensorView q = p.dense.q;
      Tensor q_int = quantized_q(p.q, spec.head_dim);
      TensorView q_int_view = q;  // the same (possibly transposed) view of q_int's elements
      ASSERT_EQ(q.data, p.q.view().data);
      q_int_view.data = q_int.data<float>();
      q_int_view.dtype = DType::kF32;
      for (const bool float_qk : {true, false}) {
        if (!float_qk && f != KvFormat::kInt8) continue;
        p.params.integer_qk = !float_qk;
        p.dense.q = float_qk ? q : q_int_view;
        p.reference = reference::Result();
        const std::string path = float_qk ? " float Q.K " : " integer Q.K ";
        // Where the CPU has AVX512-VNNI, AVX-512 runs twice: with it and (told the CPU lacks it)
        // with AVX-512BW's maddubs.
        CpuInfo no_vnni = CpuInfo::current();
        no_vnni.avx512_vnni = false;
        std::vector<std::pair<CpuIsa, const CpuInfo*>> runs;
        for (CpuIsa isa : runnable_isas()) runs.emplace_back(isa, nullptr);
        if (!float_qk && CpuInfo::current().avx512_vnni && runs.back().first == CpuIsa::kAvx512)
          runs.emplace_back(CpuIsa::kAvx512, &no_vnni);
        for (const auto& [isa, cpu] : runs) {
          for (int64_t i = 0; i < p.out.numel(); ++i) p.out.set(i, NAN);
          for (int64_t i = 0; i < p.lse.numel(); ++i) p.lse.set(i, NAN);
          const auto dec = make(isa, 2, cpu);
          if (cpu) EXPECT_EQ(dec->describe().find("vnni"), std::string::npos);
          ASSERT_TRUE(dec->supports(p.params).ok()) << dec->supports(p.params).to_string();
          dec->run(p.params);
          const testing::DecodeErrors e = testing::decode_errors(p);
          EXPECT_LE(e.out, 1e-5) << to_string(f) << path << to_string(isa)
                                 << (cpu ? " (no vnni) " : " ") << spec.to_string();
          EXPECT_LE(e.lse, 2e-5) << to_string(f) << path << to_string(isa)
                                 << (cpu ? " (no vnni) " : " ") << spec.to_string();
        }
      }
    }
}

TEST(KvFormat, QueryQuantizer) {
  const int64_t d = 72;
  std::vector<float> x = rows_of(1, d, true, 7);
  std::vector<int8_t> codes(static_cast<size_t>(d));
  double amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(double(v)));
  const float scale = kv_quantize_query(x.data(), d, codes.data());
  EXPECT_EQ(scale, static_cast<float>(amax) / 127.0f);
  for (int64_t c = 0; c < d; ++c) {
    const size_t i = static_cast<size_t>(c);
    EXPECT_LE(std::abs(int(codes[i])), 127);
    EXPECT_LE(std::fabs(double(codes[i]) * scale - x[i]), 0.5 * scale * (1 + 1e-6)) << c;
  }
  std::vector<float> zero(static_cast<size_t>(d), 0.0f);
  EXPECT_EQ(kv_quantize_query(zero.data(), d, codes.data()), 0.0f);
  for (int8_t code : codes) EXPECT_EQ(code, 0);
  x[5] = INFINITY;
  EXPECT_TRUE(std::isnan(kv_quantize_query(x.data(), d, codes.data())));
}

// An owned cache of any format: storage, scales and (paged) key bounds.
struct OwnedCache {
  KvCacheConfig config;
  Tensor k, v, ks, vs, bounds;
  KvCache cache;
  explicit OwnedCache(const KvCacheConfig& c) : config(c) {
    k = Tensor(kv_storage_dtype(c), kv_storage_shape(c));
    v = Tensor(kv_storage_dtype(c), kv_storage_shape(c));
    KvStorageViews views;
    views.k = k.view();
    views.v = v.view();
    if (is_compressed(c.format)) {
      ks = Tensor(DType::kF16, kv_scale_shape(c));
      vs = Tensor(DType::kF16, kv_scale_shape(c));
      EXPECT_EQ(kv_scale_bytes(c), ks.bytes());
      views.k_scales = ks.view();
      views.v_scales = vs.view();
    }
    if (c.key_bounds) {
      bounds = Tensor(DType::kF32, kv_key_bounds_shape(c));
      views.key_bounds = bounds.view();
    }
    throw_if_error(KvCache::create(c, views, &cache));
  }
};

KvCacheConfig coded_config(KvFormat f, KvLayout layout, int64_t d = 64) {
  KvCacheConfig c;
  c.layout = layout;
  c.batch = 3;
  c.kv_heads = 2;
  c.head_dim = d;
  c.format = f;
  c.max_len = 120;
  c.block_size = 16;
  c.max_blocks = 8;
  c.num_blocks = 30;
  c.key_bounds = layout == KvLayout::kPaged;
  return c;
}

// Source rows, stored as appended: per sequence, every token's [Hkv][D] values.
struct Appended {
  std::vector<std::vector<float>> k, v;  // [seq][token * Hkv * D + h * D + c]
};

// Appends T tokens to every sequence (f16 source: any float dtype is encoded).
void append_dense(KvCache& cache, int64_t t, uint64_t seed, Appended* log) {
  const KvCacheConfig& c = cache.config();
  Tensor k(DType::kF16, {c.batch, t, c.kv_heads, c.head_dim}),
      v(DType::kF16, {c.batch, t, c.kv_heads, c.head_dim});
  testing::fill_uniform(k, seed, -3.0f, 3.0f);
  testing::fill_uniform(v, seed + 1);
  throw_if_error(cache.append(k.view(), v.view()));
  const int64_t row = c.kv_heads * c.head_dim;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < t * row; ++i) {
      log->k[static_cast<size_t>(b)].push_back(k.get(b * t * row + i));
      log->v[static_cast<size_t>(b)].push_back(v.get(b * t * row + i));
    }
}

// Every stored row equals kv_encode_row of its source (codes and scales), read through the view.
void expect_stored(const OwnedCache& oc, const Appended& log) {
  const KvCacheView kv = oc.cache.view();
  const KvCacheConfig& c = oc.config;
  const int64_t d = c.head_dim, bytes = kv_code_bytes(c.format, d),
                ns = kv_scale_count(c.format, d);
  std::vector<uint8_t> codes(static_cast<size_t>(bytes));
  std::vector<half> scales(static_cast<size_t>(ns));
  const detail::PagedIndexer pager =
      kv.layout == KvLayout::kPaged ? detail::paged_indexer(kv) : detail::PagedIndexer{};
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t j = 0; j < oc.cache.length(b); ++j) {
      const detail::KvSlot slot =
          kv.layout == KvLayout::kPaged ? pager.slot(b, j) : detail::KvSlot{b, j};
      for (int64_t h = 0; h < c.kv_heads; ++h)
        for (int which = 0; which < 2; ++which) {
          const std::vector<float>& src = (which ? log.v : log.k)[static_cast<size_t>(b)];
          kv_encode_row(c.format, src.data() + (j * c.kv_heads + h) * d, d, codes.data(),
                        scales.data());
          const TensorView& t = which ? kv.v : kv.k;
          const TensorView& s = which ? kv.v_scales : kv.k_scales;
          ASSERT_EQ(0, std::memcmp(codes.data(),
                                   t.ptr<const uint8_t>() + t.offset(slot.major, slot.minor, h),
                                   static_cast<size_t>(bytes)))
              << to_string(c.format) << " seq " << b << " token " << j << " head " << h;
          ASSERT_EQ(0, std::memcmp(scales.data(),
                                   s.ptr<const half>() + s.offset(slot.major, slot.minor, h),
                                   static_cast<size_t>(ns) * sizeof(half)))
              << to_string(c.format) << " seq " << b << " token " << j << " head " << h;
        }
    }
}

// The cache's decode against float64 over its dequantized rows.
void expect_decode_matches(const OwnedCache& oc, int64_t rows, uint64_t seed) {
  const KvCacheView kv = oc.cache.view();
  const KvCacheConfig& c = oc.config;
  const int64_t b = c.batch, d = c.head_dim, hq = c.kv_heads * 3;
  int64_t max_len = 1;
  for (int64_t i = 0; i < b; ++i) max_len = std::max(max_len, oc.cache.length(i));
  Tensor q(DType::kF32, {b, rows, hq, d}), out(DType::kF32, {b, rows, hq, d}),
      lse(DType::kF32, {b, hq, rows});
  testing::fill_uniform(q, seed);
  Tensor kd(DType::kF32, {b, max_len, c.kv_heads, d}), vd(DType::kF32, {b, max_len, c.kv_heads, d});
  for (int64_t i = 0; i < kd.numel(); ++i) kd.set(i, 0.0f), vd.set(i, 0.0f);
  const detail::PagedIndexer pager =
      kv.layout == KvLayout::kPaged ? detail::paged_indexer(kv) : detail::PagedIndexer{};
  for (int64_t s = 0; s < b; ++s)
    for (int64_t j = 0; j < oc.cache.length(s); ++j) {
      const detail::KvSlot slot =
          kv.layout == KvLayout::kPaged ? pager.slot(s, j) : detail::KvSlot{s, j};
      for (int64_t h = 0; h < c.kv_heads; ++h)
        for (int64_t col = 0; col < d; ++col) {
          const int64_t at = ((s * max_len + j) * c.kv_heads + h) * d + col;
          kd.set(at,
                 kv_decode(
                     c.format, kv.k.ptr<const uint8_t>() + kv.k.offset(slot.major, slot.minor, h),
                     kv.k_scales.ptr<const half>() + kv.k_scales.offset(slot.major, slot.minor, h),
                     col));
          vd.set(at,
                 kv_decode(
                     c.format, kv.v.ptr<const uint8_t>() + kv.v.offset(slot.major, slot.minor, h),
                     kv.v_scales.ptr<const half>() + kv.v_scales.offset(slot.major, slot.minor, h),
                     col));
        }
    }
  Tensor lens(DType::kI32, {b});
  for (int64_t s = 0; s < b; ++s)
    lens.data<int32_t>()[s] = static_cast<int32_t>(oc.cache.length(s));
  DecodeParams p;
  p.q = q.view();
  p.kv = kv;
  p.out = out.view();
  p.lse = lse.view();
  AttentionParams dense;
  dense.q = q.view();
  dense.k = kd.view();
  dense.v = vd.view();
  dense.out = out.view();
  dense.lse = lse.view();
  dense.mask = MaskKind::kCausal;
  dense.key_lengths = lens.view();
  for (CpuIsa isa : runnable_isas()) {
    make(isa)->run(p);
    const reference::Result ref = reference::attention(dense);
    EXPECT_LE(testing::relative_error(dense, ref), 1e-5)
        << to_string(c.format) << " " << to_string(isa);
  }
}

TEST(KvFormatCache, AppendEncodesForkAndCopyOnWriteCopyScales) {
  for (KvFormat f : kFormats)
    for (KvLayout layout : {KvLayout::kContiguous, KvLayout::kPaged}) {
      OwnedCache oc(coded_config(f, layout));
      Appended log{std::vector<std::vector<float>>(3), std::vector<std::vector<float>>(3)};
      append_dense(oc.cache, 21, 1, &log);  // a partial second block
      ASSERT_TRUE(oc.cache.reset(2).ok());
      log.k[2].clear();
      log.v[2].clear();
      ASSERT_TRUE(oc.cache.fork(0, 2).ok());  // shares the partial block (paged)
      log.k[2] = log.k[0];
      log.v[2] = log.v[0];
      append_dense(oc.cache, 3, 7, &log);  // copy-on-write of the shared partial block
      append_dense(oc.cache, 1, 9, &log);
      // Ragged: 0, 5 and 2 tokens.
      const KvCacheConfig& c = oc.config;
      Tensor k(DType::kF32, {7, c.kv_heads, c.head_dim}),
          v(DType::kF32, {7, c.kv_heads, c.head_dim});
      testing::fill_uniform(k, 21, -2.0f, 2.0f);
      testing::fill_uniform(v, 22);
      Tensor cu(DType::kI32, {4});
      const int32_t cu_values[] = {0, 0, 5, 7};
      std::memcpy(cu.data<int32_t>(), cu_values, sizeof cu_values);
      ASSERT_TRUE(oc.cache.append(k.view(), v.view(), cu.view()).ok());
      const int64_t row = c.kv_heads * c.head_dim;
      for (int64_t s = 1; s < 3; ++s)
        for (int64_t i = cu_values[s] * row; i < cu_values[s + 1] * row; ++i) {
          log.k[static_cast<size_t>(s)].push_back(k.get(i));
          log.v[static_cast<size_t>(s)].push_back(v.get(i));
        }
      SCOPED_TRACE(oc.cache.describe());
      expect_stored(oc, log);
      for (int64_t rows : {1, 3}) expect_decode_matches(oc, rows, 40 + rows);
      if (layout == KvLayout::kPaged) {  // bounds: min / max of the dequantized keys per block
        const KvCacheView kv = oc.cache.view();
        const TensorView& bd = oc.cache.key_bounds();
        for (int64_t s = 0; s < c.batch; ++s)
          for (int64_t j0 = 0; j0 < oc.cache.length(s); j0 += c.block_size) {
            const int64_t blk = detail::paged_indexer(kv).slot(s, j0).major;
            const int64_t filled = std::min(c.block_size, oc.cache.length(s) - j0);
            for (int64_t h = 0; h < c.kv_heads; ++h)
              for (int64_t col = 0; col < c.head_dim; ++col) {
                float lo = INFINITY, hi = -INFINITY;
                for (int64_t i = 0; i < filled; ++i) {
                  const float x =
                      kv_decode(f, kv.k.ptr<const uint8_t>() + kv.k.offset(blk, i, h),
                                kv.k_scales.ptr<const half>() + kv.k_scales.offset(blk, i, h), col);
                  lo = std::min(lo, x);
                  hi = std::max(hi, x);
                }
                ASSERT_EQ(bd.ptr<const float>()[bd.offset(blk, 0, h) + col], lo);
                ASSERT_EQ(bd.ptr<const float>()[bd.offset(blk, 1, h) + col], hi);
              }
          }
      }
    }
}

// Quest over a compressed paged cache: its bounds are folded from the dequantized keys, so it
// selects the pages (and attends within fp32 rounding) as over an f32 cache holding those values.
TEST(KvFormatCache, QuestSelectsAsOverTheDequantizedCache) {
  for (KvFormat f : kFormats) {
    KvCacheConfig c = coded_config(f, KvLayout::kPaged, 64);
    c.num_blocks = 40;
    c.max_blocks = 12;
    OwnedCache coded(c);
    c.format = KvFormat::kFloat;
    c.dtype = DType::kF32;
    OwnedCache plain(c);
    const int64_t len = 150;
    Tensor k(DType::kF32, {c.batch, len, c.kv_heads, c.head_dim}),
        v(DType::kF32, {c.batch, len, c.kv_heads, c.head_dim});
    testing::fill_uniform(k, 51, -2.0f, 2.0f);
    testing::fill_uniform(v, 52);
    ASSERT_TRUE(coded.cache.append(k.view(), v.view()).ok());
    // The same rows dequantized, into the f32 cache (same blocks: the same appends).
    std::vector<uint8_t> codes(static_cast<size_t>(kv_code_bytes(f, c.head_dim)));
    std::vector<half> scales(static_cast<size_t>(kv_scale_count(f, c.head_dim)));
    for (Tensor* t : {&k, &v})
      for (int64_t r = 0; r < t->numel() / c.head_dim; ++r) {
        float* x = t->data<float>() + r * c.head_dim;
        kv_encode_row(f, x, c.head_dim, codes.data(), scales.data());
        kv_decode_row(f, codes.data(), scales.data(), c.head_dim, x);
      }
    ASSERT_TRUE(plain.cache.append(k.view(), v.view()).ok());
    ASSERT_EQ(coded.cache.block_table(), plain.cache.block_table());
    ASSERT_EQ(0, std::memcmp(coded.bounds.data<float>(), plain.bounds.data<float>(),
                             static_cast<size_t>(coded.bounds.bytes())));
    Tensor q(DType::kF32, {c.batch, 2, c.kv_heads * 4, c.head_dim});
    testing::fill_uniform(q, 53);
    Tensor out_coded(DType::kF32, {c.batch, 2, c.kv_heads * 4, c.head_dim}),
        out_plain(DType::kF32, {c.batch, 2, c.kv_heads * 4, c.head_dim});
    std::unique_ptr<QuestDecode> quest;
    throw_if_error(QuestDecode::create(QuestConfig{48, QuestAggregation::kMax}, make(), &quest));
    for (OwnedCache* oc : {&coded, &plain}) {
      QuestParams params;
      params.decode.q = q.view();
      params.decode.out = (oc == &coded ? out_coded : out_plain).view();
      params.decode.kv = oc->cache.view();
      params.key_bounds = oc->cache.key_bounds();
      std::vector<char> ws(quest->workspace_size(params));
      throw_if_error(quest->forward(params, Workspace{ws.data(), ws.size()}));
    }
    EXPECT_LE(testing::relative_diff(out_coded, out_plain), 1e-5) << to_string(f);
  }
}

TEST(KvFormatCache, DescribeNamesTheFormat) {
  OwnedCache oc(coded_config(KvFormat::kInt4, KvLayout::kPaged));
  EXPECT_NE(oc.cache.describe().find("int4 storage"), std::string::npos) << oc.cache.describe();
  KvFormat f;
  ASSERT_TRUE(parse_kv_format("fp8", &f).ok());
  EXPECT_EQ(f, KvFormat::kFp8E4M3);
  EXPECT_EQ(parse_kv_format("int3", &f).code(), StatusCode::kInvalidArgument);
}

// Bad formats and scale storage: typed errors naming the argument; a failed create leaves the
// target cache as it was, a failed append the cache's rows and lengths.
TEST(KvFormatCache, TypedErrorsChangeNothing) {
  const KvCacheConfig good = coded_config(KvFormat::kInt8, KvLayout::kPaged);
  OwnedCache oc(good);
  Appended log{std::vector<std::vector<float>>(3), std::vector<std::vector<float>>(3)};
  append_dense(oc.cache, 5, 3, &log);
  const std::string before = oc.cache.describe();
  const auto try_create = [&](const KvCacheConfig& c, const KvStorageViews& views) {
    const Status st = KvCache::create(c, views, &oc.cache);
    EXPECT_EQ(oc.cache.describe(), before);
    EXPECT_EQ(oc.cache.length(0), 5);
    return st;
  };
  KvStorageViews views;
  views.k = oc.k.view();
  views.v = oc.v.view();
  views.k_scales = oc.ks.view();
  views.v_scales = oc.vs.view();
  views.key_bounds = oc.bounds.view();

  KvCacheConfig c = good;
  c.format = static_cast<KvFormat>(9);
  Status st = try_create(c, views);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("config.format = 9"), std::string::npos) << st.message();
  c = good;
  c.format = KvFormat::kInt4;
  c.head_dim = 48;
  st = try_create(c, views);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("multiple of 32"), std::string::npos) << st.message();

  KvStorageViews bad = views;  // scales missing
  bad.k_scales = TensorView{};
  EXPECT_NE(try_create(good, bad).code(), StatusCode::kOk);
  bad = views;  // scales of int4's shape
  Tensor wide(DType::kF16, {good.num_blocks, good.block_size, good.kv_heads, 2});
  bad.v_scales = wide.view();
  st = try_create(good, bad);
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch);
  EXPECT_NE(st.message().find("v_scales"), std::string::npos) << st.message();
  bad = views;  // f32 scales
  Tensor f32(DType::kF32, {good.num_blocks, good.block_size, good.kv_heads, 1});
  bad.k_scales = f32.view();
  st = try_create(good, bad);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("k_scales = f32"), std::string::npos) << st.message();
  bad = views;  // one tensor for both
  bad.v_scales = bad.k_scales;
  EXPECT_NE(try_create(good, bad).code(), StatusCode::kOk);
  bad = views;  // f16 storage for int8 codes
  Tensor f16(DType::kF16, kv_storage_shape(good));
  bad.k = f16.view();
  st = try_create(good, bad);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("must be u8"), std::string::npos) << st.message();
  KvCacheConfig flt = good;  // scales with the float format
  flt.format = KvFormat::kFloat;
  flt.dtype = DType::kF16;
  bad = views;
  bad.k = f16.view();
  Tensor f16v(DType::kF16, kv_storage_shape(flt));
  bad.v = f16v.view();
  st = try_create(flt, bad);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("k_scales"), std::string::npos) << st.message();

  // Decode: a view whose codes, format and scales disagree.
  Tensor q(DType::kF32, {3, 1, 4, good.head_dim}), out(DType::kF32, {3, 1, 4, good.head_dim});
  DecodeParams p;
  p.q = q.view();
  p.out = out.view();
  p.kv = oc.cache.view();
  const auto dec = make();
  ASSERT_TRUE(dec->supports(p).ok()) << dec->supports(p).to_string();
  DecodeParams wrong = p;
  wrong.kv.k_scales = TensorView{};
  EXPECT_EQ(dec->supports(wrong).code(), StatusCode::kNullPointer);
  wrong = p;
  wrong.kv.format = KvFormat::kFloat;
  st = dec->supports(wrong);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  wrong = p;
  wrong.kv.format = KvFormat::kInt4;  // 64 code bytes read as int4: D 128, 4 scales wanted
  st = dec->supports(wrong);
  EXPECT_EQ(st.code(), StatusCode::kShapeMismatch) << st.to_string();
  // A plan for int8 refuses the same shapes in fp8.
  DecodePlan plan;
  ASSERT_TRUE(dec->plan(p, &plan).ok());
  wrong = p;
  wrong.kv.format = KvFormat::kFp8E4M3;
  st = dec->check_plan(plan, wrong);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("kv.format"), std::string::npos) << st.message();

  // A failed append leaves rows and lengths.
  const std::vector<uint8_t> codes(oc.k.data<uint8_t>(), oc.k.data<uint8_t>() + oc.k.bytes());
  Tensor k(DType::kF32, {3, 2, good.kv_heads, good.head_dim + 1});
  EXPECT_EQ(oc.cache.append(k.view(), k.view()).code(), StatusCode::kShapeMismatch);
  EXPECT_EQ(oc.cache.length(0), 5);
  EXPECT_EQ(0, std::memcmp(codes.data(), oc.k.data<uint8_t>(), codes.size()));
}

}  // namespace
}  // namespace qwen3vl
