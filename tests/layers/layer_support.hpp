// Test support for the attention layers: the transformers fixtures (tests/fixtures/layers, written
// by scripts/fixtures/gen_layer_fixtures.py in the rope fixtures' format), tensors made from them,
// seeded random layers, and error measures.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "qwen3vl/layers/layers.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "rope/support/fixtures.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

class LayerFixtures {
 public:
  // The directory: $QWEN3VL_LAYER_FIXTURES if set (a build run elsewhere), else the source path.
  static const LayerFixtures& get() {
    const char* env = std::getenv("QWEN3VL_LAYER_FIXTURES");
    static const LayerFixtures f(env && *env ? env : QWEN3VL_LAYER_FIXTURES_DIR);
    return f;
  }
  explicit LayerFixtures(const std::string& dir) {
    std::ifstream js(dir + "/layer_fixtures.json"),
        bin(dir + "/layer_fixtures.bin", std::ios::binary);
    if (!js || !bin) throw std::runtime_error("layer fixtures not found in " + dir);
    std::stringstream text;
    text << js.rdbuf();
    manifest_ = Json::parse(text.str());
    blob_.assign(std::istreambuf_iterator<char>(bin), std::istreambuf_iterator<char>());
  }
  const Json& meta(const std::string& c) const { return manifest_["cases"][c]; }

  // f32 and i32 arrays (all this fixture set holds) as host tensors of their own shape.
  Tensor tensor(const std::string& name) const {
    const Json& a = manifest_["arrays"][name];
    std::vector<int64_t> shape;
    for (const Json& d : a["shape"].items) shape.push_back(static_cast<int64_t>(d.number));
    const DType dtype = a["dtype"].text == "i32" ? DType::kI32 : DType::kF32;
    if (a["dtype"].text != "i32" && a["dtype"].text != "f32")
      throw std::runtime_error("layer fixture " + name + ": unexpected dtype " + a["dtype"].text);
    Tensor t(dtype, shape);
    const size_t offset = static_cast<size_t>(a["offset"].number);
    if (offset + static_cast<size_t>(t.bytes()) > blob_.size())
      throw std::runtime_error("layer fixture out of range: " + name);
    std::memcpy(t.data<char>(), blob_.data() + offset, static_cast<size_t>(t.bytes()));
    return t;
  }

 private:
  Json manifest_;
  std::vector<char> blob_;
};

// A copy of `t` stored as `dtype` (round to nearest even).
inline Tensor converted(const Tensor& t, DType dtype) {
  std::vector<int64_t> shape(t.view().shape, t.view().shape + t.view().rank);
  Tensor out(dtype, shape);
  for (int64_t i = 0; i < t.numel(); ++i) out.set(i, t.get(i));
  return out;
}

// ||a - ref|| / ||ref|| over the first n elements (all when n < 0), in double; NaN never passes.
inline double rel_error(const Tensor& a, const Tensor& ref) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = static_cast<double>(a.get(i)) - ref.get(i);
    num += d * d;
    den += static_cast<double>(ref.get(i)) * ref.get(i);
  }
  const double e = std::sqrt(num / (den > 0.0 ? den : 1.0));
  return std::isnan(e) ? INFINITY : e;
}

inline double max_abs_error(const Tensor& a, const Tensor& ref) {
  double m = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = std::fabs(static_cast<double>(a.get(i)) - ref.get(i));
    if (std::isnan(d)) return INFINITY;
    m = d > m ? d : m;
  }
  return m;
}

// Rows [from, from + count) of sequence b of a [B, L, C] tensor, as a [count, C] copy.
inline Tensor rows(const Tensor& t, int64_t b, int64_t from, int64_t count) {
  const int64_t L = t.size(1), C = t.size(2);
  Tensor out(t.dtype(), {count, C});
  for (int64_t i = 0; i < count; ++i)
    for (int64_t c = 0; c < C; ++c) out.set(i * C + c, t.get((b * L + from + i) * C + c));
  return out;
}

// A view of sequence positions [from, from + count) of a [B, L, ...] tensor (rank 3), or of
// [3, B, L] / [B, L] position ids.
inline TensorView token_slice(const TensorView& t, int token_dim, int64_t from, int64_t count) {
  TensorView v = t;
  v.data = static_cast<char*>(t.data) + from * t.stride[token_dim] * size_of(t.dtype);
  v.shape[token_dim] = count;
  return v;
}

// A text fixture of transformers' Qwen3VLTextAttention (tests/fixtures/layers): its config,
// weights, inputs and float64 outputs.
struct TextFixtureCase {
  std::string name;
  layers::TextAttentionConfig config;
  Tensor hidden, positions, q, k, v, o, q_norm, k_norm, ref_out, ref_weights;

  explicit TextFixtureCase(const std::string& n) : name(n) {
    const LayerFixtures& f = LayerFixtures::get();
    const Json& m = f.meta(n);
    config.hidden_size = static_cast<int64_t>(m["hidden_size"].number);
    config.num_heads = static_cast<int64_t>(m["num_heads"].number);
    config.num_kv_heads = static_cast<int64_t>(m["num_kv_heads"].number);
    config.head_dim = static_cast<int64_t>(m["head_dim"].number);
    config.rope_theta = m["rope_theta"].number;
    config.rms_norm_eps = m["rms_norm_eps"].number;
    config.mrope_section = {static_cast<int32_t>(m["mrope_section"][0].number),
                            static_cast<int32_t>(m["mrope_section"][1].number),
                            static_cast<int32_t>(m["mrope_section"][2].number)};
    config.max_position = 4096;
    hidden = f.tensor(n + "/hidden_states");
    positions = f.tensor(n + "/position_ids");
    q = f.tensor(n + "/q_proj");
    k = f.tensor(n + "/k_proj");
    v = f.tensor(n + "/v_proj");
    o = f.tensor(n + "/o_proj");
    q_norm = f.tensor(n + "/q_norm");
    k_norm = f.tensor(n + "/k_norm");
    ref_out = f.tensor(n + "/f64/output");
    ref_weights = f.tensor(n + "/f64/attn_weights");
  }
  layers::TextAttentionWeights weights() const {
    return {q.view(), k.view(), v.view(), o.view(), q_norm.view(), k_norm.view()};
  }
};

// Random nn.Linear-like weights and a layer config of the given shape (text).
struct TextWeights {
  Tensor q, k, v, o, q_norm, k_norm;
  TextWeights(int64_t hidden, int64_t hq, int64_t hkv, int64_t d, uint64_t seed)
      : q(DType::kF32, {hq * d, hidden}),
        k(DType::kF32, {hkv * d, hidden}),
        v(DType::kF32, {hkv * d, hidden}),
        o(DType::kF32, {hidden, hq * d}),
        q_norm(DType::kF32, {d}),
        k_norm(DType::kF32, {d}) {
    const float in = 1.0f / std::sqrt(static_cast<float>(hidden));
    const float out = 1.0f / std::sqrt(static_cast<float>(hq * d));
    fill_uniform(q, seed, -in, in);
    fill_uniform(k, seed + 1, -in, in);
    fill_uniform(v, seed + 2, -in, in);
    fill_uniform(o, seed + 3, -out, out);
    fill_uniform(q_norm, seed + 4, 0.5f, 1.5f);
    fill_uniform(k_norm, seed + 5, 0.5f, 1.5f);
  }
  layers::TextAttentionWeights views() const {
    return {q.view(), k.view(), v.view(), o.view(), q_norm.view(), k_norm.view()};
  }
};

}  // namespace qwen3vl::testing
