// Accuracy of the vectorised exp, exp2 and tanh of every ISA build this machine runs, measured
// against the float64 functions of <cmath> on a dense grid (every result is printed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "src/cpu/kernels.hpp"

namespace qwen3vl {
namespace {

using detail::VectorOp;

std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512})
    if (cpu_isa_compiled(isa) && cpu_supports(CpuInfo::current(), isa)) isas.push_back(isa);
  return isas;
}

std::vector<float> grid(float lo, float hi, int n) {
  std::vector<float> x(static_cast<size_t>(n) + 1);  // odd length: the tail path runs too
  for (int i = 0; i <= n; ++i)
    x[static_cast<size_t>(i)] = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n);
  return x;
}

std::vector<float> apply(CpuIsa isa, VectorOp op, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  detail::isa_table<detail::VectorMathKernels>(isa).apply(op, x.data(), y.data(),
                                                          static_cast<int64_t>(x.size()));
  return y;
}

// Largest |got - want| / |want| over the grid, in units of 2^-23 (one fp32 ulp at 1.0).
template <class Exact>
double max_ulps(CpuIsa isa, VectorOp op, const std::vector<float>& x, Exact exact) {
  const std::vector<float> y = apply(isa, op, x);
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = exact(static_cast<double>(x[i]));
    const double err = std::fabs(y[i] - want) / std::fabs(want);
    worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : std::max(worst, err);
  }
  return worst / std::ldexp(1.0, -23);
}

TEST(VectorMath, ExpAndExp2AreWithinAFewUlps) {
  // exp over its normal range (results in [2^-126, 2^127.5]), exp2 likewise, tanh everywhere.
  const std::vector<float> xe = grid(-87.0f, 88.0f, 2000001);
  const std::vector<float> x2 = grid(-126.0f, 127.0f, 2000001);
  const std::vector<float> xs = grid(-2.0f, 2.0f, 400001);
  const std::vector<float> xt = grid(-12.0f, 12.0f, 400001);
  for (CpuIsa isa : runnable_isas()) {
    const double e = max_ulps(isa, VectorOp::kExp, xe, [](double v) { return std::exp(v); });
    const double e2 = max_ulps(isa, VectorOp::kExp2, x2, [](double v) { return std::exp2(v); });
    const double es = max_ulps(isa, VectorOp::kExp, xs, [](double v) { return std::exp(v); });
    const double t = max_ulps(isa, VectorOp::kTanh, xt, [](double v) { return std::tanh(v); });
    std::printf(
        "[%s] max relative error vs float64 <cmath>: exp %.2f ulp (|x| <= 2: %.2f), "
        "exp2 %.2f ulp, tanh %.2f ulp (1 ulp = 2^-23 = 1.19e-7)\n",
        to_string(isa), e, es, e2, t);
    EXPECT_LE(e, 3.0) << to_string(isa);
    EXPECT_LE(es, 3.0) << to_string(isa);
    EXPECT_LE(e2, 3.0) << to_string(isa);
    EXPECT_LE(t, 4.0) << to_string(isa);
  }
}

TEST(VectorMath, EdgeValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {
      0.0f, -inf, inf, std::numeric_limits<float>::quiet_NaN(), -200.0f, 200.0f, 1.0f, -1.0f, 0.5f};
  for (CpuIsa isa : runnable_isas()) {
    const std::vector<float> e2 = apply(isa, VectorOp::kExp2, x);
    const std::vector<float> e = apply(isa, VectorOp::kExp, x);
    const std::vector<float> t = apply(isa, VectorOp::kTanh, x);
    EXPECT_EQ(e2[0], 1.0f);  // exactly: the softmax's row maximum gets weight 1
    EXPECT_EQ(e[0], 1.0f);
    EXPECT_EQ(e2[1], 0.0f);  // masked scores vanish
    EXPECT_EQ(e[1], 0.0f);
    EXPECT_EQ(e2[2], inf);
    EXPECT_EQ(e[2], inf);
    EXPECT_TRUE(std::isnan(e2[3]) && std::isnan(e[3]) && std::isnan(t[3])) << to_string(isa);
    EXPECT_EQ(e2[4], 0.0f);
    EXPECT_EQ(e2[5], inf);
    EXPECT_EQ(e2[6], 2.0f);
    EXPECT_EQ(e2[7], 0.5f);
    EXPECT_EQ(t[0], 0.0f);
    EXPECT_EQ(t[1], -1.0f);
    EXPECT_EQ(t[2], 1.0f);
    EXPECT_EQ(t[5], 1.0f);
  }
}

}  // namespace
}  // namespace qwen3vl
