// Standard attention for one (sequence, query head), compiled once per ISA (see isa_prologue.hpp):
// S = (scale Q) K^T with Eigen, softcap and masks, a row softmax, then O = P V with Eigen.
// Only keys that some row of the sequence can see are read, so NaN in fully masked K/V never
// enters. Keys hidden from some rows only are read: their scores are replaced before the softmax,
// and V rows holding Inf/NaN leave the P V product (see below), so they reach only the rows that
// see them.
#include <cmath>
#include <limits>

#include <Eigen/Core>

#include "src/cpu/kernels.hpp"

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;

template <class T>
void load_rows(const TensorView& t, const StandardHeadTask& task, int64_t start, int64_t first,
               int64_t count, int64_t head, float scale, float* dst) {
  const int64_t d = task.shape.head_dim;
  const T* base = t.ptr<const T>();
  for (int64_t r = 0; r < count; ++r) {
    const T* src = base + row_offset(t, task.shape.varlen, task.b, start, first + r, head);
    for (int64_t c = 0; c < d; ++c) dst[r * d + c] = to_float(src[c]) * scale;
  }
}

template <class T>
void run(const StandardHeadTask& task) {
  const AttentionParams& p = *task.params;
  const AttentionShape& s = task.shape;
  const int64_t d = s.head_dim, lq = task.span.q_len, lk = task.span.k_len;
  const int64_t kv_head = task.h / s.group_size();
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();

  // Keys visible to at least one row: structural ranges grow monotonically with the row index.
  int64_t k_lo = lk, k_hi = 0;
  for (int64_t i = 0; i < lq; ++i) {
    const KeyRange r = row_visible_keys(p, task.b, task.span, i);
    if (r.size() == 0) continue;
    k_lo = r.begin < k_lo ? r.begin : k_lo;
    k_hi = r.end > k_hi ? r.end : k_hi;
  }
  const int64_t n = k_hi > k_lo ? k_hi - k_lo : 0;
  // Whether some row does not see some loaded key (a narrower range, or an additive mask's -inf):
  // only then can a V row's Inf/NaN reach a row that must not see it (below).
  bool hidden = p.additive_mask.present();
  for (int64_t i = 0; i < lq && !hidden && n > 0; ++i) {
    const KeyRange r = row_visible_keys(p, task.b, task.span, i);
    hidden = r.begin != k_lo || r.end != k_hi;
  }

  float* q = static_cast<float*>(task.scratch);
  float* k = q + s.max_q * d;
  float* v = k + s.max_k * d;
  float* scores = v + s.max_k * d;
  load_rows<T>(p.q, task, task.span.q_start, 0, lq, task.h, s.scale, q);
  load_rows<T>(p.k, task, task.span.k_start, k_lo, n, kv_head, 1.0f, k);
  load_rows<T>(p.v, task, task.span.k_start, k_lo, n, kv_head, 1.0f, v);

  MatrixMap qm(q, lq, d), km(k, n, d), vm(v, n, d), sm(scores, lq, n);
  if (n > 0) sm.noalias() = qm * km.transpose();

  for (int64_t i = 0; i < lq; ++i) {
    float* row = scores + i * n;
    const KeyRange r = row_visible_keys(p, task.b, task.span, i);
    const int64_t lo = r.size() ? r.begin - k_lo : 0, hi = r.size() ? r.end - k_lo : 0;
    for (int64_t j = 0; j < lo; ++j) row[j] = 0.0f;  // masked keys weigh 0 in P V
    for (int64_t j = hi; j < n; ++j) row[j] = 0.0f;
    if (p.softcap > 0.0f)
      for (int64_t j = lo; j < hi; ++j) row[j] = p.softcap * std::tanh(row[j] / p.softcap);
    if (p.additive_mask.present())
      for (int64_t j = lo; j < hi; ++j) {  // -inf masks the key even where its score is NaN
        const float m = load_float(
            p.additive_mask, additive_mask_offset(p.additive_mask, task.b, task.h, i, k_lo + j));
        row[j] = m == kNegInf ? kNegInf : row[j] + m;
      }
    // A NaN score (from q or from a K row the row sees) makes the row NaN, as in flash2: a plain
    // max would skip it and the row would pass for one that sees no key. Eigen's NaN-propagating
    // max is vectorised; a scalar compare-and-select loop (the compiler keeps it scalar without
    // -ffast-math) is latency-bound and costs as much as the softmax.
    const float mx =
        hi > lo ? Eigen::Map<Eigen::ArrayXf>(row + lo, hi - lo).maxCoeff<Eigen::PropagateNaN>()
                : kNegInf;
    float lse = kNegInf;
    if (mx == kNegInf) {  // fully masked row: weights and output 0
      for (int64_t j = lo; j < hi; ++j) row[j] = 0.0f;
    } else {
      auto seg = Eigen::Map<Eigen::ArrayXf>(row + lo, hi - lo);
      // Eigen's exp clamps its input, so exp(-inf) would give ~1e-39, not 0: select 0 where an
      // additive mask put -inf (the only source of -inf inside [lo, hi); the select is not free).
      if (p.additive_mask.present())
        seg = (seg == kNegInf).select(Eigen::ArrayXf::Zero(hi - lo), (seg - mx).exp());
      else
        seg = (seg - mx).exp();
      const float sum = seg.sum();
      seg *= 1.0f / sum;
      lse = mx + std::log(sum);
    }
    if (p.lse.present()) {
      const int64_t off =
          s.varlen ? p.lse.offset(task.h, task.span.q_start + i) : p.lse.offset(task.b, task.h, i);
      p.lse.ptr<float>()[off] = lse;
    }
    if (p.weights.present()) {
      float* w = p.weights.ptr<float>() + p.weights.offset(task.b, task.h, i);
      for (int64_t j = 0; j < task.k_total; ++j) w[j] = 0.0f;
      for (int64_t j = 0; j < n; ++j) w[k_lo + j] = row[j];
    }
  }

  // O = P V into the Q buffer (Q is no longer needed), then store in the output dtype.
  // P holds exact zeros where a row does not see a key, but 0 x Inf = NaN: a V row holding Inf or
  // NaN would reach rows that cannot see it. Where some row does not see some key (`hidden`), such
  // V rows (rare; one vectorised check finds whether there are any) leave the GEMM as zeros,
  // flagged in the K buffer (free now), and are reloaded and added after it to the rows that see
  // them only. Where every row sees every loaded key, a non-finite V row reaches only rows that see
  // it, as the non-finite rule allows, so the check is skipped.
  float* o = q;
  float* flagged = k;
  MatrixMap om(o, lq, d);
  const bool any_bad = hidden && n > 0 && !vm.allFinite();
  if (any_bad)
    for (int64_t j = 0; j < n; ++j) {
      flagged[j] = vm.row(j).allFinite() ? 0.0f : 1.0f;
      if (flagged[j] != 0.0f) vm.row(j).setZero();
    }
  if (n > 0)
    om.noalias() = sm * vm;
  else
    om.setZero();
  for (int64_t j = 0; any_bad && j < n; ++j) {
    if (flagged[j] == 0.0f) continue;
    float* vj = v + j * d;
    load_rows<T>(p.v, task, task.span.k_start, k_lo + j, 1, kv_head, 1.0f, vj);
    for (int64_t i = 0; i < lq; ++i) {
      const KeyRange r = row_visible_keys(p, task.b, task.span, i);
      if (k_lo + j < r.begin || k_lo + j >= r.end) continue;
      if (p.additive_mask.present() &&
          load_float(p.additive_mask,
                     additive_mask_offset(p.additive_mask, task.b, task.h, i, k_lo + j)) == kNegInf)
        continue;
      const float w = scores[i * n + j];
      for (int64_t c = 0; c < d; ++c) o[i * d + c] += w * vj[c];
    }
  }
  T* out = p.out.ptr<T>();
  for (int64_t i = 0; i < lq; ++i) {
    T* dst = out + row_offset(p.out, s.varlen, task.b, task.span.q_start, i, task.h);
    for (int64_t c = 0; c < d; ++c) dst[c] = from_float<T>(o[i * d + c]);
  }
}

}  // namespace

void standard_head(const StandardHeadTask& task) {
  dispatch_float_dtype(task.params->q.dtype, [&](auto tag) { run<decltype(tag)>(task); });
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS

namespace qwen3vl::detail {
QWEN3VL_DEFINE_ISA_TABLE(StandardKernels, &cpu::QWEN3VL_ISA_NS::standard_head)
}  // namespace qwen3vl::detail
