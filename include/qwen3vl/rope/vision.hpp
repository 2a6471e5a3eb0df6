// Vision-encoder 2-D RoPE (Qwen2-VL, Qwen2.5-VL, Qwen3-VL ViT): patches arrive in 2x2 merge-block
// order (the m x m sub-patches of merged cell (R, C) are contiguous, cells raster-ordered, frames
// repeating the same rows and columns), so patch n has row = m R + dr and col = m C + dc.
// Frequencies: k = 0..D/4-1, inv_k = theta^(-4k/D) (a table built with dim = D/2); slots [0, D/4)
// take row * inv_k, slots [D/4, D/2) take col * inv_k; rotate_half over the whole head, in fp32
// (apply with RopeArithmetic::kTransformersFp32 to match transformers bit for bit).
#pragma once

#include <cstdint>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/rope/grid.hpp"
#include "qwen3vl/rope/table.hpp"

namespace qwen3vl::rope {

// Patches of all grids: sum of t * h * w.
inline int64_t vision_patches(const std::vector<GridThw>& grids) {
  int64_t n = 0;
  for (const GridThw& g : grids) n += g.t * g.h * g.w;
  return n;
}

// positions [2, N] (row-axis first: positions[0 * N + n] = row, positions[1 * N + n] = col), ready
// for RopeApplyParams::positions as an i32 [2, N] view with a packed [N, H, D] q.
[[nodiscard]] inline Status vision_positions(const std::vector<GridThw>& grids, int64_t merge,
                                             std::vector<int32_t>* positions) {
  if (merge < 1)
    return make_error(StatusCode::kInvalidArgument, "spatial_merge_size = ", merge,
                      ": allowed >= 1");
  for (size_t g = 0; g < grids.size(); ++g) {
    const GridThw& d = grids[g];
    if (d.t < 1 || d.h < 1 || d.w < 1 || d.h % merge != 0 || d.w % merge != 0 || d.h > (1 << 20) ||
        d.w > (1 << 20))
      return make_error(StatusCode::kInvalidArgument, "grid_thw[", g, "] = (", d.t, ", ", d.h, ", ",
                        d.w,
                        "): allowed t >= 1 and h, w positive multiples of spatial_merge_size (",
                        merge, ") up to 2^20");
  }
  const int64_t n = vision_patches(grids);
  positions->assign(static_cast<size_t>(2 * n), 0);
  int32_t* row = positions->data();
  int32_t* col = row + n;
  int64_t at = 0;
  for (const GridThw& d : grids)
    for (int64_t f = 0; f < d.t; ++f)
      for (int64_t r = 0; r < d.h / merge; ++r)
        for (int64_t c = 0; c < d.w / merge; ++c)
          for (int64_t dr = 0; dr < merge; ++dr)
            for (int64_t dc = 0; dc < merge; ++dc, ++at) {
              row[at] = static_cast<int32_t>(r * merge + dr);
              col[at] = static_cast<int32_t>(c * merge + dc);
            }
  return Status();
}

// The vision table: 2 axes (row, col), half = head_dim / 2 slots, positions up to max_side. The
// head_dim / 4 frequencies come from theta or, when `inv_freq` is not empty, are the checkpoint's
// own (transformers' Qwen3VLVisionRotaryEmbedding.inv_freq, fp32, or float64), shared by both axes.
[[nodiscard]] inline Status make_vision_table(int64_t head_dim, double theta, int64_t max_side,
                                              AngleRecipe recipe, TableLayout layout,
                                              RopeTable* out, const InvFreq& inv_freq = InvFreq()) {
  if (head_dim < 4 || head_dim % 4 != 0 || head_dim > 512)
    return make_error(StatusCode::kInvalidArgument, "vision head_dim = ", head_dim,
                      ": allowed a multiple of 4 in 4..512");
  if (!(theta > 1.0))
    return make_error(StatusCode::kInvalidArgument, "vision theta = ", theta, ": allowed > 1");
  if (!inv_freq.f32.empty() && !inv_freq.f64.empty())
    return make_error(StatusCode::kInvalidArgument, "vision inv_freq: f32 (", inv_freq.f32.size(),
                      " entries) and f64 (", inv_freq.f64.size(),
                      " entries) both set: allowed one");
  const size_t quarter = static_cast<size_t>(head_dim / 4);
  const size_t given = inv_freq.f32.empty() ? inv_freq.f64.size() : inv_freq.f32.size();
  if (!inv_freq.empty() && given != quarter)
    return make_error(StatusCode::kShapeMismatch, "vision inv_freq.size() = ", given,
                      ": must equal head_dim / 4 = ", quarter);
  RopeTableSpec spec;  // RopeTable::create checks the values
  if (!inv_freq.f64.empty()) {
    spec.inv_freq_f64 = inv_freq.f64;
    spec.inv_freq_f64.insert(spec.inv_freq_f64.end(), inv_freq.f64.begin(), inv_freq.f64.end());
  } else {
    const std::vector<float> inv =
        inv_freq.f32.empty() ? detail::default_inv_freq(theta, head_dim / 2) : inv_freq.f32;
    spec.inv_freq = inv;
    spec.inv_freq.insert(spec.inv_freq.end(), inv.begin(), inv.end());
  }
  spec.axis.assign(quarter, 0);
  spec.axis.insert(spec.axis.end(), quarter, 1);
  spec.axes = 2;
  spec.max_position = max_side;
  spec.recipe = recipe;
  spec.layout = layout;
  return RopeTable::create(spec, out);
}

}  // namespace qwen3vl::rope
