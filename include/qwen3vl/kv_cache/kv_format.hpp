// Compressed KV cache formats and their codecs. A compressed cache keeps, for every (token, KV
// head) row of head_dim values, the row's codes (u8 storage, kv_code_bytes per row) and its f16
// scales (kv_scale_count per row), both caller-owned like the float storage. append encodes each
// row once (kv_encode_row); decode reads the codes directly. The dequantized value of a row is
// exact in fp32 (kv_decode_row): a code times an f16 scale.
//
//   kInt8      symmetric int8, one scale per row: x = code * scale, code in -127..127,
//              scale >= max|x| / 127. Per row (per token and head), not per block and channel:
//              a token is encoded once when appended and never again.
//   kInt4      symmetric 4-bit, one scale per group of 32 values: x = (code - 8) * scale, code in
//              0..15, scale >= max|x| / 7.5; head_dim a multiple of 32. Group g's 32 codes take
//              16 bytes: byte i holds value i in its low nibble and value i + 16 in its high one.
//   kFp8E4M3   fp8 e4m3 (OCP "e4m3fn": bias 7, largest 448, no infinity), one scale per row:
//              x = e4m3(code) * scale, scale >= max|x| / 448. Values below 2^-6 * scale (e4m3's
//              subnormal range) round to 0 or 2^-6 * scale, so the vector decoders never see a
//              subnormal code; the NaN codes 0x7f / 0xff are never written.
//
// A row holding an infinity or NaN gets a NaN scale (every value of the row then reads NaN, as
// the float caches would make the attention rows that see it NaN); scales saturate at 65504
// (f16's largest finite value).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/status.hpp"

namespace qwen3vl {

enum class KvFormat : uint8_t {
  kFloat,    // the storage dtype (f32, f16 or bf16; KvCacheConfig::dtype)
  kInt8,     // int8 codes, an f16 scale per (token, KV head)
  kInt4,     // 4-bit codes, an f16 scale per group of 32 values
  kFp8E4M3,  // fp8 e4m3 codes, an f16 scale per (token, KV head)
};

constexpr int64_t kKvInt4Group = 32;

inline const char* to_string(KvFormat f) {
  switch (f) {
    case KvFormat::kFloat: return "float";
    case KvFormat::kInt8: return "int8";
    case KvFormat::kInt4: return "int4";
    case KvFormat::kFp8E4M3: return "fp8e4m3";
  }
  return "?";
}

inline bool is_compressed(KvFormat f) { return f != KvFormat::kFloat; }

// "float", "int8", "int4", "fp8e4m3" (or "fp8").
inline Status parse_kv_format(const std::string& text, KvFormat* out) {
  for (KvFormat f : {KvFormat::kFloat, KvFormat::kInt8, KvFormat::kInt4, KvFormat::kFp8E4M3})
    if (text == to_string(f)) {
      *out = f;
      return Status();
    }
  if (text == "fp8") {
    *out = KvFormat::kFp8E4M3;
    return Status();
  }
  return make_error(StatusCode::kInvalidArgument, "kv format = '", text,
                    "': allowed float, int8, int4, fp8e4m3 (fp8)");
}

// Bytes of codes per (token, KV head) row; 0 for kFloat (its rows are head_dim dtype values).
inline int64_t kv_code_bytes(KvFormat f, int64_t head_dim) {
  return f == KvFormat::kInt4 ? head_dim / 2 : is_compressed(f) ? head_dim : 0;
}
// f16 scales per (token, KV head) row; 0 for kFloat.
inline int64_t kv_scale_count(KvFormat f, int64_t head_dim) {
  return f == KvFormat::kInt4 ? head_dim / kKvInt4Group : is_compressed(f) ? 1 : 0;
}

// A format value this build knows, and a head_dim it can encode. `name` names the argument.
inline Status check_kv_format(KvFormat f, int64_t head_dim, const char* name) {
  if (static_cast<unsigned>(f) > static_cast<unsigned>(KvFormat::kFp8E4M3))
    return make_error(StatusCode::kInvalidArgument, name, " = ", static_cast<int>(f),
                      ": allowed float, int8, int4, fp8e4m3");
  if (f == KvFormat::kInt4 && head_dim % kKvInt4Group != 0)
    return make_error(StatusCode::kInvalidArgument, name, " = int4 with head_dim ", head_dim,
                      ": int4 needs head_dim a multiple of ", kKvInt4Group, " (its groups)");
  return Status();
}

namespace detail {

// The smallest f16 s with s * levels >= amax (amax finite, >= 0), capped at 65504.
inline half kv_scale_for(float amax, float levels) {
  half s = to_half(amax / levels);
  if (s.bits >= 0x7bffu) return half{0x7bffu};
  if (to_float(s) * levels < amax) ++s.bits;  // positive halves order as their bits
  return s;
}

// e4m3 code of |y| <= 448 (no sign); tiny values round to 0 or 2^-6 (see the header comment).
inline uint8_t fp8_e4m3_magnitude(float y) {
  if (!(y >= 0x1p-7f)) return 0;
  if (y < 0x1p-6f) return 0x08;
  const uint32_t u = float_bits(y);
  const uint32_t rounded = u + 0x7ffffu + ((u >> 20) & 1u);  // to 3 mantissa bits, nearest even
  const uint32_t code = (rounded >> 20) - (120u << 3);       // exponent bias 127 -> 7
  return static_cast<uint8_t>(code > 0x7eu ? 0x7eu : code);
}

inline float fp8_e4m3_value(uint8_t code) {
  const uint32_t mag = code & 0x7fu;
  if (mag == 0x7fu) return NAN;
  const uint32_t e = mag >> 3, m = mag & 7u;
  const float v = e ? std::ldexp(static_cast<float>(8u + m), static_cast<int>(e) - 10)
                    : std::ldexp(static_cast<float>(m), -9);
  return code & 0x80u ? -v : v;
}

}  // namespace detail

// Encodes d values (head_dim; a multiple of 32 for kInt4) into codes and scales.
inline void kv_encode_row(KvFormat f, const float* x, int64_t d, uint8_t* codes, half* scales) {
  const int64_t group = f == KvFormat::kInt4 ? kKvInt4Group : d;
  for (int64_t g0 = 0; g0 < d; g0 += group) {
    float amax = 0.0f;
    bool finite = true;
    for (int64_t c = g0; c < g0 + group; ++c) {
      finite &= std::isfinite(x[c]);
      amax = std::fabs(x[c]) > amax ? std::fabs(x[c]) : amax;
    }
    const float levels = f == KvFormat::kInt8 ? 127.0f : f == KvFormat::kInt4 ? 7.5f : 448.0f;
    const half s = finite ? detail::kv_scale_for(amax, levels) : half{0x7e00u};
    scales[g0 / group] = s;
    const float sf = to_float(s);
    for (int64_t c = g0; c < g0 + group; ++c) {
      const float y = finite && sf > 0.0f ? x[c] / sf : 0.0f;
      if (f == KvFormat::kInt8) {
        const float n = std::nearbyint(y);
        codes[c] = static_cast<uint8_t>(static_cast<int8_t>(n > 127 ? 127 : n < -127 ? -127 : n));
      } else if (f == KvFormat::kInt4) {
        const float n = std::nearbyint(y) + 8.0f;
        const uint8_t q = static_cast<uint8_t>(n > 15 ? 15 : n < 0 ? 0 : n);
        const int64_t i = c - g0, byte = g0 / 2 + i % 16;
        codes[byte] = i < 16 ? static_cast<uint8_t>((codes[byte] & 0xf0u) | q)
                             : static_cast<uint8_t>((codes[byte] & 0x0fu) | (q << 4));
      } else {
        codes[c] = static_cast<uint8_t>((y < 0.0f ? 0x80u : 0u) |
                                        detail::fp8_e4m3_magnitude(std::fabs(y)));
      }
    }
  }
}

// The code value of element c (before the scale): int8's code, int4's code - 8, fp8's value.
inline float kv_code_value(KvFormat f, const uint8_t* codes, int64_t c) {
  if (f == KvFormat::kInt8) return static_cast<float>(static_cast<int8_t>(codes[c]));
  if (f == KvFormat::kInt4) {
    const int64_t g0 = c / kKvInt4Group * kKvInt4Group, i = c - g0;
    const uint8_t byte = codes[g0 / 2 + i % 16];
    return static_cast<float>(i < 16 ? byte & 15 : byte >> 4) - 8.0f;
  }
  return detail::fp8_e4m3_value(codes[c]);
}

// Element c of a row, dequantized (exact in fp32).
inline float kv_decode(KvFormat f, const uint8_t* codes, const half* scales, int64_t c) {
  const int64_t g = f == KvFormat::kInt4 ? c / kKvInt4Group : 0;
  return kv_code_value(f, codes, c) * to_float(scales[g]);
}

inline void kv_decode_row(KvFormat f, const uint8_t* codes, const half* scales, int64_t d,
                          float* out) {
  for (int64_t c = 0; c < d; ++c) out[c] = kv_decode(f, codes, scales, c);
}

// The query side of the integer Q.K path of int8 caches (CPU decode, DecodeParams::integer_qk):
// each (row, head) of q is quantized once per call to symmetric int8, q ~ code * scale with
// code = nearest(x / scale) in -127..127 and scale = max|x| / 127 (fp32, not rounded to f16).
// A row with an infinity or NaN gets a NaN scale (its scores are NaN, as in the float path's
// NaN propagation); an all-zero row gets scale 0. Returns the scale. Exposed so that tests can
// feed an oracle the same dequantized q (code * scale).
inline float kv_quantize_query(const float* x, int64_t d, int8_t* codes) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t c = 0; c < d; ++c) {
    finite &= std::isfinite(x[c]);
    amax = std::fabs(x[c]) > amax ? std::fabs(x[c]) : amax;
  }
  const float scale = finite ? amax / 127.0f : NAN;
  for (int64_t c = 0; c < d; ++c) {
    const float n = finite && scale > 0.0f ? std::nearbyint(x[c] / scale) : 0.0f;
    codes[c] = static_cast<int8_t>(n > 127 ? 127 : n < -127 ? -127 : n);
  }
  return scale;
}

}  // namespace qwen3vl
