// What the CPU and CUDA linear-attention tests share besides the oracle: the chunked sweep's
// problems, token slices of a fixed-length problem (prefill / step inputs) and the recurrent state
// with its comparison.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "qwen3vl/variants/linear.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {

// Every (mask, length, head_dim) of the lists: two sequences, GQA 4/2 (6/2 at D 72: groups of 3),
// Lq = Lk, one seed each from 1.
inline std::vector<ProblemSpec> chunked_cases(std::initializer_list<MaskKind> masks,
                                              std::initializer_list<int64_t> lengths,
                                              std::initializer_list<int64_t> dims) {
  std::vector<ProblemSpec> specs;
  uint64_t seed = 1;
  for (MaskKind mask : masks)
    for (int64_t len : lengths)
      for (int64_t d : dims) {
        ProblemSpec spec;
        spec.batch = 2;
        spec.seq_q = spec.seq_k = len;
        spec.heads = d == 72 ? 6 : 4;
        spec.kv_heads = 2;
        spec.head_dim = d;
        spec.mask = mask;
        spec.seed = seed++;
        specs.push_back(spec);
      }
  return specs;
}

// Tokens [first, first + n) of a fixed-length problem as their own params (views, no copies).
inline AttentionParams token_slice(const AttentionParams& p, int64_t first, int64_t n) {
  AttentionParams s = p;
  for (TensorView* t : {&s.q, &s.k, &s.v, &s.out}) {
    t->data = static_cast<char*>(t->data) + t->offset(0, first) * size_of(t->dtype);
    t->shape[1] = n;
  }
  return s;
}

// A recurrent state on the host: s [B, Hkv, F, D] and z [B, Hkv, F], f32.
struct StateBuffers {
  Tensor s, z;
  LinearState view() { return LinearState{s.view(), z.view()}; }
  StateBuffers(int64_t b, int64_t hkv, int64_t f, int64_t d)
      : s(DType::kF32, {b, hkv, f, d}), z(DType::kF32, {b, hkv, f}) {}
};

// ||a - b|| / ||b|| over s and z together.
inline double state_difference(const StateBuffers& a, const StateBuffers& b) {
  double diff = 0, norm = 0;
  for (const auto& [x, y] : {std::make_pair(&a.s, &b.s), std::make_pair(&a.z, &b.z)})
    for (int64_t i = 0; i < x->numel(); ++i) {
      diff += std::pow(x->get(i) - y->get(i), 2);
      norm += std::pow(y->get(i), 2);
    }
  return std::sqrt(diff / norm);
}

}  // namespace qwen3vl::testing
