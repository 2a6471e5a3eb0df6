// Checks of a view's memory footprint shared by every validate(): the rank and shape, that every
// element offset (and its byte offset) is computable without int64 overflow and stays inside the
// address space, that an output never writes one element twice, and that two views do not share
// memory. Each returns a typed Status naming the argument, its value and what is allowed.
#pragma once

#include <algorithm>
#include <cstdint>

#include "qwen3vl/core/checked_math.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"

namespace qwen3vl::detail {

inline Status check_view_address(const TensorView& t, const char* name, int64_t lo, int64_t hi);

// Rank 1..4, shapes >= 0, an element count and every element's byte offset that fit in int64, and
// a byte range [data + lo, data + hi) that does not wrap around the address space. Kernels form
// element offsets in int64 without checks, so a view passing this cannot make them overflow.
inline Status check_view_extent(const TensorView& t, const char* name) {
  if (t.rank < 1 || t.rank > TensorView::kMaxRank)
    return make_error(StatusCode::kShapeMismatch, name, ".rank = ", t.rank, ": allowed 1..",
                      TensorView::kMaxRank);
  for (int d = 0; d < t.rank; ++d)
    if (t.shape[d] < 0)
      return make_error(StatusCode::kInvalidArgument, name, ".shape[", d, "] = ", t.shape[d],
                        ": must be >= 0");
  if (t.numel() == INT64_MAX)
    return make_error(StatusCode::kInvalidArgument, name, ".shape = ", t.shape_string(),
                      ": the element count overflows int64 (allowed at most ", INT64_MAX - 1, ")");
  int64_t lo = 0, hi = 0;
  if (!t.byte_range(&lo, &hi))
    return make_error(StatusCode::kBadStride, name, ".stride = ", t.stride_string(), " with shape ",
                      t.shape_string(), ": the largest element offset in bytes overflows int64 ",
                      "(allowed: every offset within +-", INT64_MAX, " bytes)");
  // Null data (a plan made from shapes) has no address to check yet: run() checks the real one.
  return t.data ? check_view_address(t, name, lo, hi) : Status();
}

// The part of check_view_extent that looks at the data pointer: bytes [data + lo, data + hi) do
// not wrap around the address space. Rerun for a new pointer with the same shape and strides.
inline Status check_view_address(const TensorView& t, const char* name, int64_t lo, int64_t hi) {
  const auto base = reinterpret_cast<uintptr_t>(t.data);
  if ((lo < 0 && base < static_cast<uintptr_t>(-lo)) ||
      (hi > 0 && base > UINTPTR_MAX - static_cast<uintptr_t>(hi)))
    return make_error(StatusCode::kBadStride, name, ".stride = ", t.stride_string(), " with shape ",
                      t.shape_string(), " at ", t.data,
                      ": the view reaches past the address space (bytes ", lo, " .. ", hi,
                      " from data)");
  return Status();
}

// An output: no two elements at the same address. Sufficient test, exact for every box layout
// (any permutation of padded row-major dimensions): the dimensions of size > 1, ordered by
// |stride|, each need |stride| >= the span of the smaller ones. A stride of 0 writes every index of
// its dimension to the same element. Call after check_view_extent (the spans then fit in int64).
inline Status check_no_self_overlap(const TensorView& t, const char* name) {
  if (t.numel() == 0) return Status();  // an empty view writes nothing (its strides are free)
  int dims[TensorView::kMaxRank];
  int n = 0;
  for (int d = 0; d < t.rank && d < TensorView::kMaxRank; ++d)
    if (t.shape[d] > 1) dims[n++] = d;
  const auto mag = [&](int d) { return t.stride[d] < 0 ? -t.stride[d] : t.stride[d]; };
  std::sort(dims, dims + n, [&](int a, int b) { return mag(a) < mag(b); });
  int64_t span = 0;  // elements covered by the smaller-stride dimensions, minus one
  for (int i = 0; i < n; ++i) {
    const int d = dims[i];
    if (mag(d) <= span)
      return make_error(StatusCode::kBadStride, name, ".stride[", d, "] = ", t.stride[d],
                        " (strides ", t.stride_string(), ", shape ", t.shape_string(),
                        "): an output must not write one element twice; allowed |stride| >= ",
                        span + 1, " (the span of the dimensions with smaller strides)");
    span += (t.shape[d] - 1) * mag(d);
  }
  return Status();
}

// Views interleaved in one buffer with the same outermost stride (batch slots holding q, k, v
// and out side by side, or a fused [tokens, 3, heads, D] QKV projection): each dimension-0 step
// repeats the same footprint P bytes further on, so they share no byte when their footprints
// within one period lie apart on a circle of P bytes. False when that does not decide it.
inline bool interleaved_apart(const TensorView& a, const TensorView& b) {
  if (a.rank < 2 || b.rank < 2) return false;
  const int64_t sa = a.stride[0] * size_of(a.dtype);
  const int64_t sb = b.stride[0] * size_of(b.dtype);
  if (sa <= 0 || sa != sb) return false;
  const auto inner = [](const TensorView& t, int64_t* lo, int64_t* hi) {  // bytes of one step
    TensorView rest = t;
    rest.shape[0] = 1;
    return rest.byte_range(lo, hi);
  };
  int64_t alo = 0, ahi = 0, blo = 0, bhi = 0;
  if (!inner(a, &alo, &ahi) || !inner(b, &blo, &bhi)) return false;
  const int64_t period = sa, alen = ahi - alo, blen = bhi - blo;
  if (alen > period || blen > period) return false;
  const auto start = [period](const TensorView& t, int64_t lo) {
    const int64_t r =
        static_cast<int64_t>((reinterpret_cast<uintptr_t>(t.data) + static_cast<uintptr_t>(lo)) %
                             static_cast<uintptr_t>(period));
    return r;
  };
  const int64_t gap = ((start(b, blo) - start(a, alo)) % period + period) % period;
  return gap >= alen && gap + blen <= period;
}

// Two views on one device whose byte ranges intersect (call after check_view_extent on both).
// Range based: views interleaved in one buffer without a common element are refused too.
inline Status check_disjoint(const TensorView& out, const char* out_name, const TensorView& in,
                             const char* in_name) {
  if (!out.present() || !in.present() || out.device != in.device ||
      out.device_index != in.device_index || out.data == nullptr || in.data == nullptr)
    return Status();
  int64_t olo = 0, ohi = 0, ilo = 0, ihi = 0;
  if (!out.byte_range(&olo, &ohi) || !in.byte_range(&ilo, &ihi) || olo == ohi || ilo == ihi)
    return Status();
  const auto o = reinterpret_cast<uintptr_t>(out.data), i = reinterpret_cast<uintptr_t>(in.data);
  const uintptr_t o_begin = o + static_cast<uintptr_t>(olo),
                  o_end = o + static_cast<uintptr_t>(ohi);
  const uintptr_t i_begin = i + static_cast<uintptr_t>(ilo),
                  i_end = i + static_cast<uintptr_t>(ihi);
  if (o_begin < i_end && i_begin < o_end && !interleaved_apart(out, in))
    return make_error(StatusCode::kInvalidArgument, out_name, ".data = ", out.data, " (", ohi - olo,
                      " bytes from offset ", olo, ") overlaps ", in_name, ".data = ", in.data, " (",
                      ihi - ilo, " bytes from offset ", ilo, "): ", out_name,
                      " must not share memory with ", in_name);
  return Status();
}

}  // namespace qwen3vl::detail
