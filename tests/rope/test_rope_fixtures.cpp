// RoPE against transformers' own functions, through the committed fixtures (tests/fixtures/rope,
// written by scripts/fixtures/gen_rope_fixtures.py): rope initialisation (inv_freq, attention
// factor), Qwen3-VL interleaved and Qwen2-VL chunked M-RoPE cos/sin and apply_rotary_pos_emb in
// f32 and bf16, the vision 2-D RoPE, and get_rope_index for Qwen3-VL, Qwen2-VL and Qwen2.5-VL.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/rope/rope.hpp"
#include "support/fixtures.hpp"
#include "support/table_checks.hpp"

namespace qwen3vl {
namespace {

using namespace rope;
using testing::FixtureArray;
using testing::Json;
using testing::RopeFixtures;

const RopeFixtures& fx() { return RopeFixtures::get(); }

int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if ((ia < 0) != (ib < 0)) return a == b ? 0 : INT32_MAX;
  return std::abs(int64_t{ia} - ib);
}

double number(const Json& obj, const char* key, double fallback) {
  return obj.has(key) && !obj[key].is_null() ? obj[key].number : fallback;
}

RopeConfig config_from(const Json& meta) {
  const Json& r = meta["rope"];
  RopeConfig c;
  c.head_dim = static_cast<int64_t>(meta["head_dim"].number);
  c.rotary_dim = static_cast<int64_t>(c.head_dim * number(r, "partial_rotary_factor", 1.0));
  c.theta = r["rope_theta"].number;
  const std::string type = r["rope_type"].text;
  RopeScaling& s = c.scaling;
  s.type = type == "linear"    ? RopeScalingType::kLinear
           : type == "dynamic" ? RopeScalingType::kDynamic
           : type == "yarn"    ? RopeScalingType::kYarn
           : type == "llama3"  ? RopeScalingType::kLlama3
                               : RopeScalingType::kDefault;
  s.factor = number(r, "factor", 1.0);
  s.original_max_position = static_cast<int64_t>(
      number(r, "original_max_position_embeddings", number(meta, "max_position_embeddings", 0)));
  s.beta_fast = number(r, "beta_fast", 32.0);
  s.beta_slow = number(r, "beta_slow", 1.0);
  s.mscale = number(r, "mscale", 0.0);
  s.mscale_all_dim = number(r, "mscale_all_dim", 0.0);
  s.attention_factor = number(r, "attention_factor", 0.0);
  s.truncate = !r.has("truncate") || r["truncate"].boolean;
  s.low_freq_factor = number(r, "low_freq_factor", 1.0);
  s.high_freq_factor = number(r, "high_freq_factor", 4.0);
  return c;
}

TEST(RopeFixtures, Provenance) {
  const Json& g = fx().manifest()["generator"];
  std::printf("[ fixtures ] transformers %s, torch %s, device %s (%s)\n",
              g["transformers"].text.c_str(), g["torch"].text.c_str(), g["device"].text.c_str(),
              g["device_name"].text.c_str());
  EXPECT_EQ(g["script"].text, "scripts/fixtures/gen_rope_fixtures.py");
}

TEST(RopeFixtures, InitFunctionsInvFreqAndAttentionFactor) {
  for (const auto& [name, meta] : fx().manifest()["cases"].fields) {
    if (name.rfind("scaling/", 0) != 0) continue;
    const RopeConfig c = config_from(meta);
    RopeFrequencies f;
    const int64_t seq_len =
        meta["seq_len"].is_null() ? 0 : static_cast<int64_t>(meta["seq_len"].number);
    ASSERT_TRUE(compute_frequencies(c, seq_len, &f).ok()) << name;
    const FixtureArray want = fx().array(name + "/inv_freq");
    ASSERT_EQ(static_cast<int64_t>(f.inv_freq.size()), want.numel()) << name;
    int64_t worst = 0, off = 0;
    for (size_t i = 0; i < f.inv_freq.size(); ++i) {
      worst = std::max(worst, ulps(f.inv_freq[i], want.f[i]));
      off += f.inv_freq[i] != want.f[i];
    }
    std::printf(
        "[ fixtures ] %-22s inv_freq: %lld of %zu differ, max %lld ulp; attention factor %.17g\n",
        name.c_str(), static_cast<long long>(off), f.inv_freq.size(), static_cast<long long>(worst),
        f.attention_factor);
    EXPECT_LE(worst, 1) << name << ": torch's powf is within 1 ulp of the correctly rounded power";
    EXPECT_NEAR(f.attention_factor, meta["attention_factor"].number, 1e-15) << name;
  }
}

// A transformers-recipe table over the fixture's own inv_freq (so that torch's powf ulps stay out).
RopeTable hf_table(const std::vector<float>& inv, std::vector<uint8_t> axis, int32_t axes,
                   double factor, int64_t max_position) {
  RopeTableSpec spec;
  spec.inv_freq = inv;
  spec.axis = std::move(axis);
  spec.axes = axes;
  spec.attention_factor = factor;
  spec.max_position = max_position;
  spec.recipe = AngleRecipe::kTransformersFp32;
  RopeTable t;
  throw_if_error(RopeTable::create(spec, &t));
  return t;
}

std::unique_ptr<RopeApplier> cpu() {
  std::unique_ptr<RopeApplier> a;
  throw_if_error(create_rope_cpu(CpuOptions{}, &a));
  return a;
}

// Rotates a copy of fixture `in` ([.., L, H, D] after `view`) and compares it with `out`:
// f32 by the largest absolute difference, bf16 by bit patterns (at most 1 ulp apart).
struct Comparison {
  double max_abs = 0;
  int64_t mismatched = 0, total = 0, worst_ulp = 0;
};

Comparison compare(const std::vector<float>& got, const FixtureArray& want) {
  Comparison c;
  c.total = want.numel();
  for (size_t i = 0; i < got.size(); ++i) {
    c.max_abs = std::max(c.max_abs, std::fabs(double{got[i]} - want.f[i]));
    if (got[i] != want.f[i]) ++c.mismatched;
    if (want.dtype == "bf16") {
      const int64_t gi = static_cast<int64_t>(to_bf16(got[i]).bits), wi = want.bits[i];
      c.worst_ulp = std::max(c.worst_ulp, std::abs(gi - wi));
    }
  }
  return c;
}

// q/k fixtures are [B, H, L, D] (transformers' attention layout): passed as BSHD through strides.
std::vector<float> rotate_bhsd(const FixtureArray& x, const Tensor& positions,
                               const RopeTable& table, RopeArithmetic arith) {
  const DType dt = x.dtype == "bf16" ? DType::kBF16 : DType::kF32;
  const int64_t B = x.shape[0], H = x.shape[1], L = x.shape[2], D = x.shape[3];
  Tensor q(dt, {B, H, L, D});
  for (int64_t i = 0; i < q.numel(); ++i) q.set(i, x.f[static_cast<size_t>(i)]);
  RopeApplyParams p;
  p.q = q.view().transposed(1, 2);
  p.positions = positions.view();
  p.table = table.view();
  p.arithmetic = arith;
  throw_if_error(cpu()->apply(p));
  std::vector<float> out(static_cast<size_t>(q.numel()));
  for (int64_t i = 0; i < q.numel(); ++i) out[static_cast<size_t>(i)] = q.get(i);
  return out;
}

Tensor int_tensor(const FixtureArray& a) {
  Tensor t(DType::kI32, std::vector<int64_t>(a.shape.begin(), a.shape.end()));
  std::memcpy(t.data<int32_t>(), a.i.data(), a.i.size() * 4);
  return t;
}

void check_text_case(const std::string& name, MRopeLayout layout, MRopeSection section) {
  const Json& meta = fx().meta(name);
  const FixtureArray inv = fx().array(name + "/inv_freq");
  const FixtureArray pos = fx().array(name + "/positions");  // [3, B, L]
  int32_t max_pos = 0;
  for (int32_t v : pos.i) max_pos = std::max(max_pos, v);
  std::vector<uint8_t> axis;
  ASSERT_TRUE(mrope_axis_map(layout, section, inv.numel(), &axis).ok());
  const RopeTable table = hf_table(inv.f, axis, 3, meta["attention_factor"].number, max_pos + 1);
  const Tensor positions = int_tensor(pos);
  const int64_t B = pos.shape[1], L = pos.shape[2], half = inv.numel();
  for (const char* tag : {"f32", "bf16"}) {
    const std::string base = name + "/" + tag;
    const FixtureArray cos = fx().array(base + "/cos"),
                       sin = fx().array(base + "/sin");  // [B, L, D]
    const bool bf16 = std::string(tag) == "bf16";
    const testing::FixtureDiff d = testing::cos_sin_vs_fixture(table, pos, cos, sin, bf16);
    const double worst = d.max_abs;
    const int64_t off = d.differ;
    std::printf("[ fixtures ] %-22s %-4s cos/sin: max |diff| %.3g, %lld of %lld differ\n",
                name.c_str(), tag, worst, static_cast<long long>(off),
                static_cast<long long>(d.total));
    EXPECT_EQ(d.total, 4 * B * L * half) << base;
    // torch's cosf/sinf (CPU or CUDA) are within 2 ulp; bf16 rounding almost always hides that.
    EXPECT_LE(worst, bf16 ? 8e-3 : 2.5e-7) << base;
    if (bf16) EXPECT_LE(off, 4 * B * L * half / 500) << base;
    for (const char* which : {"q", "k"}) {
      const FixtureArray in = fx().array(base + "/" + which),
                         want = fx().array(base + "/" + which + "_out");
      const Comparison c =
          compare(rotate_bhsd(in, positions, table, RopeArithmetic::kTransformersStorage), want);
      std::printf("[ fixtures ] %-22s %-4s %s: max |diff| %.3g, %lld of %lld differ\n",
                  name.c_str(), tag, which, c.max_abs, static_cast<long long>(c.mismatched),
                  static_cast<long long>(c.total));
      if (bf16) {
        EXPECT_LE(c.worst_ulp, 1) << base << which;
        EXPECT_LE(c.mismatched, c.total / 500) << base << which;
      } else {
        EXPECT_LE(c.max_abs, 1e-6) << base << which;
      }
    }
  }
  // Our exact angles against transformers' fp32 ones: the difference the recipe makes (reported).
  RopeTableSpec exact = table.spec();
  exact.recipe = AngleRecipe::kExact;
  exact.layout = TableLayout::kSplit;
  RopeTable t;
  ASSERT_TRUE(RopeTable::create(exact, &t).ok());
  const Comparison d =
      compare(rotate_bhsd(fx().array(name + "/f32/q"), positions, t, RopeArithmetic::kFused),
              fx().array(name + "/f32/q_out"));
  std::printf(
      "[ fixtures ] %-22s exact split table vs transformers fp32: max |diff| %.3g (positions up to "
      "%d)\n",
      name.c_str(), d.max_abs, max_pos);
}

TEST(RopeFixtures, Qwen3InterleavedMRope) {
  check_text_case("mrope_qwen3", MRopeLayout::kInterleaved, {24, 20, 20});
}
TEST(RopeFixtures, Qwen3InterleavedMRopeYarn) {
  check_text_case("mrope_qwen3_yarn", MRopeLayout::kInterleaved, {24, 20, 20});
}
TEST(RopeFixtures, Qwen2ChunkedMRope) {
  check_text_case("mrope_qwen2", MRopeLayout::kChunked, {16, 24, 24});
}

TEST(RopeFixtures, VisionRope) {
  const Json& meta = fx().meta("vision");
  const int64_t d = static_cast<int64_t>(meta["head_dim"].number);
  const FixtureArray inv = fx().array("vision/inv_freq"),
                     pos = fx().array("vision/positions");  // [N, 2]
  const FixtureArray grid = fx().array("vision/grid_thw");
  std::vector<GridThw> grids;
  for (int64_t g = 0; g < grid.shape[0]; ++g)
    grids.push_back({grid.i[static_cast<size_t>(3 * g)], grid.i[static_cast<size_t>(3 * g + 1)],
                     grid.i[static_cast<size_t>(3 * g + 2)]});
  std::vector<int32_t> ours;
  ASSERT_TRUE(
      vision_positions(grids, static_cast<int64_t>(meta["spatial_merge_size"].number), &ours).ok());
  const int64_t n = pos.shape[0];
  ASSERT_EQ(static_cast<int64_t>(ours.size()), 2 * n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(ours[static_cast<size_t>(i)], pos.i[static_cast<size_t>(2 * i)]) << i;
    ASSERT_EQ(ours[static_cast<size_t>(n + i)], pos.i[static_cast<size_t>(2 * i + 1)]) << i;
  }
  RopeTable mine;
  ASSERT_TRUE(make_vision_table(d, meta["theta"].number, 64, AngleRecipe::kTransformersFp32,
                                TableLayout::kFull, &mine)
                  .ok());
  for (int64_t k = 0; k < inv.numel(); ++k)
    EXPECT_LE(ulps(mine.spec().inv_freq[k], inv.f[k]), 1) << k;
  RopeTableSpec spec = mine.spec();
  for (int64_t k = 0; k < inv.numel(); ++k)
    spec.inv_freq[k] = spec.inv_freq[k + inv.numel()] = inv.f[k];
  RopeTable table;
  ASSERT_TRUE(RopeTable::create(spec, &table).ok());
  // transformers' (N, 2) positions, seen as [2, N] through strides.
  Tensor p = int_tensor(pos);
  const TensorView positions = TensorView::strided(p.data<int32_t>(), DType::kI32, {2, n}, {1, 2});
  for (const char* tag : {"f32", "bf16"}) {
    for (const char* which : {"q", "k"}) {
      const FixtureArray in = fx().array(std::string("vision/") + tag + "/" + which);  // [N, H, D]
      const FixtureArray want = fx().array(std::string("vision/") + tag + "/" + which + "_out");
      const DType dt = in.dtype == "bf16" ? DType::kBF16 : DType::kF32;
      Tensor x(dt, {in.shape[0], in.shape[1], in.shape[2]});
      for (int64_t i = 0; i < x.numel(); ++i) x.set(i, in.f[static_cast<size_t>(i)]);
      RopeApplyParams a;
      a.q = x.view();
      a.positions = positions;
      a.table = table.view();
      a.arithmetic = RopeArithmetic::kTransformersFp32;
      ASSERT_TRUE(cpu()->apply(a).ok());
      std::vector<float> got(static_cast<size_t>(x.numel()));
      for (int64_t i = 0; i < x.numel(); ++i) got[static_cast<size_t>(i)] = x.get(i);
      const Comparison c = compare(got, want);
      std::printf("[ fixtures ] vision %-4s %s: max |diff| %.3g, %lld of %lld differ\n", tag, which,
                  c.max_abs, static_cast<long long>(c.mismatched), static_cast<long long>(c.total));
      if (dt == DType::kBF16) {
        EXPECT_LE(c.worst_ulp, 1);
        EXPECT_LE(c.mismatched, c.total / 500);
      } else {
        EXPECT_LE(c.max_abs, 1e-6);
      }
    }
  }
}

std::vector<GridThw> grids_of(const FixtureArray& a) {
  std::vector<GridThw> g;
  for (int64_t r = 0; r < a.shape[0]; ++r)
    g.push_back({a.i[static_cast<size_t>(3 * r)], a.i[static_cast<size_t>(3 * r + 1)],
                 a.i[static_cast<size_t>(3 * r + 2)]});
  return g;
}

TEST(RopeFixtures, GetRopeIndex) {
  int cases = 0;
  for (const auto& [name, meta] : fx().manifest()["cases"].fields) {
    if (name.rfind("index_", 0) != 0) continue;
    ++cases;
    const FixtureArray types = fx().array(name + "/token_types"),
                       mask = fx().array(name + "/attention_mask");
    RopeIndexInput in;
    const std::string model = meta["model"].text;
    in.model = model == "qwen3_vl"     ? RopeIndexModel::kQwen3VL
               : model == "qwen2_5_vl" ? RopeIndexModel::kQwen25VL
                                       : RopeIndexModel::kQwen2VL;
    in.batch = types.shape[0];
    in.seq_len = types.shape[1];
    in.token_types = types.i.data();
    in.attention_mask = mask.i.data();
    in.image_grid_thw = grids_of(fx().array(name + "/image_grid_thw"));
    in.video_grid_thw = grids_of(fx().array(name + "/video_grid_thw"));
    in.spatial_merge_size = static_cast<int64_t>(meta["spatial_merge_size"].number);
    if (!meta["second_per_grid_ts"].is_null())
      for (const Json& v : meta["second_per_grid_ts"].items)
        in.second_per_grid_ts.push_back(v.number);
    if (!meta["tokens_per_second"].is_null())
      in.tokens_per_second = static_cast<int64_t>(meta["tokens_per_second"].number);
    RopeIndexOutput out;
    ASSERT_TRUE(get_rope_index(in, &out).ok()) << name;
    EXPECT_EQ(out.positions, fx().array(name + "/positions").i) << name;
    EXPECT_EQ(out.delta, fx().array(name + "/delta").i) << name;
  }
  EXPECT_EQ(cases, 4);
}

}  // namespace
}  // namespace qwen3vl
