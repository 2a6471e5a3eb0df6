// The mask conventions every kernel shares (docs/api.md). Structural masks always leave a
// contiguous range of visible keys per query row, so kernels iterate [begin, end) and skip the
// rest.
#pragma once

#include <cstdint>

#include "qwen3vl/core/checked_math.hpp"
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

// Keys visible to a query row that sits at key position `position` (the key it is aligned with),
// with `k_len` valid keys: causal (either kind) keys <= position, a window [position - left,
// position + right]. A window bound of -1 is unbounded; HF/Mistral window W is left = W - 1,
// right = 0. Bounds may be anything up to INT64_MAX (effectively unbounded): the arithmetic
// saturates instead of wrapping.
QWEN3VL_HOST_DEVICE inline KeyRange visible_keys_at(MaskKind mask, int64_t window_left,
                                                    int64_t window_right, int64_t position,
                                                    int64_t k_len) {
  int64_t begin = 0;
  int64_t end = k_len;
  switch (mask) {
    case MaskKind::kNone: break;
    case MaskKind::kCausal:
    case MaskKind::kCausalTopLeft: end = saturating_add(position, 1); break;
    case MaskKind::kSlidingWindow:
      if (window_left >= 0) begin = saturating_sub(position, window_left);
      if (window_right >= 0) end = saturating_add(saturating_add(position, window_right), 1);
      break;
  }
  begin = begin < 0 ? 0 : begin;
  end = end > k_len ? k_len : end;
  if (end < begin) end = begin;
  return KeyRange{begin, end};
}

// Keys visible to query row `i` of a sequence with `q_len` queries and `k_len` valid keys (after
// key padding): bottom-right alignment puts row i at key i + k_len - q_len (top-left causal: at key
// i).
QWEN3VL_HOST_DEVICE inline KeyRange visible_keys(MaskKind mask, int64_t window_left,
                                                 int64_t window_right, int64_t i, int64_t q_len,
                                                 int64_t k_len) {
  const int64_t position = mask == MaskKind::kCausalTopLeft ? i : i + k_len - q_len;
  return visible_keys_at(mask, window_left, window_right, position, k_len);
}

}  // namespace qwen3vl
