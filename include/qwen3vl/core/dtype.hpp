// Storage dtypes (f32 / f16 / bf16 and int32 metadata) and exact float conversions.
// Arithmetic is always fp32: f16 and bf16 are storage formats only.
#pragma once

#include <cstdint>
#include <cstring>

#include "qwen3vl/core/macros.hpp"

namespace qwen3vl {

// kU8: raw bytes (the codes of a compressed KV cache format, kv_cache/kv_format.hpp).
enum class DType : uint8_t { kF32, kF16, kBF16, kI32, kU8 };

QWEN3VL_HOST_DEVICE inline constexpr int64_t size_of(DType t) {
  return t == DType::kU8 ? 1 : t == DType::kF16 || t == DType::kBF16 ? 2 : 4;
}

inline const char* to_string(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kI32: return "i32";
    case DType::kU8: return "u8";
  }
  return "?";
}

inline constexpr bool is_floating(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16;
}

// IEEE binary16 and bfloat16 storage: plain 16-bit patterns, converted explicitly.
struct half {
  uint16_t bits;
};
struct bfloat16 {
  uint16_t bits;
};

namespace detail {
QWEN3VL_HOST_DEVICE inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
QWEN3VL_HOST_DEVICE inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace detail

QWEN3VL_HOST_DEVICE inline float to_float(float x) { return x; }

QWEN3VL_HOST_DEVICE inline float to_float(bfloat16 x) {
  return detail::bits_float(static_cast<uint32_t>(x.bits) << 16);
}

QWEN3VL_HOST_DEVICE inline float to_float(half x) {
  const uint32_t sign = static_cast<uint32_t>(x.bits & 0x8000u) << 16;
  const uint32_t exp = (x.bits >> 10) & 0x1fu;
  uint32_t mant = x.bits & 0x3ffu;
  if (exp == 0x1f) return detail::bits_float(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp != 0) return detail::bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return detail::bits_float(sign);  // signed zero
  // Subnormal half: value = mant * 2^-24, exact in fp32.
  const float magnitude = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return sign ? -magnitude : magnitude;
}

// float -> bfloat16, round to nearest even; NaN stays a (quiet) NaN.
QWEN3VL_HOST_DEVICE inline bfloat16 to_bf16(float f) {
  uint32_t u = detail::float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bfloat16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bfloat16{static_cast<uint16_t>(u >> 16)};
}

// float -> IEEE half, round to nearest even, overflow to inf, gradual underflow to subnormals.
QWEN3VL_HOST_DEVICE inline half to_half(float f) {
  const uint32_t u = detail::float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return half{static_cast<uint16_t>(sign | 0x7e00u)};  // NaN
  if (abs >= 0x477ff000u)
    return half{static_cast<uint16_t>(sign | 0x7c00u)};  // rounds to >= 65520: inf
  if (abs >= 0x38800000u) {                              // normal half
    const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return half{static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
  }
  if (abs < 0x33000000u) return half{sign};  // below half of the smallest subnormal: zero
  // Subnormal: shift the full 24-bit significand right, rounding to nearest even.
  const uint32_t exp = abs >> 23;
  const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - exp;  // 14..24 so that the result is mant * 2^-24 units
  const uint32_t halfway = 1u << (shift - 1);
  const uint32_t rest = mant & ((1u << shift) - 1u);
  uint32_t q = mant >> shift;
  if (rest > halfway || (rest == halfway && (q & 1u))) ++q;
  return half{static_cast<uint16_t>(sign | q)};
}

// Storage type <-> dtype tag, and a uniform store helper for templated kernels.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::kF32;
};
template <>
struct dtype_of<half> {
  static constexpr DType value = DType::kF16;
};
template <>
struct dtype_of<bfloat16> {
  static constexpr DType value = DType::kBF16;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = DType::kI32;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = DType::kU8;
};

template <class T>
QWEN3VL_HOST_DEVICE inline T from_float(float x);
template <>
QWEN3VL_HOST_DEVICE inline float from_float<float>(float x) {
  return x;
}
template <>
QWEN3VL_HOST_DEVICE inline half from_float<half>(float x) {
  return to_half(x);
}
template <>
QWEN3VL_HOST_DEVICE inline bfloat16 from_float<bfloat16>(float x) {
  return to_bf16(x);
}

}  // namespace qwen3vl
