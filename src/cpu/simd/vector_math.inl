// Vectorised exp2, exp and tanh over an ISA's traits (Simd by default, or Simd4: see simd.hpp);
// included by simd.hpp. The one exponential of the hand-written kernels (the Eigen-based ones,
// standard and linear, use Eigen's).
//
// exp2(x) = 2^n * 2^f with n = round(x), f = x - n in [-0.5, 0.5] (exact), and 2^f from a degree-6
// polynomial (Cephes exp2f's coefficients, 1.6e-8 relative on [-0.5, 0.5]: of the two sets the
// kernels had, the one that rounds wrongly less often over every fp32 f there; both stay within
// 0.67 ulp). exp(x) reduces x * log2(e) the same way but computes f from x - n ln2 in two parts
// (Cody-Waite), which keeps f exact enough for large |x|.
// Results below 2^-126.5 flush to 0 (so a masked score, -inf, weighs exactly 0) and results above
// 2^127.5 give +inf; NaN stays NaN.
#pragma once

#ifndef QWEN3VL_ISA_NS
#error "define QWEN3VL_ISA_NS before including vector_math.inl"
#endif

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS::vmath {

// 2^f for f in [-0.5, 0.5]: 1 + f * q(f), so 2^0 is exactly 1.
template <class S = Simd>
inline typename S::V pow2_fraction(typename S::V f) {
  typename S::V p = S::set1(1.535336188319500e-4f);
  p = S::fma(p, f, S::set1(1.339887440266574e-3f));
  p = S::fma(p, f, S::set1(9.618437357674640e-3f));
  p = S::fma(p, f, S::set1(5.550332471162809e-2f));
  p = S::fma(p, f, S::set1(2.402264791363012e-1f));
  p = S::fma(p, f, S::set1(6.931472028550421e-1f));
  return S::fma(p, f, S::set1(1.0f));
}

// exp2 where x <= 0 or NaN (the softmax weights, exp2(score - running max)): exp2 without its
// clamp from above, which only x > 128 needs (one instruction less in the kernels' hottest loops).
template <class S = Simd>
inline typename S::V exp2_nonpositive(typename S::V x) {
  x = S::max(S::set1(-127.0f), x);  // the constant first: a NaN x passes through
  const typename S::V n = S::round(x);
  return S::mul(pow2_fraction<S>(S::sub(x, n)), S::pow2i(n));
}

template <class S = Simd>
inline typename S::V exp2(typename S::V x) {
  return exp2_nonpositive<S>(S::min(S::set1(128.0f), x));
}

template <class S = Simd>
inline typename S::V exp(typename S::V x) {
  x = S::min(S::set1(88.72283935546875f), S::max(S::set1(-88.02969360351562f), x));
  const typename S::V n = S::round(S::mul(x, S::set1(1.44269504088896341f)));
  typename S::V r = S::fnma(n, S::set1(0.693145751953125f), x);  // ln2 high part: n * it is exact
  r = S::fnma(n, S::set1(1.428606765330187e-06f), r);
  const typename S::V f = S::mul(r, S::set1(1.44269504088896341f));
  return S::mul(pow2_fraction<S>(f), S::pow2i(n));
}

// tanh: y + y^3 P(y^2) below |y| = 0.625 (fitted, 8.6e-9 relative), else 1 - 2 / (e^{2|y|} + 1).
template <class S = Simd>
inline typename S::V tanh(typename S::V y) {
  using V = typename S::V;
  const V a = S::abs(y);
  const V z = S::mul(y, y);
  V p = S::set1(-5.705000833e-03f);
  p = S::fma(p, z, S::set1(2.063910104e-02f));
  p = S::fma(p, z, S::set1(-5.373971909e-02f));
  p = S::fma(p, z, S::set1(1.333144158e-01f));
  p = S::fma(p, z, S::set1(-3.333328068e-01f));
  const V small = S::fma(S::mul(y, z), p, y);
  const V e = exp<S>(S::add(a, a));
  const V large = S::sub(S::set1(1.0f), S::div(S::set1(2.0f), S::add(e, S::set1(1.0f))));
  return S::select(S::lt(a, S::set1(0.625f)), small, S::copysign(large, y));
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS::vmath
