// Linear attention for one (sequence, KV head), compiled once per ISA (see isa_prologue.hpp).
// The chunked parallel form with the normaliser folded in: V is extended by a column of ones, so
// the state [S | z] is one F x (D + 1) matrix and o = num[:D] / (num[D] + eps). Per chunk n:
//   O_n = phi(Q_n) [S | z]_n + tril(phi(Q_n) phi(K_n)^T) [V_n | 1]   (causal; [S | z]_n: keys < n)
//   [S | z] += phi(K_n)^T [V_n | 1]
// Non-causal: [S | z] over all keys first, then O = phi(Q) [S | z] per query chunk.
#include <algorithm>
#include <cmath>
#include <limits>

#include <Eigen/Core>

#include "linear_kernels.hpp"

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Map = Eigen::Map<RowMatrix>;
using ConstMap = Eigen::Map<const RowMatrix>;

inline void store(float* dst, float x) { *dst = x; }
inline void store(half* dst, float x) { *dst = to_half(x); }
inline void store(bfloat16* dst, float x) { *dst = to_bf16(x); }

template <class T>
class HeadRunner {
 public:
  explicit HeadRunner(const LinearTask& t)
      : t_(t),
        p_(*t.params),
        c_(t.config->chunk),
        f_(t.call->features),
        d_(t.call->shape.head_dim),
        performer_(t.omega != nullptr) {
    float* w = static_cast<float*>(t.scratch);
    x_ = w;
    w += c_ * d_;
    phi_k_ = w;
    w += c_ * f_;
    v1_ = w;
    w += c_ * (d_ + 1);
    phi_q_ = w;
    w += c_ * f_;
    a_ = w;
    w += c_ * c_;
    o_ = w;
    w += c_ * (d_ + 1);
    state_ = w;
    query_scale_ = std::sqrt(t.call->shape.scale);
  }

  void run() {
    Map state(state_, f_, d_ + 1);
    if (t_.state && t_.continue_state)
      load_state();
    else
      state.setZero();
    if (performer_) key_stabiliser_ = key_stabiliser();
    const int64_t lq = t_.span.q_len, lk = t_.span.k_len;
    if (t_.call->causal) {
      for (int64_t n0 = 0; n0 < lq; n0 += c_) causal_chunk(n0, std::min(c_, lq - n0));
    } else {
      for (int64_t n0 = 0; n0 < lk; n0 += c_) accumulate(load_keys(n0, std::min(c_, lk - n0)));
      for (int64_t n0 = 0; n0 < lq; n0 += c_)
        for (int64_t h = first_head(); h < first_head() + group(); ++h) {
          const int64_t cn = std::min(c_, lq - n0);
          load_query_features(h, n0, cn);
          Map(o_, cn, d_ + 1).noalias() = ConstMap(phi_q_, cn, f_) * state;
          write_out(h, n0, cn);
        }
    }
    if (t_.state) save_state();
  }

 private:
  int64_t group() const { return t_.call->shape.group_size(); }
  int64_t first_head() const { return t_.kv_head * group(); }

  void causal_chunk(int64_t n0, int64_t cn) {
    const int64_t valid = load_keys(n0, cn);
    Map state(state_, f_, d_ + 1);
    ConstMap phi_k(phi_k_, cn, f_), v1(v1_, cn, d_ + 1);
    // Eigen's triangular product multiplies the zeros above the diagonal by [V | 1] too, and
    // 0 x Inf = NaN: a later key's Inf/NaN would reach earlier rows of its chunk. When the chunk
    // holds one (rare; checked once per chunk), each row takes its own prefix instead.
    const bool finite = phi_k.allFinite() && v1.allFinite();
    for (int64_t h = first_head(); h < first_head() + group(); ++h) {
      load_query_features(h, n0, cn);
      ConstMap phi_q(phi_q_, cn, f_);
      Map o(o_, cn, d_ + 1), a(a_, cn, cn);
      o.noalias() = phi_q * state;
      a.noalias() = phi_q * phi_k.transpose();
      if (finite)
        o.noalias() += a.template triangularView<Eigen::Lower>() * v1;
      else
        for (int64_t i = 0; i < cn; ++i)
          o.row(i).noalias() += a.row(i).head(i + 1) * v1.topRows(i + 1);
      write_out(h, n0, cn);
    }
    accumulate(valid);
  }

  // [S | z] += phi(K)^T [V | 1] over the chunk's valid (non-padding) keys.
  void accumulate(int64_t valid) {
    if (valid == 0) return;
    Map(state_, f_, d_ + 1).noalias() +=
        ConstMap(phi_k_, valid, f_).transpose() * ConstMap(v1_, valid, d_ + 1);
  }

  // Loads keys n0..n0+cn-1 into phi(K) and [V | 1]; rows past the valid keys are zero (padding
  // weighs nothing, and its memory, maybe NaN, is never read). Returns the valid count.
  int64_t load_keys(int64_t n0, int64_t cn) {
    const int64_t valid = std::max<int64_t>(0, std::min(cn, t_.span.k_len - n0));
    load_rows(p_.k, t_.span.k_start, n0, valid, t_.kv_head, 1.0f, x_);
    features(valid, /*query=*/false, phi_k_);
    const T* vbase = p_.v.ptr<const T>();
    for (int64_t r = 0; r < cn; ++r) {
      float* dst = v1_ + r * (d_ + 1);
      if (r < valid) {
        const T* src = vbase + row_offset(p_.v, t_.call->shape.varlen, t_.b, t_.span.k_start,
                                          n0 + r, t_.kv_head);
        for (int64_t c = 0; c < d_; ++c) dst[c] = to_float(src[c]);
        dst[d_] = 1.0f;
      } else {
        std::fill(dst, dst + d_ + 1, 0.0f);
        std::fill(phi_k_ + r * f_, phi_k_ + (r + 1) * f_, 0.0f);
      }
    }
    return valid;
  }

  void load_query_features(int64_t h, int64_t n0, int64_t cn) {
    load_rows(p_.q, t_.span.q_start, n0, cn, h, 1.0f, x_);
    features(cn, /*query=*/true, phi_q_);
  }

  void load_rows(const TensorView& view, int64_t start, int64_t first, int64_t count, int64_t head,
                 float scale, float* dst) const {
    const T* base = view.ptr<const T>();
    for (int64_t r = 0; r < count; ++r) {
      const T* src = base + row_offset(view, t_.call->shape.varlen, t_.b, start, first + r, head);
      for (int64_t c = 0; c < d_; ++c) dst[r * d_ + c] = to_float(src[c]) * scale;
    }
  }

  // phi of the n rows in x_ into dst [n, F].
  void features(int64_t n, bool query, float* dst) {
    if (n == 0) return;
    if (!performer_) {
      Eigen::Map<const Eigen::ArrayXf> x(x_, n * d_);
      Eigen::Map<Eigen::ArrayXf> phi(dst, n * d_);
      // elu(x) + 1 = max(x, 0) + exp(min(x, 0)), branch-free so Eigen vectorises the exp.
      phi = x.max(0.0f) + x.min(0.0f).exp();
      return;
    }
    projections(n, dst);
    const float norm = 1.0f / std::sqrt(static_cast<float>(f_));
    for (int64_t r = 0; r < n; ++r) {
      Eigen::Map<Eigen::ArrayXf> a(dst + r * f_, f_);
      const float half_sq =
          0.5f * ConstMap(x_ + r * d_, 1, d_).squaredNorm() * query_scale_ * query_scale_;
      const float c = query ? a.maxCoeff() : key_stabiliser_;
      a = ((a - (half_sq + c)).exp() + kPerformerEpsilon) * norm;
    }
  }

  // a = x' omega^T for the n rows in x_, with x' = sqrt(scale) x.
  void projections(int64_t n, float* dst) const {
    Map(dst, n, f_).noalias() =
        (ConstMap(x_, n, d_) * query_scale_) * ConstMap(t_.omega, f_, d_).transpose();
  }

  // The Performer's key stabiliser: max over the call's valid keys of omega_r . k'.
  float key_stabiliser() {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t n0 = 0; n0 < t_.span.k_len; n0 += c_) {
      const int64_t cn = std::min(c_, t_.span.k_len - n0);
      load_rows(p_.k, t_.span.k_start, n0, cn, t_.kv_head, 1.0f, x_);
      projections(cn, phi_k_);
      // Finite projections only: a key's Inf or NaN must not reach rows that do not see it (the
      // stabiliser is shared by every row).
      const auto a = ConstMap(phi_k_, cn, f_).array();
      mx = std::max(mx, a.isFinite().select(a, -std::numeric_limits<float>::infinity()).maxCoeff());
    }
    return std::isfinite(mx) ? mx : 0.0f;
  }

  void write_out(int64_t h, int64_t n0, int64_t cn) const {
    T* base = p_.out.ptr<T>();
    const float eps = t_.config->eps;
    for (int64_t r = 0; r < cn; ++r) {
      T* dst = base + row_offset(p_.out, t_.call->shape.varlen, t_.b, t_.span.q_start, n0 + r, h);
      const float* o = o_ + r * (d_ + 1);
      const float den = o[d_] + eps;
      // No key at all (den == 0 with eps 0): output 0, never NaN. A NaN den (the row saw a NaN)
      // stays NaN.
      const float inv = den == 0.0f ? 0.0f : 1.0f / den;
      for (int64_t c = 0; c < d_; ++c) store(dst + c, o[c] * inv);
    }
  }

  void load_state() {
    const TensorView& s = t_.state->s;
    const TensorView& z = t_.state->z;
    for (int64_t r = 0; r < f_; ++r) {
      const float* src = s.ptr<const float>() + s.offset(t_.b, t_.kv_head, r);
      std::copy(src, src + d_, state_ + r * (d_ + 1));
      state_[r * (d_ + 1) + d_] = z.ptr<const float>()[z.offset(t_.b, t_.kv_head, r)];
    }
  }

  void save_state() const {
    const TensorView& s = t_.state->s;
    const TensorView& z = t_.state->z;
    for (int64_t r = 0; r < f_; ++r) {
      const float* src = state_ + r * (d_ + 1);
      std::copy(src, src + d_, s.ptr<float>() + s.offset(t_.b, t_.kv_head, r));
      z.ptr<float>()[z.offset(t_.b, t_.kv_head, r)] = src[d_];
    }
  }

  const LinearTask& t_;
  const AttentionParams& p_;
  const int64_t c_, f_, d_;
  const bool performer_;
  float query_scale_ = 1.0f;
  float key_stabiliser_ = 0.0f;
  float *x_, *phi_k_, *v1_, *phi_q_, *a_, *o_, *state_;
};

}  // namespace

void linear_run(const LinearTask& task) {
  switch (task.params->q.dtype) {
    case DType::kF32: HeadRunner<float>(task).run(); break;
    case DType::kF16: HeadRunner<half>(task).run(); break;
    case DType::kBF16: HeadRunner<bfloat16>(task).run(); break;
    default: break;  // validate() allows floating dtypes only
  }
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS

namespace qwen3vl::detail {
QWEN3VL_DEFINE_ISA_TABLE(LinearKernels, &cpu::QWEN3VL_ISA_NS::linear_run)
}  // namespace qwen3vl::detail
