// Multimodal RoPE section maps: which position axis (t = 0, h = 1, w = 2) drives each frequency
// slot.
//   kNone         every slot reads axis 0 (1-D RoPE)
//   kChunked      Qwen2-VL / Qwen2.5-VL: slots [0, t) read t, [t, t+h) read h, the rest read w
//   kInterleaved  Qwen3-VL: slot i reads h if i % 3 == 1 and i < 3h, w if i % 3 == 2 and i < 3w,
//                 else t; [24, 20, 20] over 64 slots gives THW THW ... THW TTTT
// Text tokens carry t = h = w, so any map reduces to 1-D RoPE for them.
#pragma once

#include <cstdint>
#include <vector>

#include "qwen3vl/core/status.hpp"

namespace qwen3vl::rope {

enum class MRopeLayout : uint8_t { kNone, kChunked, kInterleaved };

inline const char* to_string(MRopeLayout l) {
  switch (l) {
    case MRopeLayout::kNone: return "none";
    case MRopeLayout::kChunked: return "chunked";
    case MRopeLayout::kInterleaved: return "interleaved";
  }
  return "?";
}

// Slots per axis (transformers' mrope_section); they must add up to rotary_dim / 2.
struct MRopeSection {
  int32_t t = 0, h = 0, w = 0;
};

// The position axes a layout reads: 1 for kNone, else 3 (a zero w section still takes a w row).
inline int mrope_axes(MRopeLayout layout) { return layout == MRopeLayout::kNone ? 1 : 3; }

// axis[i] for i in [0, half). Sections that do not add up to `half`, negative sections, and
// interleaved sections whose slots cannot give each axis its count are errors.
[[nodiscard]] inline Status mrope_axis_map(MRopeLayout layout, MRopeSection section, int64_t half,
                                           std::vector<uint8_t>* axis) {
  axis->assign(static_cast<size_t>(half > 0 ? half : 0), 0);
  if (layout == MRopeLayout::kNone) return Status();
  const int64_t sum = int64_t{section.t} + section.h + section.w;
  if (section.t < 0 || section.h < 0 || section.w < 0 || sum != half)
    return make_error(StatusCode::kInvalidArgument, "mrope_section = [", section.t, ", ", section.h,
                      ", ", section.w,
                      "]: allowed non-negative sections adding up to rotary_dim / 2 = ", half);
  int64_t count[3] = {0, 0, 0};
  for (int64_t i = 0; i < half; ++i) {
    uint8_t a = 0;
    if (layout == MRopeLayout::kChunked)
      a = i < section.t ? 0 : (i < section.t + section.h ? 1 : 2);
    else if (i % 3 == 1 && i < 3 * int64_t{section.h})
      a = 1;
    else if (i % 3 == 2 && i < 3 * int64_t{section.w})
      a = 2;
    (*axis)[static_cast<size_t>(i)] = a;
    ++count[a];
  }
  if (count[0] != section.t || count[1] != section.h || count[2] != section.w)
    return make_error(StatusCode::kInvalidArgument, "mrope_section = [", section.t, ", ", section.h,
                      ", ", section.w, "] (interleaved): gives ", count[0], "/", count[1], "/",
                      count[2],
                      " t/h/w slots; allowed sections with h and w <= t + 1, e.g. [24, 20, 20]");
  return Status();
}

}  // namespace qwen3vl::rope
