// The CPU RoPE applier against the float64 oracle (shapes, layouts, dtypes, styles, table modes),
// bit-identical results on every ISA, the identities (text-only M-RoPE = RoPE, norm preservation,
// GPT-J = NeoX after the permutation, relative positions) and typed errors.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "qwen3vl/hardware/hardware_info.hpp"
#include "support/problem.hpp"
#include "support/rope_problem.hpp"

namespace qwen3vl {
namespace {

using rope::AngleRecipe;
using rope::MRopeLayout;
using rope::RopeArithmetic;
using rope::RopeStyle;
using rope::TableLayout;
using testing::RopeProblem;
using testing::RopeSpec;

std::unique_ptr<rope::RopeApplier> cpu_applier(CpuIsa isa = CpuIsa::kAuto, int threads = 0) {
  CpuOptions options;
  options.isa = isa;
  options.num_threads = threads;
  std::unique_ptr<rope::RopeApplier> applier;
  throw_if_error(rope::create_rope_cpu(options, &applier));
  return applier;
}

// fp32 storage: the rotation itself is exact to ~1e-7; half-precision storage rounds once.
double rope_tolerance(DType t) { return t == DType::kF32 ? 1e-6 : testing::tolerance(t); }

void expect_matches_reference(const RopeSpec& spec) {
  RopeProblem p(spec);
  const auto ref = p.reference();
  ASSERT_TRUE(cpu_applier()->apply(p.params).ok()) << spec.to_string();
  const double err = testing::rope_relative_error(p.params, ref);
  EXPECT_LE(err, rope_tolerance(spec.dtype)) << spec.to_string();
}

TEST(RopeApply, MatchesFloat64AcrossShapesAndLayouts) {
  uint64_t seed = 1;
  for (int64_t d : {64, 72, 80, 128})
    for (int64_t seq : {1, 3, 17, 65})
      for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
        for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kGptj}) {
          RopeSpec s;
          s.head_dim = d;
          s.seq = seq;
          s.dtype = dt;
          s.style = style;
          s.seed = seed++;
          s.bhsd = seed % 3 == 0;
          s.packed = seed % 3 == 1;
          s.q_heads = seed % 2 ? 4 : 3;  // MHA, GQA and MQA head counts
          s.k_heads = seed % 4 == 0 ? 1 : (seed % 2 ? 2 : 3);
          expect_matches_reference(s);
        }
}

TEST(RopeApply, MRopeLayoutsTablesAndArithmetic) {
  uint64_t seed = 100;
  for (MRopeLayout layout : {MRopeLayout::kNone, MRopeLayout::kChunked, MRopeLayout::kInterleaved})
    for (TableLayout table : {TableLayout::kFull, TableLayout::kSplit})
      for (RopeArithmetic arith : {RopeArithmetic::kFused, RopeArithmetic::kTransformersFp32,
                                   RopeArithmetic::kTransformersStorage})
        for (DType dt : {DType::kF32, DType::kBF16}) {
          RopeSpec s;
          s.mrope = layout;
          s.table_layout = table;
          s.arithmetic = arith;
          s.dtype = dt;
          s.seq = 33;
          s.max_position = table == TableLayout::kSplit ? 262144 : 8192;
          s.theta = 5e6;
          s.seed = seed++;
          expect_matches_reference(s);
        }
}

TEST(RopeApply, PartialRotaryLeavesTheRestUntouched) {
  for (int64_t rot : {16, 32, 64}) {
    RopeSpec s;
    s.head_dim = 128;
    s.rotary_dim = rot;
    s.seed = static_cast<uint64_t>(rot);
    RopeProblem p(s);
    const auto before_q = testing::rope_bits(p.q);
    const auto ref = p.reference();
    ASSERT_TRUE(cpu_applier()->apply(p.params).ok());
    EXPECT_LE(testing::rope_relative_error(p.params, ref), 1e-6);
    const auto after_q = testing::rope_bits(p.q);
    for (size_t i = 0; i < after_q.size(); ++i)
      if (static_cast<int64_t>(i) % s.head_dim >= rot) ASSERT_EQ(after_q[i], before_q[i]) << i;
  }
}

TEST(RopeApply, YarnAttentionFactorScalesBothCosAndSin) {
  RopeSpec s;
  s.scaling.type = rope::RopeScalingType::kYarn;
  s.scaling.factor = 2.0;
  s.scaling.original_max_position = 2048;
  s.theta = 5e6;
  RopeProblem p(s);
  EXPECT_NEAR(p.table.spec().attention_factor, 0.1 * std::log(2.0) + 1.0, 1e-15);
  const auto ref = p.reference();
  ASSERT_TRUE(cpu_applier()->apply(p.params).ok());
  EXPECT_LE(testing::rope_relative_error(p.params, ref), 1e-6);
}

TEST(RopeApply, EveryIsaGivesTheSameBits) {
  const CpuInfo& cpu = CpuInfo::current();
  uint64_t seed = 300;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kGptj})
      for (RopeArithmetic arith : {RopeArithmetic::kFused, RopeArithmetic::kTransformersFp32,
                                   RopeArithmetic::kTransformersStorage})
        for (int64_t d : {72, 128}) {
          RopeSpec s;
          s.dtype = dt;
          s.style = style;
          s.arithmetic = arith;
          s.head_dim = d;
          s.mrope = MRopeLayout::kInterleaved;
          s.table_layout = seed % 2 ? TableLayout::kSplit : TableLayout::kFull;
          s.seed = seed++;
          RopeProblem base(s);
          ASSERT_TRUE(cpu_applier(CpuIsa::kScalar)->apply(base.params).ok());
          for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
            if (!cpu_isa_compiled(isa) || !cpu_supports(cpu, isa)) continue;
            RopeProblem other(s);
            ASSERT_TRUE(cpu_applier(isa, 2)->apply(other.params).ok());
            EXPECT_EQ(testing::rope_bits(other.q), testing::rope_bits(base.q))
                << to_string(isa) << " " << s.to_string();
            EXPECT_EQ(testing::rope_bits(other.k), testing::rope_bits(base.k))
                << to_string(isa) << " " << s.to_string();
          }
        }
}

TEST(RopeApply, ThreadedEqualsSerialOnALargeProblem) {
  RopeSpec s;
  s.batch = 1;
  s.seq = 1000;
  s.q_heads = 8;
  s.k_heads = 2;
  s.mrope = MRopeLayout::kInterleaved;
  RopeProblem a(s), b(s);
  ASSERT_TRUE(cpu_applier(CpuIsa::kAuto, 1)->apply(a.params).ok());
  ASSERT_TRUE(cpu_applier(CpuIsa::kAuto, 2)->apply(b.params).ok());
  EXPECT_EQ(testing::rope_bits(a.q), testing::rope_bits(b.q));
  EXPECT_EQ(testing::rope_bits(a.k), testing::rope_bits(b.k));
}

TEST(RopeIdentity, TextOnlyMRopeEqualsPlainRope) {
  for (MRopeLayout layout : {MRopeLayout::kChunked, MRopeLayout::kInterleaved})
    for (bool axis_dim : {true, false}) {
      RopeSpec m;
      m.mrope = layout;
      m.positions_axis = axis_dim;
      m.seed = 7;
      RopeProblem mp(m);
      // Make every token text: t = h = w.
      if (axis_dim) {
        int32_t* pos = mp.positions.data<int32_t>();
        const int64_t n = m.batch * m.seq;
        for (int64_t t = 0; t < n; ++t) pos[n + t] = pos[2 * n + t] = pos[t];
      }
      RopeSpec plain = m;
      plain.mrope = MRopeLayout::kNone;
      plain.positions_axis = false;
      RopeProblem pp(plain);
      for (int64_t t = 0; t < m.batch * m.seq; ++t)
        pp.positions.data<int32_t>()[t] = mp.positions.data<int32_t>()[t];
      ASSERT_TRUE(cpu_applier()->apply(mp.params).ok());
      ASSERT_TRUE(cpu_applier()->apply(pp.params).ok());
      EXPECT_EQ(testing::rope_bits(mp.q), testing::rope_bits(pp.q)) << rope::to_string(layout);
      EXPECT_EQ(testing::rope_bits(mp.k), testing::rope_bits(pp.k)) << rope::to_string(layout);
    }
}

TEST(RopeIdentity, RotationPreservesTheNorm) {
  RopeSpec s;
  s.max_position = 262144;
  s.theta = 5e6;
  s.table_layout = TableLayout::kSplit;
  RopeProblem p(s);
  std::vector<float> before(p.q.numel());
  for (int64_t i = 0; i < p.q.numel(); ++i) before[static_cast<size_t>(i)] = p.q.get(i);
  ASSERT_TRUE(cpu_applier()->apply(p.params).ok());
  for (int64_t row = 0; row < p.q.numel() / s.head_dim; ++row) {
    double n0 = 0, n1 = 0;
    for (int64_t e = 0; e < s.head_dim; ++e) {
      n0 += std::pow(before[static_cast<size_t>(row * s.head_dim + e)], 2);
      n1 += std::pow(p.q.get(row * s.head_dim + e), 2);
    }
    ASSERT_NEAR(std::sqrt(n1) / std::sqrt(n0), 1.0, 1e-6) << row;
  }
}

TEST(RopeIdentity, GptjEqualsNeoxAfterThePermutation) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    RopeSpec s;
    s.dtype = dt;
    s.head_dim = 80;
    s.rotary_dim = 64;
    s.mrope = MRopeLayout::kInterleaved;
    RopeProblem neox(s);
    s.style = RopeStyle::kGptj;
    RopeProblem gptj(s);
    const int64_t half = 32, rows = neox.q.numel() / s.head_dim;
    // GPT-J input: pair j = (x[j], x[j + half]) of the NeoX row; the pass-through tail is the same.
    const auto permute = [&](const Tensor& from, Tensor& to) {
      for (int64_t r = 0; r < from.numel() / s.head_dim; ++r)
        for (int64_t e = 0; e < s.head_dim; ++e) {
          const int64_t src = e >= 2 * half ? e : (e % 2 == 0 ? e / 2 : e / 2 + half);
          to.set(r * s.head_dim + e, from.get(r * s.head_dim + src));
        }
    };
    permute(neox.q, gptj.q);
    permute(neox.k, gptj.k);
    ASSERT_TRUE(cpu_applier()->apply(neox.params).ok());
    ASSERT_TRUE(cpu_applier()->apply(gptj.params).ok());
    Tensor expect(dt, {rows * s.head_dim});
    permute(neox.q, expect);
    for (int64_t i = 0; i < expect.numel(); ++i) ASSERT_EQ(gptj.q.get(i), expect.get(i)) << i;
  }
}

TEST(RopeIdentity, ScoresDependOnlyOnRelativePosition) {
  RopeSpec s;
  s.batch = 1;
  s.seq = 2;
  s.q_heads = s.k_heads = 1;
  s.max_position = 262144;
  s.theta = 5e6;
  s.table_layout = TableLayout::kSplit;
  double first = 0.0;
  for (int32_t shift : {0, 1000, 100000, 250000}) {
    RopeProblem p(s);
    p.positions.data<int32_t>()[0] = 37 + shift;  // q at 37, k at 5 (relative 32)
    p.positions.data<int32_t>()[1] = 5 + shift;
    ASSERT_TRUE(cpu_applier()->apply(p.params).ok());
    double dot = 0.0;
    for (int64_t e = 0; e < s.head_dim; ++e) dot += double{p.q.get(e)} * p.k.get(s.head_dim + e);
    if (shift == 0) first = dot;
    EXPECT_NEAR(dot, first, 1e-4 * std::fabs(first) + 1e-4) << shift;
  }
}

// --- errors
// ---------------------------------------------------------------------------------------
TEST(RopeErrors, BadPositionsNameTheArgument) {
  RopeSpec s;
  s.mrope = MRopeLayout::kInterleaved;
  for (int32_t bad : {-1, 4096, 1 << 30}) {
    RopeProblem p(s);
    p.positions.data<int32_t>()[2 * s.batch * s.seq + 5] = bad;  // axis 2 (w), token 5
    const auto before = testing::rope_bits(p.q);
    const Status st = cpu_applier()->apply(p.params);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("positions[axis 2, 0, 5] = " + std::to_string(bad)),
              std::string::npos)
        << st.message();
    EXPECT_NE(st.message().find("allowed 0..4095"), std::string::npos) << st.message();
    EXPECT_EQ(testing::rope_bits(p.q), before) << "nothing may run before validation";
  }
}

TEST(RopeErrors, ShapesStridesAndDtypes) {
  RopeSpec s;
  {
    RopeProblem p(s);
    p.params.positions.dtype = DType::kF32;
    EXPECT_EQ(cpu_applier()->apply(p.params).code(), StatusCode::kInvalidArgument);
  }
  {
    RopeProblem p(s);
    p.params.q.stride[3] = 2;
    const Status st = cpu_applier()->apply(p.params);
    EXPECT_EQ(st.code(), StatusCode::kBadStride);
    EXPECT_NE(st.message().find("q.stride[3] = 2"), std::string::npos) << st.message();
  }
  {
    RopeProblem p(s);
    p.params.k.dtype = DType::kBF16;
    EXPECT_EQ(cpu_applier()->apply(p.params).code(), StatusCode::kInvalidArgument);
  }
  {
    RopeProblem p(s);
    p.params.k.shape[1] = s.seq + 1;
    EXPECT_EQ(cpu_applier()->apply(p.params).code(), StatusCode::kShapeMismatch);
  }
  {
    RopeSpec wide = s;
    wide.head_dim = 64;
    RopeProblem p(wide);
    RopeSpec big = s;
    RopeProblem other(big);  // a 128-wide table on 64-wide heads
    p.params.table = other.table.view();
    const Status st = cpu_applier()->apply(p.params);
    EXPECT_EQ(st.code(), StatusCode::kShapeMismatch);
    EXPECT_NE(st.message().find("rotary_dim = 128"), std::string::npos) << st.message();
  }
  {
    RopeSpec m = s;
    m.mrope = MRopeLayout::kInterleaved;
    RopeProblem p(m);
    p.params.positions.shape[0] = 2;
    EXPECT_EQ(cpu_applier()->apply(p.params).code(), StatusCode::kShapeMismatch);
  }
  {
    RopeProblem p(s);
    p.params.table = rope::RopeTableView{};
    EXPECT_EQ(cpu_applier()->apply(p.params).code(), StatusCode::kNullPointer);
  }
}

TEST(RopeErrors, BadSectionsAndConfigs) {
  std::vector<uint8_t> axis;
  Status st = rope::mrope_axis_map(MRopeLayout::kInterleaved, {24, 20, 21}, 64, &axis);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("mrope_section = [24, 20, 21]"), std::string::npos) << st.message();
  st = rope::mrope_axis_map(MRopeLayout::kInterleaved, {10, 30, 24}, 64, &axis);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.message();
  st = rope::mrope_axis_map(MRopeLayout::kChunked, {-1, 33, 32}, 64, &axis);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  rope::RopeConfig c;
  c.rotary_dim = 7;
  rope::RopeFrequencies f;
  st = rope::compute_frequencies(c, 0, &f);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("rotary_dim = 7"), std::string::npos);
  c = rope::RopeConfig{};
  c.scaling.type = rope::RopeScalingType::kYarn;
  c.scaling.factor = 2.0;
  EXPECT_EQ(rope::compute_frequencies(c, 0, &f).code(), StatusCode::kInvalidArgument);  // no L0
  rope::RopeTable t;
  rope::RopeTableSpec spec;
  spec.inv_freq.assign(64, 0.5f);
  spec.max_position = 100;
  spec.layout = TableLayout::kSplit;
  spec.recipe = AngleRecipe::kTransformersFp32;
  EXPECT_EQ(rope::RopeTable::create(spec, &t).code(), StatusCode::kUnsupported);
  spec.layout = TableLayout::kFull;
  spec.axis.assign(64, 3);
  EXPECT_EQ(rope::RopeTable::create(spec, &t).code(), StatusCode::kInvalidArgument);
}

TEST(RopeErrors, RunThrowsTypedError) {
  RopeSpec s;
  RopeProblem p(s);
  p.positions.data<int32_t>()[0] = -5;
  try {
    cpu_applier()->run(p.params);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace qwen3vl
