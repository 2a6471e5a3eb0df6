// Mixture-of-heads test support: the float64 reference as a head kernel, seeded routings, and the
// oracle (dense float64 attention per head times the gate matrix).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "qwen3vl/reference/attention.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "support/problem.hpp"
#include "support/sweep.hpp"

namespace qwen3vl::testing {

// The float64 reference behind the Attention interface (it honours q_positions), so the MoH
// driver's gather/scatter is checked independently of any kernel.
class ReferenceKernel final : public Attention {
 public:
  Variant variant() const override { return Variant::kStandard; }
  Device device() const override { return Device::kCPU; }
  std::string description() const override { return "float64 reference"; }

 protected:
  Status make_plan(const AttentionParams&, AttentionPlan*) const override { return Status(); }
  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace,
                void*) const override {
    const AttentionShape& s = plan.shape;
    const reference::Result r = reference::attention(p);
    for (int64_t b = 0; b < s.batch; ++b) {
      const SequenceSpan span = sequence_span(p, b);
      for (int64_t i = 0; i < span.q_len; ++i)
        for (int64_t h = 0; h < s.heads; ++h) {
          const int64_t t = p.varlen() ? span.q_start + i : b * s.max_q + i;
          const int64_t off = row_offset(p.out, p.varlen(), b, span.q_start, i, h);
          for (int64_t c = 0; c < s.head_dim; ++c)
            store_float(
                p.out, off + c,
                static_cast<float>(r.out[static_cast<size_t>((t * s.heads + h) * s.head_dim + c)]));
          if (p.lse.present())
            p.lse.ptr<float>()[p.varlen() ? p.lse.offset(h, span.q_start + i)
                                          : p.lse.offset(b, h, i)] =
                static_cast<float>(r.lse[static_cast<size_t>(t * s.heads + h)]);
        }
    }
    return Status();
  }
};

// An owned routing of `tokens` rows with k heads each.
struct Routing {
  Tensor index, weight;
  HeadRouting view() const { return HeadRouting{index.view(), weight.view()}; }
  int32_t head(int64_t t, int64_t e) const {
    return index.data<int32_t>()[t * index.view().shape[1] + e];
  }
};

// Every token picks k distinct heads at random; gates uniform in [0.1, 1.5), a few exactly 0.
inline Routing random_routing(int64_t tokens, int64_t heads, int64_t k, uint64_t seed) {
  Routing r{Tensor(DType::kI32, {tokens, k}), Tensor(DType::kF32, {tokens, k})};
  std::mt19937_64 rng(seed);
  std::vector<int32_t> all(static_cast<size_t>(heads));
  std::uniform_real_distribution<float> gate(0.1f, 1.5f);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) all[static_cast<size_t>(h)] = static_cast<int32_t>(h);
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t e = 0; e < k; ++e) {
      r.index.data<int32_t>()[t * k + e] = all[static_cast<size_t>(e)];
      r.weight.data<float>()[t * k + e] = (t * k + e) % 11 == 5 ? 0.0f : gate(rng);
    }
  }
  return r;
}

// Every head for every token, gate 1.
inline Routing all_heads(int64_t tokens, int64_t heads) {
  Routing r{Tensor(DType::kI32, {tokens, heads}), Tensor(DType::kF32, {tokens, heads})};
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      r.index.data<int32_t>()[t * heads + h] =
          static_cast<int32_t>((h * 7 + t) % heads);  // any order
      r.weight.data<float>()[t * heads + h] = 1.0f;
    }
  return r;
}

inline int64_t routing_tokens(const ProblemSpec& s) {
  if (s.varlen_q.empty()) return s.batch * s.seq_q;
  int64_t n = 0;
  for (int32_t x : s.varlen_q) n += x;
  return n;
}

// The gate of (token, head): 0 where the routing does not list the head.
inline std::vector<double> gate_matrix(const Routing& r, int64_t tokens, int64_t heads) {
  std::vector<double> g(static_cast<size_t>(tokens * heads), 0.0);
  const int64_t k = r.index.view().shape[1];
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < k; ++e)
      g[static_cast<size_t>(t * heads + r.head(t, e))] = r.weight.data<float>()[t * k + e];
  return g;
}

// The oracle: dense float64 attention, each (token, head) row times its gate; LSE where the gate
// is non-zero, else -inf.
inline reference::Result gated_reference(const AttentionParams& p, const Routing& r) {
  reference::Result ref = reference::attention(p);
  AttentionShape s;
  throw_if_error(validate(p, &s));
  const int64_t tokens = p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
  const std::vector<double> g = gate_matrix(r, tokens, s.heads);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < s.heads; ++h) {
      const double w = g[static_cast<size_t>(t * s.heads + h)];
      for (int64_t c = 0; c < s.head_dim; ++c)
        ref.out[static_cast<size_t>((t * s.heads + h) * s.head_dim + c)] *= w;
      if (w == 0.0)
        ref.lse[static_cast<size_t>(t * s.heads + h)] = -std::numeric_limits<double>::infinity();
    }
  return ref;
}

// Odd sizes, Lq != Lk both ways, GQA and MQA, D 72/80/64/128/33, every mask, f32/bf16/f16,
// batches, key padding, varlen with an empty segment, BHSD strides.
inline std::vector<ProblemSpec> routed_sweep() {
  std::vector<ProblemSpec> specs;
  SweepTables t;
  t.sizes = {{1, 1}, {17, 17}, {65, 65}, {129, 129}, {33, 70}, {70, 33}, {200, 200}};
  t.dims = {72, 80, 64, 128, 33, 72, 128};
  t.heads = {{8, 2}, {6, 3}, {4, 1}, {5, 5}};
  t.masks = {MaskKind::kCausal, MaskKind::kNone, MaskKind::kCausalTopLeft,
             MaskKind::kSlidingWindow};
  t.dtypes = {DType::kF32, DType::kBF16, DType::kF32, DType::kF16};
  uint64_t seed = 700;
  for (size_t i = 0; i < t.rows(); ++i) {
    ProblemSpec s = t.row(i, ++seed);
    s.window_left = 9;
    s.window_right = 0;
    s.bhsd = i % 3 == 2;
    if (i == 4) s.key_lengths = {50};
    specs.push_back(s);
  }
  ProblemSpec v;  // packed sequences with an empty one, GQA, causal
  v.varlen_q = {17, 0, 130, 5};
  v.varlen_k = {17, 3, 130, 9};
  v.heads = 8;
  v.kv_heads = 2;
  v.head_dim = 80;
  v.mask = MaskKind::kCausal;
  v.with_lse = true;
  v.seed = ++seed;
  specs.push_back(v);
  ProblemSpec w = v;  // the same with a two-sided window and key padding
  w.mask = MaskKind::kSlidingWindow;
  w.window_left = 20;
  w.window_right = 3;
  w.varlen_q = {40, 9, 64};
  w.varlen_k = {40, 20, 64};
  w.key_lengths = {40, 11, 64};
  w.seed = ++seed;
  specs.push_back(w);
  return specs;
}

}  // namespace qwen3vl::testing
