// cos/sin tables for the apply kernels, and the per-slot lookup every kernel (CPU and CUDA) shares.
//
// Frequencies: inv_i per slot, fp32 (RopeTableSpec::inv_freq) or float64 (inv_freq_f64, e.g. a
// checkpoint's frequencies or theta^(-2i/d) evaluated in float64). What each mode is exact to:
//   kExact             cos/sin of p * inv_i with inv_i as given (fp32 widened exactly, or float64),
//                      product and cos/sin in float64, rounded once to fp32: within ~6e-8 of the
//                      true value for those frequencies at any position. With fp32 frequencies
//                      that is exact for the fp32 inv_i, not for theta^(-2i/d): the fp32 rounding
//                      of inv_i (relative <= 6e-8) moves the angle by p * inv_i * 6e-8, ~1e-2 rad
//                      at position 262143 (theta 5e6, D 128). Pass float64 frequencies for that.
//   kTransformersFp32  transformers' recipe: angle = fp32(fp32(inv_i) * fp32(p)), then cos/sin of
//                      that fp32 angle rounded to fp32 (torch's cosf/sinf: within 2 ulp of ours).
//                      Bit-for-bit transformers' angles only when inv_i is transformers' own fp32
//                      inv_freq (pass it: InvFreq); float64 frequencies are rounded to fp32 first,
//                      as transformers' .float() does. Its error against float64 angles grows with
//                      p: ~1.5e-2 rad at 262143.
// Layouts:
//   kFull   one row per position: [max_position, half] cos and sin (max_position * half * 8 bytes)
//   kSplit  two small tables: p = a * 2^k + b, lo[b] = (cos, sin)(b inv) and hi[a] = (cos, sin)
//           (a 2^k inv), each exact as kExact, combined by the angle-addition identity in fp32 with
//           fused multiply-adds: within ~2e-7 of kExact's value, independent of p. kExact only.
// The attention factor (YaRN) multiplies cos and sin; kSplit folds it into the lo table.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "qwen3vl/core/macros.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/rope/mrope.hpp"
#include "qwen3vl/rope/scaling.hpp"

namespace qwen3vl::rope {

enum class AngleRecipe : uint8_t { kExact, kTransformersFp32 };
enum class TableLayout : uint8_t { kFull, kSplit };

inline const char* to_string(AngleRecipe r) {
  return r == AngleRecipe::kExact ? "exact" : "transformers-fp32";
}
inline const char* to_string(TableLayout l) { return l == TableLayout::kFull ? "full" : "split"; }

// What kernels receive: plain pointers (host or device memory, per `device`), no ownership.
struct RopeTableView {
  TableLayout layout = TableLayout::kFull;
  AngleRecipe recipe = AngleRecipe::kExact;
  Device device = Device::kCPU;
  int32_t half = 0;            // frequency slots = rotary_dim / 2
  int32_t axes = 1;            // position axes (1 = plain RoPE, 2 = vision rows/cols, 3 = t/h/w)
  int32_t split_bits = 0;      // kSplit: k
  int64_t max_position = 0;    // positions allowed: [0, max_position)
  const float* cos = nullptr;  // kFull: [max_position, half]; kSplit: lo [2^k, half]
  const float* sin = nullptr;
  const float* cos_hi = nullptr;  // kSplit: [ceil(max_position / 2^k), half]
  const float* sin_hi = nullptr;
  const uint8_t* axis = nullptr;  // [half]: the position axis of each slot
};

namespace detail {

// cos and sin of slot i for a token whose positions are pos[0..axes). Explicit fused multiply-adds
// so that every compiler, host or device, rounds the same way. `Isa` is a tag of the calling
// kernel's namespace: each per-ISA translation unit gets its own instantiation (no ODR sharing of
// code compiled with different instruction sets).
template <class Isa>
QWEN3VL_HOST_DEVICE inline void rope_slot(const RopeTableView& t, const int32_t* pos, int32_t i,
                                          float* c, float* s) {
  const uint8_t a = t.axis[i];
  const int64_t p =
      a == 0 ? pos[0] : (a == 1 ? pos[1] : pos[2]);  // no dynamic index: registers on GPUs
  if (t.layout == TableLayout::kFull) {
    *c = t.cos[p * t.half + i];
    *s = t.sin[p * t.half + i];
    return;
  }
  const int64_t lo = (p & ((int64_t{1} << t.split_bits) - 1)) * t.half + i;
  const int64_t hi = (p >> t.split_bits) * t.half + i;
  const float cl = t.cos[lo], sl = t.sin[lo], ch = t.cos_hi[hi], sh = t.sin_hi[hi];
#if defined(__CUDA_ARCH__)
  *c = __fmaf_rn(ch, cl, -__fmul_rn(sh, sl));
  *s = __fmaf_rn(sh, cl, __fmul_rn(ch, sl));
#else
  *c = std::fma(ch, cl, -(sh * sl));
  *s = std::fma(sh, cl, ch * sl);
#endif
}

}  // namespace detail

struct RopeTableSpec {
  std::vector<float> inv_freq;       // per slot: half entries (may stay empty when inv_freq_f64 is
                                     // set: create() fills it with the fp32 rounding)
  std::vector<double> inv_freq_f64;  // optional float64 frequencies: kExact evaluates with them;
                                     // inv_freq must then be empty or their fp32 rounding
  std::vector<uint8_t> axis;         // per slot; empty: every slot reads axis 0
  int32_t axes = 1;
  double attention_factor = 1.0;
  int64_t max_position = 0;
  AngleRecipe recipe = AngleRecipe::kExact;
  TableLayout layout = TableLayout::kFull;
  int32_t split_bits = 0;  // kSplit: 0 chooses ceil(log2(max_position) / 2)
};

// An owning host table. Build it once per model (it is read-only afterwards).
class RopeTable {
 public:
  [[nodiscard]] static Status create(const RopeTableSpec& given, RopeTable* out) {
    RopeTableSpec spec = given;
    QWEN3VL_RETURN_IF_ERROR(resolve_f64(&spec));
    const int64_t half = static_cast<int64_t>(spec.inv_freq.size());
    if (half < 1 || half > 256)
      return make_error(StatusCode::kInvalidArgument, "rope table inv_freq.size() = ", half,
                        ": allowed 1..256 (rotary_dim / 2)");
    if (spec.axes < 1 || spec.axes > 3)
      return make_error(StatusCode::kInvalidArgument, "rope table axes = ", spec.axes,
                        ": allowed 1..3");
    if (!spec.axis.empty() && static_cast<int64_t>(spec.axis.size()) != half)
      return make_error(StatusCode::kShapeMismatch, "rope table axis.size() = ", spec.axis.size(),
                        ": must equal inv_freq.size() = ", half);
    for (uint8_t a : spec.axis)
      if (a >= spec.axes)
        return make_error(StatusCode::kInvalidArgument, "rope table axis entry = ", int{a},
                          ": allowed 0..", spec.axes - 1, " (axes = ", spec.axes, ")");
    if (spec.max_position < 1 || spec.max_position > (int64_t{1} << 30))
      return make_error(StatusCode::kInvalidArgument,
                        "rope table max_position = ", spec.max_position, ": allowed 1..2^30");
    for (float f : spec.inv_freq)
      if (!std::isfinite(f) || f < 0.0f)
        return make_error(StatusCode::kInvalidArgument, "rope table inv_freq entry = ", f,
                          ": allowed finite and >= 0");
    if (!(spec.attention_factor > 0.0) || !std::isfinite(spec.attention_factor))
      return make_error(StatusCode::kInvalidArgument,
                        "rope table attention_factor = ", spec.attention_factor,
                        ": allowed finite and > 0");
    if (spec.layout == TableLayout::kSplit && spec.recipe != AngleRecipe::kExact)
      return make_error(StatusCode::kUnsupported, "rope table recipe = ", to_string(spec.recipe),
                        " with layout = split: the transformers recipe needs layout = full");
    if (spec.split_bits < 0 || spec.split_bits > 20)
      return make_error(StatusCode::kInvalidArgument, "rope table split_bits = ", spec.split_bits,
                        ": allowed 0 (automatic) or 1..20");
    RopeTable t;
    t.spec_ = spec;
    if (t.spec_.axis.empty()) t.spec_.axis.assign(static_cast<size_t>(half), 0);
    if (spec.layout == TableLayout::kFull) {
      t.fill(&t.cos_, &t.sin_, spec.max_position, 1, spec.attention_factor);
    } else {
      int32_t k = spec.split_bits;
      if (k == 0)
        while ((int64_t{1} << (2 * k)) < spec.max_position) ++k;
      k = k < 1 ? 1 : k;
      t.spec_.split_bits = k;
      const int64_t lo_rows = int64_t{1} << k;
      const int64_t hi_rows = (spec.max_position + lo_rows - 1) / lo_rows;
      t.fill(&t.cos_, &t.sin_, lo_rows, 1, spec.attention_factor);
      t.fill(&t.cos_hi_, &t.sin_hi_, hi_rows, lo_rows, 1.0);
    }
    *out = std::move(t);
    return Status();
  }

  RopeTableView view() const {
    RopeTableView v;
    v.layout = spec_.layout;
    v.recipe = spec_.recipe;
    v.device = Device::kCPU;
    v.half = static_cast<int32_t>(spec_.inv_freq.size());
    v.axes = spec_.axes;
    v.split_bits = spec_.split_bits;
    v.max_position = spec_.max_position;
    v.cos = cos_.data();
    v.sin = sin_.data();
    v.cos_hi = cos_hi_.empty() ? nullptr : cos_hi_.data();
    v.sin_hi = sin_hi_.empty() ? nullptr : sin_hi_.data();
    v.axis = spec_.axis.data();
    return v;
  }

  const RopeTableSpec& spec() const { return spec_; }
  int64_t bytes() const {
    return static_cast<int64_t>((cos_.size() + sin_.size() + cos_hi_.size() + sin_hi_.size()) *
                                    sizeof(float) +
                                spec_.axis.size());
  }
  const std::vector<float>& cos_table() const { return cos_; }
  const std::vector<float>& sin_table() const { return sin_; }
  const std::vector<float>& cos_hi_table() const { return cos_hi_; }
  const std::vector<float>& sin_hi_table() const { return sin_hi_; }

 private:
  // With float64 frequencies: checks them and fills (or checks) their fp32 rounding in inv_freq.
  static Status resolve_f64(RopeTableSpec* spec) {
    const std::vector<double>& f64 = spec->inv_freq_f64;
    if (f64.empty()) return Status();
    for (double f : f64)
      if (!std::isfinite(f) || f < 0.0)
        return make_error(StatusCode::kInvalidArgument, "rope table inv_freq_f64 entry = ", f,
                          ": allowed finite and >= 0");
    if (spec->inv_freq.empty()) {
      for (double f : f64) spec->inv_freq.push_back(static_cast<float>(f));
      return Status();
    }
    if (spec->inv_freq.size() != f64.size())
      return make_error(StatusCode::kShapeMismatch,
                        "rope table inv_freq.size() = ", spec->inv_freq.size(),
                        ": must be 0 or inv_freq_f64.size() = ", f64.size());
    for (size_t i = 0; i < f64.size(); ++i)
      if (spec->inv_freq[i] != static_cast<float>(f64[i]))
        return make_error(StatusCode::kInvalidArgument, "rope table inv_freq[", i,
                          "] = ", spec->inv_freq[i], ": must be the fp32 rounding of inv_freq_f64[",
                          i, "] = ", f64[i], " (or leave inv_freq empty)");
    return Status();
  }

  // rows of cos/sin for positions r * step, r in [0, rows), scaled by `factor`.
  void fill(std::vector<float>* c, std::vector<float>* s, int64_t rows, int64_t step,
            double factor) {
    const size_t half = spec_.inv_freq.size();
    c->resize(static_cast<size_t>(rows) * half);
    s->resize(static_cast<size_t>(rows) * half);
    const float factor_f = static_cast<float>(factor);
    for (int64_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < half; ++i) {
        const size_t at = static_cast<size_t>(r) * half + i;
        const float inv = spec_.inv_freq[i];
        if (spec_.recipe == AngleRecipe::kExact) {
          const double inv_exact =
              spec_.inv_freq_f64.empty() ? static_cast<double>(inv) : spec_.inv_freq_f64[i];
          const double angle = static_cast<double>(r * step) * inv_exact;
          (*c)[at] = static_cast<float>(std::cos(angle) * factor);
          (*s)[at] = static_cast<float>(std::sin(angle) * factor);
        } else {
          const float angle = inv * static_cast<float>(r * step);
          const float cf = static_cast<float>(std::cos(static_cast<double>(angle)));
          const float sf = static_cast<float>(std::sin(static_cast<double>(angle)));
          (*c)[at] = cf * factor_f;  // transformers: cos(angle) * attention_scaling in fp32
          (*s)[at] = sf * factor_f;
        }
      }
  }

  RopeTableSpec spec_;
  std::vector<float> cos_, sin_, cos_hi_, sin_hi_;
};

// The text table of a model: frequencies from `config` (dynamic NTK sized for max_position) or,
// when `inv_freq` is not empty, the checkpoint's own (rotary_dim / 2 entries, fp32 or float64; see
// compute_frequencies), the M-RoPE section map, positions up to max_position.
[[nodiscard]] inline Status make_text_table(const RopeConfig& config, MRopeLayout layout,
                                            MRopeSection section, int64_t max_position,
                                            AngleRecipe recipe, TableLayout table_layout,
                                            RopeTable* out, const InvFreq& inv_freq = InvFreq()) {
  RopeFrequencies f;
  QWEN3VL_RETURN_IF_ERROR(compute_frequencies(config, max_position, inv_freq, &f));
  RopeTableSpec spec;
  QWEN3VL_RETURN_IF_ERROR(mrope_axis_map(layout, section, config.rotary() / 2, &spec.axis));
  spec.inv_freq = std::move(f.inv_freq);
  spec.inv_freq_f64 = std::move(f.inv_freq_f64);
  spec.attention_factor = f.attention_factor;
  spec.axes = mrope_axes(layout);
  spec.max_position = max_position;
  spec.recipe = recipe;
  spec.layout = table_layout;
  return RopeTable::create(spec, out);
}

}  // namespace qwen3vl::rope
