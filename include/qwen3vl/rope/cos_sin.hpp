// The cos and sin a RoPE table gives for given positions: the values the apply kernels rotate by
// (the table's angle recipe, layout and attention factor), for callers that rotate q/k themselves
// or want to look at the angles. Host tables and tensors (CPU).
#pragma once

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/rope/table.hpp"

namespace qwen3vl::rope {

// positions  i32 [T] (one position for every axis: text tokens) or [table.axes, T] (t/h/w, or
//            vision row/col), each in [0, table.max_position)
// cos, sin   f32 [T, table.half], last dimension contiguous: slot i of token t, driven by the
//            position of axis table.axis[i]. transformers' cos/sin ([T, rotary_dim], rotate_half
//            order) are these rows written twice: cat(cos, cos).
// Everything is checked before anything is written; errors name the argument, its value and what
// is allowed (kNullPointer, kShapeMismatch, kInvalidArgument, kUnsupported for device memory).
[[nodiscard]] Status rope_cos_sin(const RopeTableView& table, const TensorView& positions,
                                  const TensorView& cos, const TensorView& sin);

}  // namespace qwen3vl::rope
