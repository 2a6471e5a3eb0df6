// Vectorised exp2, exp and tanh on top of an ISA's Simd traits; included by per-ISA translation
// units after they define QWEN3VL_ISA_NS and include their simd_<isa>.hpp.
//
// exp2(x) = 2^n * 2^f with n = round(x), f = x - n in [-0.5, 0.5] (exact), and 2^f from a degree-6
// polynomial fitted for relative error (1.6e-8 with these fp32 coefficients, below one ulp), so the
// result is within a few ulps of the exact value. exp(x) reduces x * log2(e) the same way but
// computes f from x - n ln2 in two parts (Cody-Waite), which keeps f exact enough for large |x|.
// Results below 2^-126.5 flush to 0 and results above 2^127.5 give +inf; NaN stays NaN.
#pragma once

#ifndef QWEN3VL_ISA_NS
#error "define QWEN3VL_ISA_NS before including vector_math.inl"
#endif

namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS::vmath {

using V = Simd::V;

// 2^f for f in [-0.5, 0.5]: 1 + f * q(f), so 2^0 is exactly 1.
inline V pow2_fraction(V f) {
  V p = Simd::set1(1.535335759e-04f);
  p = Simd::fma(p, f, Simd::set1(1.339887502e-03f));
  p = Simd::fma(p, f, Simd::set1(9.618437849e-03f));
  p = Simd::fma(p, f, Simd::set1(5.550332367e-02f));
  p = Simd::fma(p, f, Simd::set1(2.402264774e-01f));
  p = Simd::fma(p, f, Simd::set1(6.931471825e-01f));
  return Simd::fma(p, f, Simd::set1(1.0f));
}

inline V exp2(V x) {
  // max/min with the constant first: a NaN x passes through both.
  x = Simd::min(Simd::set1(128.0f), Simd::max(Simd::set1(-127.0f), x));
  const V n = Simd::round(x);
  return Simd::mul(pow2_fraction(Simd::sub(x, n)), Simd::pow2i(n));
}

inline V exp(V x) {
  x = Simd::min(Simd::set1(88.72283935546875f), Simd::max(Simd::set1(-88.02969360351562f), x));
  const V n = Simd::round(Simd::mul(x, Simd::set1(1.44269504088896341f)));
  V r = Simd::fnma(n, Simd::set1(0.693145751953125f), x);  // ln2 high part: n * it is exact
  r = Simd::fnma(n, Simd::set1(1.428606765330187e-06f), r);
  const V f = Simd::mul(r, Simd::set1(1.44269504088896341f));
  return Simd::mul(pow2_fraction(f), Simd::pow2i(n));
}

// tanh: y + y^3 P(y^2) below |y| = 0.625 (fitted, 8.6e-9 relative), else 1 - 2 / (e^{2|y|} + 1).
inline V tanh(V y) {
  const V a = Simd::abs(y);
  const V z = Simd::mul(y, y);
  V p = Simd::set1(-5.705000833e-03f);
  p = Simd::fma(p, z, Simd::set1(2.063910104e-02f));
  p = Simd::fma(p, z, Simd::set1(-5.373971909e-02f));
  p = Simd::fma(p, z, Simd::set1(1.333144158e-01f));
  p = Simd::fma(p, z, Simd::set1(-3.333328068e-01f));
  const V small = Simd::fma(Simd::mul(y, z), p, y);
  const V e = exp(Simd::add(a, a));
  const V large =
      Simd::sub(Simd::set1(1.0f), Simd::div(Simd::set1(2.0f), Simd::add(e, Simd::set1(1.0f))));
  return Simd::select(Simd::lt(a, Simd::set1(0.625f)), small, Simd::copysign(large, y));
}

}  // namespace qwen3vl::detail::cpu::QWEN3VL_ISA_NS::vmath
