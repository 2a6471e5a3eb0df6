// Seeded random fills for tests, benchmarks and examples. Not part of the umbrella header
// <qwen3vl/attention.hpp>, so the library API does not pull in <random>.
#pragma once

#include <cstdint>
#include <random>

#include "qwen3vl/core/tensor.hpp"

namespace qwen3vl {
namespace testing {

// Seeded uniform values in [lo, hi), stored in the tensor's dtype, element 0 first. The sequence
// (std::mt19937_64 fed to std::uniform_real_distribution<float>) is fixed: fixtures and seeded
// tests depend on it.
inline Tensor& fill_uniform(Tensor& t, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, dist(rng));
  return t;
}

}  // namespace testing
}  // namespace qwen3vl
