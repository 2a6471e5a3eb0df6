// Overflow-free int64 arithmetic for sizes, element offsets and mask bounds. Caller-given values
// (shapes, strides, window bounds) can be anything an int64 holds, so products and sums built from
// them are either checked (false on overflow) or saturate at the int64 limits.
#pragma once

#include <cstdint>

#include "qwen3vl/core/macros.hpp"

namespace qwen3vl {

// *r = a + b; false (and *r untouched) when the sum does not fit in int64.
QWEN3VL_HOST_DEVICE inline bool checked_add(int64_t a, int64_t b, int64_t* r) {
  if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return false;
  *r = a + b;
  return true;
}

// *r = a * b; false (and *r untouched) when the product does not fit in int64.
QWEN3VL_HOST_DEVICE inline bool checked_mul(int64_t a, int64_t b, int64_t* r) {
  if (a == 0 || b == 0) {
    *r = 0;
    return true;
  }
  if (a == -1) {
    if (b == INT64_MIN) return false;
    *r = -b;
    return true;
  }
  if (b == -1) {
    if (a == INT64_MIN) return false;
    *r = -a;
    return true;
  }
  // Now |a|, |b| >= 1 and neither is -1: the quotient test is exact (truncating division).
  const int64_t p_max = (a > 0) == (b > 0) ? INT64_MAX : INT64_MIN;
  if ((a > 0) == (b > 0) ? (a > 0 ? a > p_max / b : a < p_max / b)
                         : (a > 0 ? b < p_max / a : a < p_max / b))
    return false;
  *r = a * b;
  return true;
}

// a + b clamped to [INT64_MIN, INT64_MAX].
QWEN3VL_HOST_DEVICE inline int64_t saturating_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (checked_add(a, b, &r)) return r;
  return b > 0 ? INT64_MAX : INT64_MIN;
}

// a - b clamped to [INT64_MIN, INT64_MAX].
QWEN3VL_HOST_DEVICE inline int64_t saturating_sub(int64_t a, int64_t b) {
  if (b == INT64_MIN) return a >= 0 ? INT64_MAX : a - b;  // a - INT64_MIN fits only for a < 0
  return saturating_add(a, -b);
}

}  // namespace qwen3vl
