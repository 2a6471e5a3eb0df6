// Wall-clock timing helpers shared by the benchmarks: per-call milliseconds and their median.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace qwen3vl::bench {

// Milliseconds `call()` takes, once.
template <class F>
double wall_ms(F&& call) {
  const auto start = std::chrono::steady_clock::now();
  call();
  const auto stop = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(stop - start).count();
}

// The median of the samples (the mean of the middle two for an even count); 0 when empty.
inline double median(std::vector<double> samples) {
  if (samples.empty()) return 0.0;
  std::sort(samples.begin(), samples.end());
  const size_t mid = samples.size() / 2;
  return samples.size() % 2 ? samples[mid] : 0.5 * (samples[mid - 1] + samples[mid]);
}

}  // namespace qwen3vl::bench
