// Wall-clock timing helpers shared by the benchmarks: per-call milliseconds, their median, and
// the median of repeated calls after a warm-up.
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

// The median milliseconds of `reps` calls after `warmups` untimed ones.
template <class F>
double median_ms(int reps, F&& call, int warmups = 1) {
  for (int w = 0; w < warmups; ++w) call();
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) samples.push_back(wall_ms(call));
  return median(samples);
}

}  // namespace qwen3vl::bench
