// The Attention-typed overload of a factory whose main overload makes a richer interface
// (DynamicSparseAttention, LinearAttention): one null check and one conversion for every device.
#pragma once

#include <memory>
#include <utility>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::detail {

// `create(&made)` makes the Derived object; `out` receives it as an Attention.
template <class Derived, class Create>
Status create_as_attention(std::unique_ptr<Attention>* out, Create&& create) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  std::unique_ptr<Derived> made;
  QWEN3VL_RETURN_IF_ERROR(create(&made));
  *out = std::move(made);
  return Status();
}

}  // namespace qwen3vl::detail
