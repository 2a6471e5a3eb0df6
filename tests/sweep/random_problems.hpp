// Random prefill problems for the differential sweep, drawn from one seed: batch 1-3, odd-biased
// lengths 1..300, GQA heads, fast and odd head dims, f32/f16/bf16, every mask with random window
// bounds, key padding, packed varlen batches (empty segments included, max_seqlen given or not),
// additive masks of every rank, broadcast and dtype, soft-cap, explicit scales (zero and negative
// too), BHSD strides, padded row strides, sharper queries, and query positions. `Allowed` says
// which of these a variant takes. Values are finite (the additive mask's -inf entries mask keys,
// as the API defines).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "qwen3vl/testing/random_fill.hpp"
#include "support/problem.hpp"
#include "sweep/padded_views.hpp"
#include "sweep/sweep_runner.hpp"

namespace qwen3vl::testing::sweep {

// What a variant takes (the generator draws nothing else).
struct Allowed {
  std::vector<MaskKind> masks = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kCausalTopLeft,
                                 MaskKind::kSlidingWindow};
  std::vector<DType> dtypes = {DType::kF32, DType::kF16, DType::kBF16};
  bool varlen = true, key_lengths = true, additive_mask = true, softcap = true, scale = true;
  bool bhsd = true, lse = true, weights = false, q_positions = false, q_gain = true, padded = true;
  bool square = false;             // Lq == Lk in every sequence
  bool varlen_key_lengths = true;  // key_lengths also with packed sequences
  // > 0: Lk - Lq is a multiple of this block (0, 1 or 2 blocks), and packed sequences have
  // Lq == Lk (the static patterns' grid needs max_k - max_q in whole blocks).
  int64_t k_offset_block = 0;
  int64_t max_len = 300;  // longest sequence drawn
  // Bound on B x Hq x Lq x Lk x D (the float64 oracle's work); longer draws are halved to fit.
  double work_cap = 4e6;
};

// A drawn problem: the shared ProblemSpec plus what it does not hold.
struct RandomProblem {
  ProblemSpec spec;
  float q_gain = 1.0f;       // q scaled by this after the fill: sharper softmax rows
  bool q_positions = false;  // random non-decreasing query positions on the key axis
  // Additive mask: rank 0 keeps the Problem's f32 [B, 1, Lq, Lk]; rank 2..4 replaces it by one of
  // that rank and dtype over the last dims of [B, Hq, Lq, Lk], bit d of `mask_ones` making dim d
  // (counted from the last) size 1 (broadcast).
  int mask_rank = 0;
  unsigned mask_ones = 0;
  DType mask_dtype = DType::kF32;
  int64_t max_seqlen_extra = -1;  // >= 0: varlen max_seqlen_q/k given, this much over the longest
  bool padded = false;            // q, k, v, out inside larger buffers (padded_views.hpp)

  std::string label() const {
    std::string s = spec.to_string();
    if (spec.scale) s += " scale=" + std::to_string(*spec.scale);
    if (!spec.key_lengths.empty()) {
      s += " key_lengths";
      for (int32_t k : spec.key_lengths) s += " " + std::to_string(k);
    }
    if (!spec.varlen_q.empty()) {
      s += " q_lens";
      for (int32_t k : spec.varlen_q) s += " " + std::to_string(k);
      s += " k_lens";
      for (int32_t k : spec.varlen_k) s += " " + std::to_string(k);
    }
    if (mask_rank) {
      s += " mask rank " + std::to_string(mask_rank) + " " + to_string(mask_dtype) + " size-1 dims";
      for (int d = 0; d < mask_rank; ++d)
        if (mask_ones >> d & 1u) s += " " + std::to_string(3 - d);
    }
    if (padded) s += " padded";
    if (max_seqlen_extra >= 0) s += " max_seqlen +" + std::to_string(max_seqlen_extra);
    if (q_gain != 1.0f) s += " q_gain=" + std::to_string(q_gain);
    if (q_positions) s += " q_positions";
    return s;
  }
};

// Lengths 1..max, a third each short (<= 16), medium (<= 96) and long; mostly odd.
inline int64_t draw_length(Rng& r, int64_t max_len) {
  const double u = r.uniform();
  int64_t n = u < 0.35
                  ? r.range(1, std::min<int64_t>(16, max_len))
                  : (u < 0.7 ? r.range(1, std::min<int64_t>(96, max_len)) : r.range(1, max_len));
  if (n % 2 == 0 && r.chance(0.6)) n = n + 1 <= max_len ? n + 1 : n - 1;
  return std::max<int64_t>(n, 1);
}

// Head dims: the specialised ones and odd ones (run-time head_dim kernels, scalar tails).
inline int64_t draw_head_dim(Rng& r) {
  static const std::vector<int64_t> fast = {64, 72, 80, 96, 128, 256};
  static const std::vector<int64_t> odd = {1,  3,  8,   16,  17,  32,  33,  40,
                                           48, 63, 100, 112, 130, 160, 200, 255};
  const double u = r.uniform();
  return u < 0.5 ? r.pick(fast) : (u < 0.8 ? r.pick(odd) : r.range(1, 256));
}

// (Hq, Hkv): MHA, GQA groups 2..7 (Qwen's 7), MQA.
inline void draw_heads(Rng& r, ProblemSpec* s) {
  static const std::vector<int64_t> kv = {1, 1, 2, 2, 3, 4};
  static const std::vector<int64_t> group = {1, 1, 2, 3, 4, 5, 7};
  s->kv_heads = r.pick(kv);
  s->heads = s->kv_heads * r.pick(group);
}

inline double oracle_work(const ProblemSpec& s) {
  double pairs = 0;
  if (s.varlen_q.empty()) {
    pairs = static_cast<double>(s.batch) * s.seq_q * s.seq_k;
  } else {
    for (size_t b = 0; b < s.varlen_q.size(); ++b) pairs += double(s.varlen_q[b]) * s.varlen_k[b];
  }
  return pairs * s.heads * s.head_dim;
}

// Halves every length (odd lengths stay odd) until the oracle's work fits the cap.
inline void fit_work(ProblemSpec* s, double cap) {
  const auto half = [](int64_t n) { return n <= 1 ? n : std::max<int64_t>(1, (n / 2) | 1); };
  while (oracle_work(*s) > cap) {
    s->seq_q = half(s->seq_q);
    s->seq_k = half(s->seq_k);
    for (auto* lens : {&s->varlen_q, &s->varlen_k})
      for (int32_t& n : *lens) n = static_cast<int32_t>(half(n));
  }
}

inline RandomProblem random_problem(Rng& r, const Allowed& a, uint64_t seed) {
  RandomProblem p;
  ProblemSpec& s = p.spec;
  s.seed = seed;
  s.batch = r.range(1, 3);
  draw_heads(r, &s);
  s.head_dim = draw_head_dim(r);
  s.dtype = r.pick(a.dtypes);
  s.mask = r.pick(a.masks);
  const bool varlen = a.varlen && r.chance(0.25);
  if (varlen) {
    const int64_t segments = r.range(1, 4);
    for (int64_t b = 0; b < segments; ++b) {
      int32_t q = static_cast<int32_t>(draw_length(r, a.max_len));
      int32_t k = a.square || r.chance(0.4) ? q : static_cast<int32_t>(draw_length(r, a.max_len));
      if (r.chance(0.1)) {  // an empty segment; its keys may remain
        q = 0;
        if (a.square || r.chance(0.5)) k = 0;
      }
      s.varlen_q.push_back(q);
      s.varlen_k.push_back(k);
    }
    s.batch = segments;
    s.seq_q = *std::max_element(s.varlen_q.begin(), s.varlen_q.end());  // for the label only
    s.seq_k = *std::max_element(s.varlen_k.begin(), s.varlen_k.end());
  } else {
    s.seq_q = draw_length(r, a.max_len);
    s.seq_k = a.square || r.chance(0.3) ? s.seq_q : draw_length(r, a.max_len);
  }
  if (a.k_offset_block > 0) {
    s.varlen_k = s.varlen_q;
    s.seq_k = s.seq_q;
  }
  fit_work(&s, a.work_cap);
  if (a.k_offset_block > 0 && !varlen) {
    const int64_t extra = a.k_offset_block * r.range(0, 2);
    s.seq_k = s.seq_q + extra;
    if (oracle_work(s) > a.work_cap) s.seq_k = s.seq_q;  // fit_work made Lq x Lq fit
  }

  if (a.key_lengths && (a.varlen_key_lengths || !varlen) && r.chance(0.2)) {
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t full = varlen ? s.varlen_k[static_cast<size_t>(b)] : s.seq_k;
      const double u = r.uniform();
      s.key_lengths.push_back(
          static_cast<int32_t>(u < 0.25 ? full : (u < 0.35 ? 0 : r.range(0, full))));
    }
  }
  if (s.mask == MaskKind::kSlidingWindow) {
    int64_t longest = std::max<int64_t>(s.seq_k, 1);
    for (int32_t k : s.varlen_k) longest = std::max<int64_t>(longest, k);
    s.window_left = r.chance(0.2) ? -1 : r.range(0, longest);
    const double u = r.uniform();
    s.window_right = u < 0.25 ? -1 : (u < 0.55 ? 0 : r.range(0, longest));
  }
  s.bhsd = a.bhsd && !varlen && r.chance(0.2);
  s.with_lse = a.lse && r.chance(0.8);
  s.with_weights = a.weights && !varlen && r.chance(0.5);
  s.additive_mask = a.additive_mask && !varlen && r.chance(0.15);
  if (a.softcap && r.chance(0.15)) s.softcap = static_cast<float>(r.uniform(1.0, 30.0));
  if (a.scale && r.chance(0.2)) {
    const double u = r.uniform();
    s.scale = static_cast<float>(
        u < 0.05 ? 0.0 : (u < 0.2 ? -r.uniform(0.02, 0.5) : r.uniform(0.02, 0.6)));
  }
  if (s.additive_mask && r.chance(0.6)) {
    p.mask_rank = static_cast<int>(r.range(2, 4));
    for (int d = 0; d < p.mask_rank; ++d)
      if (r.chance(0.3)) p.mask_ones |= 1u << d;
    p.mask_dtype = r.pick(a.dtypes);
  }
  if (varlen && r.chance(0.3)) p.max_seqlen_extra = r.range(0, 16);
  if (a.q_gain && r.chance(0.15)) p.q_gain = static_cast<float>(r.uniform(2.0, 6.0));
  p.q_positions = a.q_positions && r.chance(0.15);
  p.padded = a.padded && !s.bhsd && r.chance(0.2);
  return p;
}

// A built problem and what its params point at besides the Problem's own tensors.
struct BuiltProblem {
  Problem problem;
  Tensor positions, mask;
  PaddedCopy q, k, v, out;  // with RandomProblem::padded: what params.q/k/v/out view
  bool padded = false;

  explicit BuiltProblem(const RandomProblem& rp) : problem(rp.spec) {
    const ProblemSpec& s = rp.spec;
    if (rp.mask_rank) replace_mask(rp);
    if (rp.max_seqlen_extra >= 0) {
      problem.params.max_seqlen_q = s.seq_q + rp.max_seqlen_extra;  // seq_q/k: the longest
      problem.params.max_seqlen_k = s.seq_k + rp.max_seqlen_extra;
    }
    if (rp.q_gain != 1.0f)
      for (int64_t i = 0; i < problem.q.numel(); ++i)
        problem.q.set(i, problem.q.get(i) * rp.q_gain);
    if (rp.padded) pad(s.seed);
    if (rp.q_positions) {
      // Per sequence: sorted random positions in [0, k_len + 2] (beyond the keys is allowed).
      Rng r(s.seed ^ 0x51ED270B7A3C9D1Full);
      const bool varlen = !s.varlen_q.empty();
      const int64_t rows = varlen ? problem.q.size(0) : s.batch * s.seq_q;
      positions = varlen ? Tensor(DType::kI32, {rows}) : Tensor(DType::kI32, {s.batch, s.seq_q});
      int64_t row = 0;
      for (int64_t b = 0; b < s.batch; ++b) {
        const size_t i = static_cast<size_t>(b);
        const int64_t q_len = varlen ? s.varlen_q[i] : s.seq_q;
        int64_t k_len = varlen ? s.varlen_k[i] : s.seq_k;
        if (!s.key_lengths.empty()) k_len = std::min<int64_t>(k_len, s.key_lengths[i]);
        std::vector<int32_t> pos(static_cast<size_t>(q_len));
        for (int32_t& x : pos) x = static_cast<int32_t>(r.range(0, k_len + 2));
        std::sort(pos.begin(), pos.end());
        for (int32_t x : pos) positions.data<int32_t>()[row++] = x;
      }
      problem.params.q_positions = positions.view();
    }
  }

  // The additive mask of rp.mask_rank (see RandomProblem), seeded from the case.
  void replace_mask(const RandomProblem& rp) {
    const ProblemSpec& s = rp.spec;
    const int64_t full[4] = {s.batch, s.heads, s.seq_q, s.seq_k};
    std::vector<int64_t> dims;
    for (int d = rp.mask_rank - 1; d >= 0; --d)
      dims.push_back(rp.mask_ones >> d & 1u ? 1 : full[3 - d]);
    mask = Tensor(rp.mask_dtype, dims);
    fill_uniform(mask, s.seed * 4 + 3, -2.0f, 2.0f);
    for (int64_t i = 0; i < mask.numel(); i += 7)
      mask.set(i, -std::numeric_limits<float>::infinity());
    problem.params.additive_mask = mask.view();
  }

  // q, k, v and out moved into padded buffers: up to 2 extra rows per leading dimension and up
  // to 8 extra elements per row.
  void pad(uint64_t seed) {
    Rng r(seed ^ 0x0DDBA11CAFEull);
    const auto pads = [&](const TensorView& t) {
      std::vector<int64_t> p;
      for (int d = 0; d < t.rank; ++d) p.push_back(d + 1 == t.rank ? r.range(0, 8) : r.range(0, 2));
      return p;
    };
    q = PaddedCopy(problem.params.q, pads(problem.params.q));
    k = PaddedCopy(problem.params.k, pads(problem.params.k));
    v = PaddedCopy(problem.params.v, pads(problem.params.v));
    out = PaddedCopy(problem.params.out, pads(problem.params.out));
    problem.params.q = q.view();
    problem.params.k = k.view();
    problem.params.v = v.view();
    problem.params.out = out.view();
    padded = true;
  }

  // Whether the runs left every padding element of q, k, v and out as it was.
  bool padding_intact() const {
    return !padded ||
           (q.padding_intact() && k.padding_intact() && v.padding_intact() && out.padding_intact());
  }

  // Output, LSE and weights back to NaN, so that a run that skips an element cannot pass on an
  // earlier run's value.
  void poison_outputs() {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const TensorView& o = problem.params.out;
    for_each_index(o, [&](const int64_t* idx) { store_float(o, offset_of(o, idx), nan); });
    for (Tensor* t : {&problem.lse, &problem.weights})
      for (int64_t i = 0; i < t->numel(); ++i) t->set(i, nan);
  }
};

}  // namespace qwen3vl::testing::sweep
