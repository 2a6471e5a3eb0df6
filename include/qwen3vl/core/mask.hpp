// The mask conventions every kernel shares (DESIGN section 4). Structural masks always leave a
// contiguous range of visible keys per query row, so kernels iterate [begin, end) and skip the rest.
#pragma once

#include <cstdint>

#include "qwen3vl/core/macros.hpp"

namespace qwen3vl {

enum class MaskKind : uint8_t {
  kNone,
  kCausal,         // bottom-right aligned: key j visible to query i iff j <= i + Lk - Lq
  kCausalTopLeft,  // key j visible to query i iff j <= i
  kSlidingWindow,  // bottom-right aligned window: i' - left <= j <= i' + right, i' = i + Lk - Lq
};

inline const char* to_string(MaskKind m) {
  switch (m) {
    case MaskKind::kNone: return "none";
    case MaskKind::kCausal: return "causal";
    case MaskKind::kCausalTopLeft: return "causal_top_left";
    case MaskKind::kSlidingWindow: return "sliding_window";
  }
  return "?";
}

struct KeyRange {
  int64_t begin;
  int64_t end;  // exclusive; begin == end means the row sees no key
  QWEN3VL_HOST_DEVICE int64_t size() const { return end - begin; }
};

// Keys visible to query row `i` of a sequence with `q_len` queries and `k_len` valid keys (after key
// padding). A window bound of -1 is unbounded; HF/Mistral window W is left = W - 1, right = 0.
QWEN3VL_HOST_DEVICE inline KeyRange visible_keys(MaskKind mask, int64_t window_left,
                                                 int64_t window_right, int64_t i, int64_t q_len,
                                                 int64_t k_len) {
  int64_t begin = 0;
  int64_t end = k_len;
  const int64_t diagonal = i + k_len - q_len;  // the key aligned with query i (bottom-right)
  switch (mask) {
    case MaskKind::kNone: break;
    case MaskKind::kCausal: end = diagonal + 1; break;
    case MaskKind::kCausalTopLeft: end = i + 1; break;
    case MaskKind::kSlidingWindow:
      if (window_left >= 0) begin = diagonal - window_left;
      if (window_right >= 0) end = diagonal + window_right + 1;
      break;
  }
  begin = begin < 0 ? 0 : begin;
  end = end > k_len ? k_len : end;
  if (end < begin) end = begin;
  return KeyRange{begin, end};
}

}  // namespace qwen3vl
