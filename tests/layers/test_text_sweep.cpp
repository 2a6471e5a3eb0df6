// Qwen3VLTextAttention over a sweep of shapes (MHA / GQA / MQA, head dims 64 / 72 / 80 / 128,
// odd lengths, hidden != Hq * D) against a float64 composition of the library's oracles: the
// projections and RMSNorm in float64 here, rope::reference::apply and reference::attention.
#include <gtest/gtest.h>

#include <cmath>

#include "layer_support.hpp"
#include "qwen3vl/reference/attention.hpp"
#include "qwen3vl/rope/reference.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

struct SweepShape {
  int64_t heads, kv_heads, head_dim;
  rope::MRopeSection section;
};

// y[r, :] = x[r, :] W^T in float64, stored to f32 rows of `out` with row stride `ld` at `col`.
void project(const Tensor& x, const Tensor& w, Tensor* out, int64_t ld, int64_t col) {
  const int64_t in = w.size(1), n = w.size(0), rows = x.numel() / in;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < n; ++o) {
      double acc = 0.0;
      for (int64_t i = 0; i < in; ++i)
        acc += static_cast<double>(x.get(r * in + i)) * w.get(o * in + i);
      out->set(r * ld + col + o, static_cast<float>(acc));
    }
}

// RMSNorm of every head row of t [B, L, H, D] in float64, times the weight.
void norm_heads(Tensor* t, const Tensor& weight, double eps) {
  const int64_t d = t->size(3), rows = t->numel() / d;
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (int64_t e = 0; e < d; ++e)
      sum += static_cast<double>(t->get(r * d + e)) * t->get(r * d + e);
    const double scale = 1.0 / std::sqrt(sum / static_cast<double>(d) + eps);
    for (int64_t e = 0; e < d; ++e)
      t->set(r * d + e, static_cast<float>(t->get(r * d + e) * scale * weight.get(e)));
  }
}

Tensor reference_layer(const layers::TextAttentionConfig& c, const testing::TextWeights& w,
                       const Tensor& x, const Tensor& positions) {
  const int64_t B = x.size(0), L = x.size(1), D = c.head_dim;
  Tensor q(DType::kF32, {B, L, c.num_heads, D}), k(DType::kF32, {B, L, c.num_kv_heads, D});
  Tensor v(DType::kF32, {B, L, c.num_kv_heads, D});
  project(x, w.q, &q, c.num_heads * D, 0);
  project(x, w.k, &k, c.num_kv_heads * D, 0);
  project(x, w.v, &v, c.num_kv_heads * D, 0);
  norm_heads(&q, w.q_norm, c.rms_norm_eps);
  norm_heads(&k, w.k_norm, c.rms_norm_eps);

  rope::RopeConfig rc;
  rc.head_dim = D;
  rc.theta = c.rope_theta;
  rope::RopeTable table;
  throw_if_error(rope::make_text_table(rc, c.mrope_layout, c.mrope_section, c.max_position,
                                       rope::AngleRecipe::kExact, rope::TableLayout::kSplit,
                                       &table));
  rope::RopeApplyParams rp;
  rp.q = q;
  rp.k = k;
  rp.positions = positions;
  rp.table = table.view();
  const rope::reference::Result rotated =
      rope::reference::apply(rp, table.spec().inv_freq, table.spec().axis, 1.0);
  for (int64_t i = 0; i < q.numel(); ++i)
    q.set(i, static_cast<float>(rotated.q[static_cast<size_t>(i)]));
  for (int64_t i = 0; i < k.numel(); ++i)
    k.set(i, static_cast<float>(rotated.k[static_cast<size_t>(i)]));

  Tensor attn(DType::kF32, {B, L, c.num_heads, D});
  AttentionParams ap;
  ap.q = q;
  ap.k = k;
  ap.v = v;
  ap.out = attn;
  ap.mask = MaskKind::kCausal;
  const reference::Result r = reference::attention(ap);
  for (int64_t i = 0; i < attn.numel(); ++i)
    attn.set(i, static_cast<float>(r.out[static_cast<size_t>(i)]));
  Tensor out(DType::kF32, {B, L, c.hidden_size});
  project(attn, w.o, &out, c.hidden_size, 0);
  return out;
}

class TextSweep : public ::testing::TestWithParam<SweepShape> {};

TEST_P(TextSweep, MatchesFloat64Composition) {
  const SweepShape s = GetParam();
  layers::TextAttentionConfig c;
  c.hidden_size = 48;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.mrope_section = s.section;
  c.max_position = 1024;
  c.options.cpu.num_threads = 2;
  const testing::TextWeights w(c.hidden_size, s.heads, s.kv_heads, s.head_dim, 40 + s.head_dim);
  const auto layer = layers::Qwen3VLTextAttention::create(c, w.views());
  for (int64_t L : {1, 3, 17, 63, 65, 129}) {
    SCOPED_TRACE("L = " + std::to_string(L));
    const int64_t B = 2;
    Tensor x(DType::kF32, {B, L, c.hidden_size}), pos(DType::kI32, {3, B, L});
    fill_uniform(x, static_cast<uint64_t>(L));
    for (int64_t i = 0; i < pos.numel(); ++i)  // independent t, h, w: every axis matters
      pos.data<int32_t>()[i] = static_cast<int32_t>((i * 7919) % 1000);
    const Tensor ref = reference_layer(c, w, x, pos);
    EXPECT_LT(testing::rel_error((*layer)(x, {}, pos).output, ref), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Layers, TextSweep,
                         ::testing::Values(SweepShape{4, 4, 64, {12, 10, 10}},
                                           SweepShape{8, 2, 80, {14, 13, 13}},
                                           SweepShape{6, 3, 72, {12, 12, 12}},
                                           SweepShape{4, 1, 128, {24, 20, 20}}));

}  // namespace
}  // namespace qwen3vl
