// BlockLayout: a block-sparse (BSR) pattern that tells a flash kernel which key blocks each query
// block visits. One mechanism for every sparse variant: static patterns build one, dynamic routing
// estimates one per call, and the flash kernels' K/V loop walks its column list instead of every
// key block. Token-level masks (causal, window, key padding, additive) still apply inside the
// visited blocks.
#pragma once

#include <cstdint>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/core/view_checks.hpp"

namespace qwen3vl {

// Row block I covers query rows [I * block_q, (I + 1) * block_q) of a sequence (query index, not
// position), column block J keys [J * block_k, (J + 1) * block_k). Layout l lists row block I's
// column blocks in indices[l, indptr[l, I] .. indptr[l, I + 1]), strictly increasing.
//
// Layouts: indptr i32 [L, NBq + 1] (or [NBq + 1] for L = 1), indices i32 [L, capacity] (or
// [capacity]), where NBq = ceil(max_q / block_q), NBk = ceil(max_k / block_k) and L is
//   1        one pattern for every head and sequence,
//   Hkv      one per KV head (query heads of a group share it, so K/V blocks are read once),
//   B * Hkv  one per (sequence, KV head), layout b * Hkv + kv_head (dynamic routing).
// Both live on the device of q (the CUDA kernels read them there).
struct BlockLayout {
  int32_t block_q = 0;  // 16..128, a multiple of 16
  int32_t block_k = 0;  // 16..128, a multiple of 16
  TensorView indptr;
  TensorView indices;

  bool present() const { return indptr.present(); }
  int64_t layouts() const { return indptr.rank == 2 ? indptr.shape[0] : 1; }
  int64_t row_blocks() const { return indptr.shape[indptr.rank - 1] - 1; }
  // Which layout serves (sequence b, KV head kv) of a problem with kv_heads KV heads.
  int64_t layout_index(int64_t b, int64_t kv, int64_t kv_heads) const {
    const int64_t n = layouts();
    return n == 1 ? 0 : (n == kv_heads ? kv : b * kv_heads + kv);
  }
  const int32_t* row_ptr(int64_t l) const {
    return indptr.ptr<const int32_t>() + (indptr.rank == 2 ? l * indptr.stride[0] : 0);
  }
  const int32_t* col_ptr(int64_t l) const {
    return indices.ptr<const int32_t>() + (indices.rank == 2 ? l * indices.stride[0] : 0);
  }
};

// Checks a layout against a problem of `batch` sequences, `kv_heads` KV heads and at most max_q
// queries / max_k keys per sequence. Values are checked only when the layout is host-resident.
inline Status validate_block_layout(const BlockLayout& bl, int64_t batch, int64_t kv_heads,
                                    int64_t max_q, int64_t max_k) {
  const auto bad_size = [](int32_t x) { return x < 16 || x > 128 || x % 16 != 0; };
  if (bad_size(bl.block_q))
    return make_error(StatusCode::kInvalidArgument, "block_layout.block_q = ", bl.block_q,
                      ": allowed 16..128, a multiple of 16");
  if (bad_size(bl.block_k))
    return make_error(StatusCode::kInvalidArgument, "block_layout.block_k = ", bl.block_k,
                      ": allowed 16..128, a multiple of 16");
  const TensorView* views[] = {&bl.indptr, &bl.indices};
  const char* names[] = {"block_layout.indptr", "block_layout.indices"};
  for (int t = 0; t < 2; ++t) {
    const TensorView& v = *views[t];
    if (!v.present())
      return make_error(StatusCode::kNullPointer, names[t], " is absent: a layout needs both");
    if (v.dtype != DType::kI32)
      return make_error(StatusCode::kInvalidArgument, names[t], ".dtype = ", to_string(v.dtype),
                        ": must be i32");
    if (v.rank > 2)
      return make_error(StatusCode::kShapeMismatch, names[t], ".rank = ", v.rank,
                        ": allowed 1 (one layout) or 2 ([layouts, ...])");
    if (v.shape[v.rank - 1] > 1 && v.stride[v.rank - 1] != 1)
      return make_error(StatusCode::kBadStride, names[t], ".stride[", v.rank - 1,
                        "] = ", v.stride[v.rank - 1], ": must be 1");
    if (v.data == nullptr && v.numel() > 0)
      return make_error(StatusCode::kNullPointer, names[t], ".data = null");
    QWEN3VL_RETURN_IF_ERROR(detail::check_view_extent(v, names[t]));
  }
  const int64_t row_blocks = (max_q + bl.block_q - 1) / bl.block_q;
  const int64_t col_blocks = (max_k + bl.block_k - 1) / bl.block_k;
  if (bl.row_blocks() != row_blocks)
    return make_error(
        StatusCode::kShapeMismatch, "block_layout.indptr.shape = ", bl.indptr.shape_string(),
        ": its last dimension must be ceil(", max_q, " / ", bl.block_q, ") + 1 = ", row_blocks + 1);
  const int64_t n = bl.layouts();
  if (n != 1 && n != kv_heads && n != batch * kv_heads)
    return make_error(StatusCode::kShapeMismatch, "block_layout.indptr.shape[0] = ", n,
                      ": allowed 1, Hkv = ", kv_heads, " or batch x Hkv = ", batch * kv_heads);
  if ((bl.indices.rank == 2 ? bl.indices.shape[0] : 1) != n)
    return make_error(StatusCode::kShapeMismatch,
                      "block_layout.indices.shape = ", bl.indices.shape_string(),
                      ": needs one row per layout (", n, ")");
  if (bl.indptr.device != bl.indices.device)
    return make_error(StatusCode::kInvalidArgument,
                      "block_layout.indices.device = ", to_string(bl.indices.device),
                      ": must equal indptr.device");
  if (bl.indptr.device != Device::kCPU) return Status();  // values are checked where they live

  const int64_t capacity = bl.indices.shape[bl.indices.rank - 1];
  for (int64_t l = 0; l < n; ++l) {
    const int32_t* ptr = bl.row_ptr(l);
    const int32_t* col = bl.col_ptr(l);
    if (ptr[0] != 0)
      return make_error(StatusCode::kInvalidArgument, "block_layout.indptr[", l, ", 0] = ", ptr[0],
                        ": must be 0");
    for (int64_t r = 0; r < row_blocks; ++r) {
      if (ptr[r + 1] < ptr[r] || ptr[r + 1] > capacity)
        return make_error(StatusCode::kInvalidArgument, "block_layout.indptr[", l, ", ", r + 1,
                          "] = ", ptr[r + 1], ": must be in [indptr[", r, "] = ", ptr[r], ", ",
                          capacity, "] (non-decreasing, within indices)");
      for (int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
        if (col[e] < 0 || col[e] >= col_blocks)
          return make_error(StatusCode::kInvalidArgument, "block_layout.indices[", l, ", ", e,
                            "] = ", col[e], " (row block ", r, "): allowed 0..", col_blocks - 1);
        if (e > ptr[r] && col[e] <= col[e - 1])
          return make_error(StatusCode::kInvalidArgument, "block_layout.indices[", l, ", ", e,
                            "] = ", col[e], " after ", col[e - 1], " (row block ", r,
                            "): column blocks must be strictly increasing");
      }
    }
  }
  return Status();
}

}  // namespace qwen3vl
