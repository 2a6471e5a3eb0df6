// RoPE frequencies: inv_freq and the attention factor for every scaling type. Each is computed with
// the fp32 operation sequence of transformers' rope initialisation functions (modeling_rope_utils),
// so it equals transformers' inv_freq save torch's pow (<= 1 ulp in a few slots; enough to move a
// fp32 angle by ~2e-4 rad at position 262143). To match a checkpoint exactly, pass its own
// inv_freq (InvFreq) to compute_frequencies, the tables (table.hpp, vision.hpp) or the layers.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "qwen3vl/core/status.hpp"

namespace qwen3vl::rope {

enum class RopeScalingType : uint8_t {
  kDefault,  // inv_i = theta^(-2i/d)
  kLinear,   // position interpolation: inv_i / factor
  kNtk,      // static NTK-aware: theta' = theta * factor^(d/(d-2)) (not in transformers)
  kDynamic,  // dynamic NTK: theta' from the sequence length once it exceeds original_max_position
  kYarn,     // YaRN ramp between interpolation and extrapolation, with its attention factor
  kLlama3,   // llama 3.1 wavelength bands
};

inline const char* to_string(RopeScalingType t) {
  switch (t) {
    case RopeScalingType::kDefault: return "default";
    case RopeScalingType::kLinear: return "linear";
    case RopeScalingType::kNtk: return "ntk";
    case RopeScalingType::kDynamic: return "dynamic";
    case RopeScalingType::kYarn: return "yarn";
    case RopeScalingType::kLlama3: return "llama3";
  }
  return "?";
}

// transformers' rope_parameters, by name: factor, original_max_position_embeddings (for dynamic:
// the config's max_position_embeddings), beta_fast, beta_slow, mscale, mscale_all_dim,
// attention_factor, truncate, low_freq_factor, high_freq_factor.
struct RopeScaling {
  RopeScalingType type = RopeScalingType::kDefault;
  double factor = 1.0;
  int64_t original_max_position = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;  // yarn: with mscale_all_dim (both non-zero) sets the factor ratio
  double mscale_all_dim = 0.0;
  double attention_factor = 0.0;  // yarn: > 0 overrides the computed attention factor
  bool truncate = true;           // yarn: floor/ceil the correction range
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;
};

struct RopeConfig {
  int64_t head_dim = 128;
  int64_t rotary_dim = 0;  // 0: head_dim; else the first rotary_dim dims rotate (partial rotary)
  double theta = 10000.0;
  RopeScaling scaling;

  int64_t rotary() const { return rotary_dim > 0 ? rotary_dim : head_dim; }
};

struct RopeFrequencies {
  std::vector<float> inv_freq;       // rotary / 2 entries
  std::vector<double> inv_freq_f64;  // the same frequencies in float64, only when given so
                                     // (InvFreq::f64); empty otherwise
  double attention_factor = 1.0;     // multiplies cos and sin (YaRN); 1 otherwise
};

// A checkpoint's own frequencies, used as given instead of the ones computed from the config:
// transformers' `rotary_emb.inv_freq` buffer (fp32), or frequencies in float64. Set at most one;
// both empty computes them from the config. torch's powf can differ from the correctly rounded
// power by 1 ulp, which moves a fp32 angle by up to ~2e-4 rad at position 262143: passing the
// checkpoint's buffer makes the transformers-fp32 recipe match transformers at every position.
struct InvFreq {
  std::vector<float> f32;
  std::vector<double> f64;

  bool empty() const { return f32.empty() && f64.empty(); }
};

[[nodiscard]] inline Status validate(const RopeConfig& c) {
  if (c.head_dim < 2 || c.head_dim > 512)
    return make_error(StatusCode::kInvalidArgument, "rope head_dim = ", c.head_dim,
                      ": allowed 2..512");
  const int64_t r = c.rotary();
  if (r < 2 || r > c.head_dim || r % 2 != 0)
    return make_error(StatusCode::kInvalidArgument, "rope rotary_dim = ", c.rotary_dim,
                      ": allowed 0 (= head_dim) or an even number in 2..head_dim (", c.head_dim,
                      ")");
  if (!(c.theta > 1.0) || !std::isfinite(c.theta))
    return make_error(StatusCode::kInvalidArgument, "rope theta = ", c.theta, ": allowed > 1");
  const RopeScaling& s = c.scaling;
  if (s.type != RopeScalingType::kDefault && (!(s.factor > 0.0) || !std::isfinite(s.factor)))
    return make_error(StatusCode::kInvalidArgument, "rope scaling factor = ", s.factor,
                      ": allowed > 0 for ", to_string(s.type), " scaling");
  const bool needs_l0 = s.type == RopeScalingType::kDynamic || s.type == RopeScalingType::kYarn ||
                        s.type == RopeScalingType::kLlama3;
  if (needs_l0 && s.original_max_position <= 0)
    return make_error(StatusCode::kInvalidArgument,
                      "rope scaling original_max_position = ", s.original_max_position,
                      ": allowed > 0 for ", to_string(s.type), " scaling");
  if (s.type == RopeScalingType::kLlama3 &&
      !(s.high_freq_factor > s.low_freq_factor && s.low_freq_factor > 0))
    return make_error(StatusCode::kInvalidArgument,
                      "rope llama3 high_freq_factor = ", s.high_freq_factor,
                      ", low_freq_factor = ", s.low_freq_factor, ": allowed high > low > 0");
  if (s.type == RopeScalingType::kYarn && !(s.beta_fast > 0 && s.beta_slow > 0))
    return make_error(StatusCode::kInvalidArgument, "rope yarn beta_fast = ", s.beta_fast,
                      ", beta_slow = ", s.beta_slow, ": allowed > 0");
  return Status();
}

namespace detail {

// base^(2i/dim) as torch computes it: the exponent divided in fp32, the power rounded to fp32
// (torch's own powf may differ from this correctly rounded value by 1 ulp).
inline float rope_base_power(float base, int64_t i, int64_t dim) {
  const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
  return static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
}

inline std::vector<float> default_inv_freq(double theta, int64_t dim) {
  std::vector<float> inv(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i)
    inv[static_cast<size_t>(i)] = 1.0f / rope_base_power(static_cast<float>(theta), i, dim);
  return inv;
}

inline double yarn_mscale(double scale, double m) {
  return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

inline double yarn_correction_dim(double rotations, int64_t dim, double base, double l0) {
  const double two_pi = 6.283185307179586;
  return static_cast<double>(dim) * std::log(l0 / (rotations * two_pi)) / (2.0 * std::log(base));
}

inline void yarn(const RopeConfig& c, int64_t dim, RopeFrequencies* out) {
  const RopeScaling& s = c.scaling;
  const float factor = static_cast<float>(s.factor);
  double low =
      yarn_correction_dim(s.beta_fast, dim, c.theta, static_cast<double>(s.original_max_position));
  double high =
      yarn_correction_dim(s.beta_slow, dim, c.theta, static_cast<double>(s.original_max_position));
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = low > 0.0 ? low : 0.0;
  high = high < static_cast<double>(dim - 1) ? high : static_cast<double>(dim - 1);
  if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp
  const float low_f = static_cast<float>(low), width = static_cast<float>(high - low);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float pos = rope_base_power(static_cast<float>(c.theta), i, dim);
    const float extrapolation = 1.0f / pos;
    const float scaled = factor * pos;
    const float interpolation = 1.0f / scaled;
    float ramp = (static_cast<float>(i) - low_f) / width;
    ramp = ramp < 0.0f ? 0.0f : (ramp > 1.0f ? 1.0f : ramp);
    const float extrapolation_weight = 1.0f - ramp;
    const float interpolation_weight = 1.0f - extrapolation_weight;
    const float a = interpolation * interpolation_weight;  // separate statements: no contraction
    const float b = extrapolation * extrapolation_weight;
    out->inv_freq[static_cast<size_t>(i)] = a + b;
  }
  if (s.attention_factor > 0.0)
    out->attention_factor = s.attention_factor;
  else if (s.mscale != 0.0 && s.mscale_all_dim != 0.0)
    out->attention_factor =
        yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
  else
    out->attention_factor = yarn_mscale(s.factor, 1.0);
}

inline void llama3(const RopeConfig& c, RopeFrequencies* out) {
  const RopeScaling& s = c.scaling;
  const double l0 = static_cast<double>(s.original_max_position);
  const float low_wavelen = static_cast<float>(l0 / s.low_freq_factor);
  const float high_wavelen = static_cast<float>(l0 / s.high_freq_factor);
  const float factor = static_cast<float>(s.factor), two_pi = static_cast<float>(6.283185307179586);
  const float low_f = static_cast<float>(s.low_freq_factor);
  const float band = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
  for (float& inv : out->inv_freq) {
    const float wavelen =
        (1.0f / inv) * two_pi;  // torch evaluates 2*pi / x as reciprocal(x) * 2*pi
    const float base = wavelen > low_wavelen ? inv / factor : inv;
    const float ratio = (1.0f / wavelen) * static_cast<float>(l0);
    const float smooth = (ratio - low_f) / band;
    const float a = ((1.0f - smooth) * base) / factor;
    const float b = smooth * base;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    inv = medium ? a + b : base;
  }
}

}  // namespace detail

// inv_freq and attention factor for `config`. `seq_len` matters only for dynamic NTK (transformers
// passes max(position) + 1; below original_max_position the unscaled frequencies are returned).
[[nodiscard]] inline Status compute_frequencies(const RopeConfig& config, int64_t seq_len,
                                                RopeFrequencies* out);

// The same, with the frequencies a checkpoint gives (`given`, rotary / 2 entries, finite, >= 0)
// replacing the computed ones when it is not empty; the attention factor still comes from `config`
// (YaRN). Given f64 frequencies fill inv_freq_f64, and inv_freq with their fp32 rounding.
[[nodiscard]] inline Status compute_frequencies(const RopeConfig& config, int64_t seq_len,
                                                const InvFreq& given, RopeFrequencies* out) {
  QWEN3VL_RETURN_IF_ERROR(compute_frequencies(config, seq_len, out));
  if (given.empty()) return Status();
  if (!given.f32.empty() && !given.f64.empty())
    return make_error(StatusCode::kInvalidArgument, "rope inv_freq: f32 (", given.f32.size(),
                      " entries) and f64 (", given.f64.size(), " entries) both set: allowed one");
  const size_t half = out->inv_freq.size();
  const size_t n = given.f32.empty() ? given.f64.size() : given.f32.size();
  if (n != half)
    return make_error(StatusCode::kShapeMismatch, "rope inv_freq.size() = ", n,
                      ": must equal rotary_dim / 2 = ", half);
  for (size_t i = 0; i < n; ++i) {
    const double f = given.f32.empty() ? given.f64[i] : double{given.f32[i]};
    if (!std::isfinite(f) || f < 0.0)
      return make_error(StatusCode::kInvalidArgument, "rope inv_freq[", i, "] = ", f,
                        ": allowed finite and >= 0");
  }
  out->inv_freq_f64 = given.f64;
  if (given.f32.empty()) {
    for (size_t i = 0; i < n; ++i) out->inv_freq[i] = static_cast<float>(given.f64[i]);
  } else {
    out->inv_freq = given.f32;
  }
  return Status();
}

inline Status compute_frequencies(const RopeConfig& config, int64_t seq_len, RopeFrequencies* out) {
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  const int64_t dim = config.rotary();
  const RopeScaling& s = config.scaling;
  out->attention_factor = 1.0;
  out->inv_freq_f64.clear();
  switch (s.type) {
    case RopeScalingType::kDefault:
      out->inv_freq = detail::default_inv_freq(config.theta, dim);
      break;
    case RopeScalingType::kLinear:
      out->inv_freq = detail::default_inv_freq(config.theta, dim);
      for (float& f : out->inv_freq) f = f / static_cast<float>(s.factor);
      break;
    case RopeScalingType::kNtk: {
      const double exponent = static_cast<double>(dim) / static_cast<double>(dim - 2);
      out->inv_freq = detail::default_inv_freq(config.theta * std::pow(s.factor, exponent), dim);
      break;
    }
    case RopeScalingType::kDynamic: {
      if (seq_len < 0)
        return make_error(StatusCode::kInvalidArgument, "rope dynamic seq_len = ", seq_len,
                          ": allowed >= 0");
      const double l0 = static_cast<double>(s.original_max_position);
      const double len = static_cast<double>(
          seq_len > s.original_max_position ? seq_len : s.original_max_position);
      const double exponent = static_cast<double>(dim) / static_cast<double>(dim - 2);
      const double theta =
          config.theta * std::pow(s.factor * len / l0 - (s.factor - 1.0), exponent);
      out->inv_freq = detail::default_inv_freq(theta, dim);
      break;
    }
    case RopeScalingType::kYarn:
      out->inv_freq.assign(static_cast<size_t>(dim / 2), 0.0f);
      detail::yarn(config, dim, out);
      break;
    case RopeScalingType::kLlama3:
      out->inv_freq = detail::default_inv_freq(config.theta, dim);
      detail::llama3(config, out);
      break;
  }
  return Status();
}

}  // namespace qwen3vl::rope
