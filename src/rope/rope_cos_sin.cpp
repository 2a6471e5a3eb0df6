// rope_cos_sin: every argument checked first, then the shared per-slot lookup (detail::rope_slot)
// for each token, so the values are the kernels' own, bit for bit.
#include "qwen3vl/rope/cos_sin.hpp"

namespace qwen3vl::rope {
namespace {

struct CosSinTag {};  // rope_slot's instantiation tag for this translation unit

Status check_table(const RopeTableView& t) {
  if (t.cos == nullptr || t.sin == nullptr || t.axis == nullptr || t.half < 1 ||
      (t.layout == TableLayout::kSplit && (t.cos_hi == nullptr || t.sin_hi == nullptr)))
    return make_error(StatusCode::kNullPointer, "table: empty or incomplete (half = ", t.half,
                      "): build it with RopeTable::create, make_text_table or make_vision_table");
  if (t.device != Device::kCPU)
    return make_error(StatusCode::kUnsupported, "table.device = ", to_string(t.device),
                      ": rope_cos_sin reads host tables (RopeTable::view())");
  if (t.axes < 1 || t.axes > 3)
    return make_error(StatusCode::kInvalidArgument, "table.axes = ", t.axes, ": allowed 1..3");
  return Status();
}

Status check_output(const TensorView& o, const char* name, int64_t tokens, int64_t half) {
  if (o.dtype != DType::kF32 || o.device != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument, name, " = ", to_string(o.dtype), " on ",
                      to_string(o.device), ": must be f32 in host memory");
  if (o.rank != 2 || o.shape[0] != tokens || o.shape[1] != half)
    return make_error(StatusCode::kShapeMismatch, name, ".shape = ", o.shape_string(),
                      ": must be [tokens = ", tokens, ", table.half = ", half, "]");
  if (o.stride[1] != 1 && half > 1)
    return make_error(StatusCode::kBadStride, name, ".stride[1] = ", o.stride[1],
                      ": the slot dimension must be contiguous (stride 1)");
  if (o.data == nullptr && tokens > 0)
    return make_error(StatusCode::kNullPointer, name, ".data = null");
  return Status();
}

}  // namespace

Status rope_cos_sin(const RopeTableView& table, const TensorView& positions, const TensorView& cos,
                    const TensorView& sin) {
  QWEN3VL_RETURN_IF_ERROR(check_table(table));
  const TensorView& pos = positions;
  if (pos.dtype != DType::kI32 || pos.device != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument, "positions = ", to_string(pos.dtype), " on ",
                      to_string(pos.device), ": must be i32 in host memory");
  if (pos.rank != 1 && !(pos.rank == 2 && pos.shape[0] == table.axes))
    return make_error(StatusCode::kShapeMismatch, "positions.shape = ", pos.shape_string(),
                      ": allowed [tokens] or [table.axes = ", table.axes, ", tokens]");
  const bool per_axis = pos.rank == 2;
  const int64_t tokens = pos.shape[pos.rank - 1];
  if (pos.data == nullptr && tokens > 0)
    return make_error(StatusCode::kNullPointer, "positions.data = null");
  QWEN3VL_RETURN_IF_ERROR(check_output(cos, "cos", tokens, table.half));
  QWEN3VL_RETURN_IF_ERROR(check_output(sin, "sin", tokens, table.half));

  const int32_t* p = pos.ptr<const int32_t>();
  const auto at = [&](int64_t axis, int64_t t) {
    return per_axis ? p[axis * pos.stride[0] + t * pos.stride[1]] : p[t * pos.stride[0]];
  };
  const int64_t axes = per_axis ? table.axes : 1;
  for (int64_t a = 0; a < axes; ++a)
    for (int64_t t = 0; t < tokens; ++t) {
      const int32_t v = at(a, t);
      if (v < 0 || v >= table.max_position)
        return make_error(StatusCode::kInvalidArgument, "positions[",
                          per_axis ? std::to_string(a) + ", " : std::string(), t, "] = ", v,
                          ": allowed 0..", table.max_position - 1,
                          " (the table's max_position - 1)");
    }

  for (int64_t t = 0; t < tokens; ++t) {
    int32_t token_pos[3];
    for (int64_t a = 0; a < 3; ++a) token_pos[a] = at(per_axis && a < table.axes ? a : 0, t);
    float* c = cos.ptr<float>() + t * cos.stride[0];
    float* s = sin.ptr<float>() + t * sin.stride[0];
    for (int32_t i = 0; i < table.half; ++i)
      detail::rope_slot<CosSinTag>(table, token_pos, i, &c[i], &s[i]);
  }
  return Status();
}

}  // namespace qwen3vl::rope
