// The checks of an append step's source rows, shared by every K/V writer.
#include "kv_source.hpp"

namespace qwen3vl::detail {

Status check_kv_source(const TensorView& k, const TensorView& v, const KvAppendStep& step,
                       const KvSourceTarget& target) {
  QWEN3VL_RETURN_IF_ERROR(check_present(k, "k"));
  QWEN3VL_RETURN_IF_ERROR(check_present(v, "v"));
  const bool ragged = step.ragged;
  const int rank = ragged ? 3 : 4;
  if (k.rank != rank)
    return make_error(
        StatusCode::kShapeMismatch, "k.rank = ", k.rank, " (shape ", k.shape_string(),
        "): expected ", rank,
        ragged ? " ([tokens, Hkv, D]) with cu_seqlens" : " ([batch, tokens, Hkv, D])");
  const int64_t hkv = target.kv_heads, d = target.head_dim;
  if (ragged) {
    QWEN3VL_RETURN_IF_ERROR(check_dims(k, "k", 3, {k.shape[0], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(check_dims(v, "v", 3, {k.shape[0], hkv, d}));
  } else {
    QWEN3VL_RETURN_IF_ERROR(check_dims(k, "k", 4, {target.batch, k.shape[1], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(check_dims(v, "v", 4, {target.batch, k.shape[1], hkv, d}));
  }
  for (const TensorView* t : {&k, &v}) {
    const char* name = t == &k ? "k" : "v";
    if (!is_floating(t->dtype))
      return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t->dtype),
                        ": allowed f32, f16, bf16");
    if (t->device != target.device || t->device_index != target.device_index)
      return make_error(StatusCode::kInvalidArgument, name, ".device = ", to_string(t->device), ":",
                        t->device_index, ": must equal the storage device (",
                        to_string(target.device), ":", target.device_index, ")");
    QWEN3VL_RETURN_IF_ERROR(check_last_contiguous(*t, name));
  }
  if (k.shape[ragged ? 0 : 1] != step.rows)
    return make_error(StatusCode::kShapeMismatch, "k.shape = ", k.shape_string(),
                      ": the step appends ", step.rows,
                      ragged ? " rows in all" : " tokens to every sequence");
  return Status();
}

TensorView kv_source_rows(const TensorView& t) {
  if (t.rank == 4) return t;
  TensorView r = t;
  r.rank = 4;
  for (int d = 3; d >= 1; --d) {
    r.shape[d] = t.shape[d - 1];
    r.stride[d] = t.stride[d - 1];
  }
  r.shape[0] = 1;
  r.stride[0] = 0;
  return r;
}

}  // namespace qwen3vl::detail
