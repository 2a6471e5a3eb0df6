// Seeded random attention problems and their comparison with the float64 reference. Shared by the
// test suites of every variant and device, and by the benchmarks' accuracy check.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "qwen3vl/core/params.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/reference/attention.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl::testing {

struct ProblemSpec {
  int64_t batch = 1, seq_q = 16, seq_k = 16, heads = 4, kv_heads = 2, head_dim = 64;
  DType dtype = DType::kF32;
  MaskKind mask = MaskKind::kNone;
  int64_t window_left = -1, window_right = -1;
  std::vector<int32_t> varlen_q, varlen_k;  // per-sequence lengths: non-empty means packed varlen
  std::vector<int32_t> key_lengths;         // non-empty: key padding per sequence
  bool bhsd = false;  // store q/k/v/out as [B, H, S, D] and pass them through strides
  bool with_lse = false;
  bool with_weights = false;
  bool additive_mask = false;  // a random [B, 1, Lq, Lk] mask with some -inf entries
  float softcap = 0.0f;
  std::optional<float> scale;
  uint64_t seed = 1;

  std::string to_string() const {
    std::string s = "B" + std::to_string(batch) + " Lq" + std::to_string(seq_q) + " Lk" +
                    std::to_string(seq_k) + " H" + std::to_string(heads) + "/" +
                    std::to_string(kv_heads) + " D" + std::to_string(head_dim) + " " +
                    qwen3vl::to_string(dtype) + " mask=" + qwen3vl::to_string(mask);
    if (mask == MaskKind::kSlidingWindow)
      s += "(" + std::to_string(window_left) + "," + std::to_string(window_right) + ")";
    if (!varlen_q.empty()) s += " varlen";
    if (!key_lengths.empty()) s += " keypad";
    if (bhsd) s += " bhsd";
    if (additive_mask) s += " addmask";
    if (softcap > 0) s += " softcap=" + std::to_string(softcap);
    return s + " seed=" + std::to_string(seed);
  }
};

// The fields most tests set: sizes, heads, head_dim, mask and seed, with LSE.
inline ProblemSpec problem_spec(int64_t seq_q, int64_t seq_k, int64_t heads, int64_t kv_heads,
                                int64_t head_dim, MaskKind mask, uint64_t seed, int64_t batch = 1) {
  ProblemSpec s;
  s.batch = batch;
  s.seq_q = seq_q;
  s.seq_k = seq_k;
  s.heads = heads;
  s.kv_heads = kv_heads;
  s.head_dim = head_dim;
  s.mask = mask;
  s.with_lse = true;
  s.seed = seed;
  return s;
}

// The value written into every output before a run, so that an element a kernel leaves
// unwritten shows: NaN by default (it fails every finite comparison). The non-finite tests expect
// NaN in some rows, so they set a finite value no output can take for their scope.
inline float& output_poison_value() {
  static thread_local float value = std::numeric_limits<float>::quiet_NaN();
  return value;
}

class ScopedOutputPoison {
 public:
  explicit ScopedOutputPoison(float value) : saved_(output_poison_value()) {
    output_poison_value() = value;
  }
  ~ScopedOutputPoison() { output_poison_value() = saved_; }
  ScopedOutputPoison(const ScopedOutputPoison&) = delete;
  ScopedOutputPoison& operator=(const ScopedOutputPoison&) = delete;

 private:
  float saved_;
};

inline void poison(Tensor& t) {
  const float value = output_poison_value();
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, value);
}

struct Problem {
  ProblemSpec spec;
  Tensor q, k, v, out, lse, weights, mask, cu_q, cu_k, key_len;
  AttentionParams params;

  Problem() = default;
  Problem(const Problem&) = delete;
  Problem& operator=(const Problem&) = delete;
  Problem(Problem&&) = default;

  explicit Problem(const ProblemSpec& s) : spec(s) {
    const bool varlen = !s.varlen_q.empty();
    const int64_t d = s.head_dim;
    if (varlen) {
      int64_t tq = 0, tk = 0;
      for (int32_t x : s.varlen_q) tq += x;
      for (int32_t x : s.varlen_k) tk += x;
      q = Tensor(s.dtype, {tq, s.heads, d});
      out = Tensor(s.dtype, {tq, s.heads, d});
      k = Tensor(s.dtype, {tk, s.kv_heads, d});
      v = Tensor(s.dtype, {tk, s.kv_heads, d});
      cu_q = prefix_sums(s.varlen_q);
      cu_k = prefix_sums(s.varlen_k);
      params.cu_seqlens_q = cu_q.view();
      params.cu_seqlens_k = cu_k.view();
      if (s.with_lse) lse = Tensor(DType::kF32, {s.heads, tq});
    } else if (s.bhsd) {
      q = Tensor(s.dtype, {s.batch, s.heads, s.seq_q, d});
      out = Tensor(s.dtype, {s.batch, s.heads, s.seq_q, d});
      k = Tensor(s.dtype, {s.batch, s.kv_heads, s.seq_k, d});
      v = Tensor(s.dtype, {s.batch, s.kv_heads, s.seq_k, d});
    } else {
      q = Tensor(s.dtype, {s.batch, s.seq_q, s.heads, d});
      out = Tensor(s.dtype, {s.batch, s.seq_q, s.heads, d});
      k = Tensor(s.dtype, {s.batch, s.seq_k, s.kv_heads, d});
      v = Tensor(s.dtype, {s.batch, s.seq_k, s.kv_heads, d});
    }
    fill_uniform(q, s.seed * 4 + 0);
    fill_uniform(k, s.seed * 4 + 1);
    fill_uniform(v, s.seed * 4 + 2);
    for (int64_t i = 0; i < out.numel(); ++i) out.set(i, std::numeric_limits<float>::quiet_NaN());
    const bool t = s.bhsd && !varlen;  // BHSD memory seen as BSHD
    params.q = t ? q.view().transposed(1, 2) : q.view();
    params.k = t ? k.view().transposed(1, 2) : k.view();
    params.v = t ? v.view().transposed(1, 2) : v.view();
    params.out = t ? out.view().transposed(1, 2) : out.view();
    if (s.with_lse && !varlen) lse = Tensor(DType::kF32, {s.batch, s.heads, s.seq_q});
    if (s.with_lse) params.lse = lse.view();
    if (s.with_weights) {
      weights = Tensor(DType::kF32, {s.batch, s.heads, s.seq_q, s.seq_k});
      params.weights = weights.view();
    }
    if (s.additive_mask) {
      mask = Tensor(DType::kF32, {s.batch, 1, s.seq_q, s.seq_k});
      fill_uniform(mask, s.seed * 4 + 3, -2.0f, 2.0f);
      for (int64_t i = 0; i < mask.numel(); i += 7)
        mask.set(i, -std::numeric_limits<float>::infinity());
      params.additive_mask = mask.view();
    }
    if (!s.key_lengths.empty()) {
      key_len = Tensor(DType::kI32, {static_cast<int64_t>(s.key_lengths.size())});
      for (size_t b = 0; b < s.key_lengths.size(); ++b)
        key_len.data<int32_t>()[b] = s.key_lengths[b];
      params.key_lengths = key_len.view();
    }
    params.mask = s.mask;
    params.window_left = s.window_left;
    params.window_right = s.window_right;
    params.softcap = s.softcap;
    params.scale = s.scale;
  }

  static Tensor prefix_sums(const std::vector<int32_t>& lengths) {
    Tensor cu(DType::kI32, {static_cast<int64_t>(lengths.size()) + 1});
    int32_t acc = 0;
    cu.data<int32_t>()[0] = 0;
    for (size_t i = 0; i < lengths.size(); ++i) cu.data<int32_t>()[i + 1] = acc += lengths[i];
    return cu;
  }
};

// K and V rows of `keys` (sequence 0, BSHD storage) hold NaN; with an additive mask the keys are
// also hidden from every query row by -inf. A kernel that reads a key it must skip then leaks NaN.
inline void poison_keys(Problem& p, const std::vector<int64_t>& keys) {
  const ProblemSpec& s = p.spec;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t j : keys) {
    if (s.additive_mask)
      for (int64_t i = 0; i < s.seq_q; ++i)
        p.mask.set(i * s.seq_k + j, -std::numeric_limits<float>::infinity());
    for (int64_t h = 0; h < s.kv_heads; ++h)
      for (int64_t c = 0; c < s.head_dim; ++c) {
        p.k.set((j * s.kv_heads + h) * s.head_dim + c, nan);
        p.v.set((j * s.kv_heads + h) * s.head_dim + c, nan);
      }
  }
}

// ||out - ref|| / ||ref|| over every output element; +inf if any output is NaN or Inf.
// A reference of all zeros (every row fully masked) compares by the absolute norm instead.
inline double relative_error(const AttentionParams& p, const reference::Result& ref) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  double diff = 0.0, norm = 0.0;
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(p, b);
    for (int64_t i = 0; i < span.q_len; ++i)
      for (int64_t h = 0; h < s.heads; ++h) {
        const int64_t t = p.varlen() ? span.q_start + i : b * s.max_q + i;
        const int64_t off = row_offset(p.out, p.varlen(), b, span.q_start, i, h);
        for (int64_t c = 0; c < s.head_dim; ++c) {
          const double got = load_float(p.out, off + c);
          if (!std::isfinite(got)) return std::numeric_limits<double>::infinity();
          const double want = ref.out[static_cast<size_t>((t * s.heads + h) * s.head_dim + c)];
          diff += (got - want) * (got - want);
          norm += want * want;
        }
      }
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Largest |lse - ref| (natural log); -inf must match -inf exactly (else +inf is returned). With
// `relative_to_size`, each error is divided by max(1, |ref|): sharpened queries give logits of
// ~100, where a float's rounding alone exceeds a fixed absolute bound.
inline double lse_max_error(const AttentionParams& p, const reference::Result& ref,
                            bool relative_to_size = false) {
  AttentionShape s;
  throw_if_error(validate(p, &s));
  double worst = 0.0;
  for (int64_t b = 0; b < s.batch; ++b) {
    const SequenceSpan span = sequence_span(p, b);
    for (int64_t i = 0; i < span.q_len; ++i)
      for (int64_t h = 0; h < s.heads; ++h) {
        const int64_t t = p.varlen() ? span.q_start + i : b * s.max_q + i;
        const int64_t off = p.varlen() ? p.lse.offset(h, span.q_start + i) : p.lse.offset(b, h, i);
        const double got = p.lse.ptr<const float>()[off];
        const double want = ref.lse[static_cast<size_t>(t * s.heads + h)];
        if (std::isinf(want) || std::isinf(got)) {
          if (got != want) return std::numeric_limits<double>::infinity();
          continue;
        }
        if (std::isnan(got)) return std::numeric_limits<double>::infinity();
        const double error =
            std::fabs(got - want) / (relative_to_size ? std::max(1.0, std::fabs(want)) : 1.0);
        worst = error > worst ? error : worst;
      }
  }
  return worst;
}

// Tolerance on relative_error for a storage dtype: fp32 storage keeps the float64 result to about
// 1e-5; f16 and bf16 round each stored value to 11 or 8 significant bits (relative steps of 5e-4
// and 4e-3), so 1e-2 for those.
inline double tolerance(DType t) { return t == DType::kF32 ? 1e-5 : 1e-2; }

}  // namespace qwen3vl::testing
