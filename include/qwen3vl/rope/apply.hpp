// Applying RoPE in place to q and k in one pass (the fused entry point of the attention layer).
//
// Layouts (last dimension contiguous, any other strides, so BHSD works through a transposed view):
//   fixed length  q [B, S, Hq, D]  k [B, S, Hkv, D]  positions i32 [B, S] or [axes, B, S]
//   packed (THD)  q [T, Hq, D]     k [T, Hkv, D]     positions i32 [T] or [axes, T]
// Positions without the axis dimension serve every axis (text tokens: t = h = w). The first
// rotary_dim = 2 * table.half dims of each head rotate; the rest pass through untouched.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/core/view_checks.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/rope/table.hpp"

namespace qwen3vl::rope {

// kNeox rotates pairs (i, i + rotary_dim/2) (rotate_half; Qwen, HF Llama); kGptj rotates pairs
// (2i, 2i + 1) with the same angle for slot i.
enum class RopeStyle : uint8_t { kNeox, kGptj };

// How the rotation rounds (x1, x2 the pair, c, s the slot's cos and sin):
//   kFused               fp32 fused multiply-adds, one rounding to storage: the most accurate
//   kTransformersFp32    transformers' vision path: x1*c, x2*s and their difference each rounded
//                        to fp32, then once to storage (apply_rotary_pos_emb_vision)
//   kTransformersStorage transformers' text path: cos/sin rounded to the storage dtype and every
//                        product and sum rounded to it (apply_rotary_pos_emb on bf16 tensors)
enum class RopeArithmetic : uint8_t { kFused, kTransformersFp32, kTransformersStorage };

inline const char* to_string(RopeStyle s) { return s == RopeStyle::kNeox ? "neox" : "gptj"; }
inline const char* to_string(RopeArithmetic a) {
  switch (a) {
    case RopeArithmetic::kFused: return "fused";
    case RopeArithmetic::kTransformersFp32: return "transformers-fp32";
    case RopeArithmetic::kTransformersStorage: return "transformers-storage";
  }
  return "?";
}

struct RopeApplyParams {
  TensorView q;          // rotated in place
  TensorView k;          // optional; rotated in place with the same positions
  TensorView positions;  // i32, host memory for the CPU, device memory for CUDA
  RopeTableView table;
  RopeStyle style = RopeStyle::kNeox;
  RopeArithmetic arithmetic = RopeArithmetic::kFused;
};

// What validate() derives once.
struct RopeApplyShape {
  bool packed = false;  // THD
  int64_t batch = 1;    // B (1 when packed)
  int64_t seq = 0;      // S (T when packed)
  int64_t q_heads = 0, k_heads = 0, head_dim = 0, rotary_dim = 0;
  bool positions_axis = false;  // positions carry the axis dimension
  int64_t tokens() const { return batch * seq; }
};

namespace detail {

inline Status check_rope_tensor(const TensorView& t, const char* name, int rank, bool need_data) {
  if (t.rank != rank)
    return make_error(StatusCode::kShapeMismatch, name, ".rank = ", t.rank, ": must be ", rank,
                      " (same as q: [B, S, H, D] or packed [T, H, D])");
  if (need_data && t.data == nullptr && t.numel() > 0)
    return make_error(StatusCode::kNullPointer, name, ".data = null with shape ", t.shape_string());
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_view_extent(t, name));
  if (!is_floating(t.dtype))
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype),
                      ": allowed f32, f16, bf16");
  if (t.stride[rank - 1] != 1 && t.shape[rank - 1] > 1)
    return make_error(StatusCode::kBadStride, name, ".stride[", rank - 1,
                      "] = ", t.stride[rank - 1],
                      ": the head dimension must be contiguous (stride 1)");
  return Status();
}

}  // namespace detail

// need_data = false: the shapes alone (q, k and positions may have null data), for callers that
// plan a workspace before they have it; apply() always checks the pointers.
[[nodiscard]] inline Status validate(const RopeApplyParams& p, RopeApplyShape* shape,
                                     bool need_data = true) {
  RopeApplyShape s;
  if (p.style != RopeStyle::kNeox && p.style != RopeStyle::kGptj)
    return make_error(StatusCode::kInvalidArgument, "style = ", static_cast<int>(p.style),
                      ": allowed 0 (neox) or 1 (gptj)");
  if (p.arithmetic != RopeArithmetic::kFused && p.arithmetic != RopeArithmetic::kTransformersFp32 &&
      p.arithmetic != RopeArithmetic::kTransformersStorage)
    return make_error(StatusCode::kInvalidArgument, "arithmetic = ", static_cast<int>(p.arithmetic),
                      ": allowed 0 (fused), 1 (transformers-fp32), 2 (transformers-storage)");
  if (p.q.rank != 3 && p.q.rank != 4)
    return make_error(StatusCode::kShapeMismatch, "q.rank = ", p.q.rank,
                      ": allowed 4 ([B, S, H, D]) or 3 (packed [T, H, D])");
  const int r = p.q.rank;
  QWEN3VL_RETURN_IF_ERROR(detail::check_rope_tensor(p.q, "q", r, need_data));
  s.packed = r == 3;
  s.batch = s.packed ? 1 : p.q.shape[0];
  s.seq = p.q.shape[r - 3];
  s.q_heads = p.q.shape[r - 2];
  s.head_dim = p.q.shape[r - 1];
  if (p.k.present()) {
    QWEN3VL_RETURN_IF_ERROR(detail::check_rope_tensor(p.k, "k", r, need_data));
    if (p.k.dtype != p.q.dtype || p.k.device != p.q.device)
      return make_error(StatusCode::kInvalidArgument, "k.dtype = ", to_string(p.k.dtype), " on ",
                        to_string(p.k.device), ": must match q (", to_string(p.q.dtype), " on ",
                        to_string(p.q.device), ")");
    for (int d = 0; d < r - 2; ++d)
      if (p.k.shape[d] != p.q.shape[d])
        return make_error(StatusCode::kShapeMismatch, "k.shape[", d, "] = ", p.k.shape[d],
                          ": must equal q.shape[", d, "] = ", p.q.shape[d]);
    if (p.k.shape[r - 1] != s.head_dim)
      return make_error(StatusCode::kShapeMismatch, "k.shape[", r - 1,
                        "] (head_dim) = ", p.k.shape[r - 1],
                        ": must equal q's head_dim = ", s.head_dim);
    s.k_heads = p.k.shape[r - 2];
  }
  const RopeTableView& t = p.table;
  if (t.cos == nullptr || t.sin == nullptr || t.axis == nullptr || t.half < 1 ||
      (t.layout == TableLayout::kSplit && (t.cos_hi == nullptr || t.sin_hi == nullptr)))
    return make_error(StatusCode::kNullPointer, "table: empty or incomplete (half = ", t.half,
                      "): build it with RopeTable::create or make_text_table");
  if (t.device != p.q.device)
    return make_error(StatusCode::kInvalidArgument, "table.device = ", to_string(t.device),
                      ": must be q's device (", to_string(p.q.device), ")");
  s.rotary_dim = 2 * int64_t{t.half};
  if (s.rotary_dim > s.head_dim)
    return make_error(StatusCode::kShapeMismatch, "table rotary_dim = ", s.rotary_dim,
                      ": must be <= head_dim = ", s.head_dim);
  const TensorView& pos = p.positions;
  if (pos.dtype != DType::kI32)
    return make_error(StatusCode::kInvalidArgument, "positions.dtype = ", to_string(pos.dtype),
                      ": allowed i32");
  const int token_rank = r - 2;  // [B, S] or [T]
  if (pos.rank != token_rank && pos.rank != token_rank + 1)
    return make_error(StatusCode::kShapeMismatch, "positions.rank = ", pos.rank, ": allowed ",
                      token_rank, " (", s.packed ? "[T]" : "[B, S]", ") or ", token_rank + 1, " (",
                      s.packed ? "[axes, T]" : "[axes, B, S]", ")");
  s.positions_axis = pos.rank == token_rank + 1;
  if (s.positions_axis && pos.shape[0] != t.axes)
    return make_error(StatusCode::kShapeMismatch, "positions.shape[0] (axes) = ", pos.shape[0],
                      ": must equal the table's axes = ", t.axes);
  for (int d = 0; d < token_rank; ++d)
    if (pos.shape[d + (s.positions_axis ? 1 : 0)] != p.q.shape[d])
      return make_error(StatusCode::kShapeMismatch, "positions.shape = ", pos.shape_string(),
                        ": token dimensions must equal q's ", p.q.shape_string());
  if (need_data && pos.data == nullptr && s.tokens() > 0)
    return make_error(StatusCode::kNullPointer, "positions.data = null");
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_view_extent(pos, "positions"));
  // Rotated in place: each element of q and k written once (after the shape checks, which name
  // a mismatched view more precisely).
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_no_self_overlap(p.q, "q"));
  if (p.k.present()) QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_no_self_overlap(p.k, "k"));
  *shape = s;
  return Status();
}

// Element offset of token (b, i)'s row of head 0 in q or k, and of its position on axis a.
inline int64_t rope_row_offset(const TensorView& t, const RopeApplyShape& s, int64_t b, int64_t i) {
  return s.packed ? t.offset(i) : t.offset(b, i);
}
QWEN3VL_HOST_DEVICE inline int64_t rope_position_offset(const int64_t* stride, bool packed,
                                                        bool axis_dim, int64_t a, int64_t b,
                                                        int64_t i) {
  if (axis_dim)
    return packed ? a * stride[0] + i * stride[1] : a * stride[0] + b * stride[1] + i * stride[2];
  return packed ? i * stride[0] : b * stride[0] + i * stride[1];
}

// Host positions in [0, table.max_position); the error names the first that is not.
[[nodiscard]] inline Status check_positions(const RopeApplyParams& p, const RopeApplyShape& s) {
  const int32_t* pos = p.positions.ptr<const int32_t>();
  const int64_t axes = s.positions_axis ? p.table.axes : 1;
  for (int64_t a = 0; a < axes; ++a)
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t i = 0; i < s.seq; ++i) {
        const int32_t v =
            pos[rope_position_offset(p.positions.stride, s.packed, s.positions_axis, a, b, i)];
        if (v < 0 || v >= p.table.max_position)
          return make_error(StatusCode::kInvalidArgument, "positions[",
                            s.positions_axis ? "axis " : "",
                            s.positions_axis ? std::to_string(a) + ", " : std::string(),
                            s.packed ? "" : std::to_string(b) + ", ", i, "] = ", v, ": allowed 0..",
                            p.table.max_position - 1, " (the table's max_position - 1)");
      }
  return Status();
}

namespace detail {

// Rounding to the storage type T (identity for float).
template <class T>
QWEN3VL_HOST_DEVICE inline float round_to(float x) {
  return to_float(from_float<T>(x));
}

#if defined(__CUDA_ARCH__)
#define QWEN3VL_ROPE_FMA(a, b, c) __fmaf_rn(a, b, c)
#define QWEN3VL_ROPE_MUL(a, b) __fmul_rn(a, b)
#define QWEN3VL_ROPE_ADD(a, b) __fadd_rn(a, b)
#define QWEN3VL_ROPE_SUB(a, b) __fsub_rn(a, b)
#else
#define QWEN3VL_ROPE_FMA(a, b, c) std::fma(a, b, c)
#define QWEN3VL_ROPE_MUL(a, b) ((a) * (b))
#define QWEN3VL_ROPE_ADD(a, b) ((a) + (b))
#define QWEN3VL_ROPE_SUB(a, b) ((a) - (b))
#endif

// The rotation of one pair, the reference for every SIMD and CUDA kernel (bit-identical results).
// With kTransformersStorage, c and s arrive already rounded to T.
template <class Isa, RopeArithmetic A, class T>
QWEN3VL_HOST_DEVICE inline void rotate_pair(float x1, float x2, float c, float s, float* o1,
                                            float* o2) {
  if (A == RopeArithmetic::kFused) {
    *o1 = QWEN3VL_ROPE_FMA(x1, c, -QWEN3VL_ROPE_MUL(x2, s));
    *o2 = QWEN3VL_ROPE_FMA(x2, c, QWEN3VL_ROPE_MUL(x1, s));
  } else if (A == RopeArithmetic::kTransformersFp32) {
    *o1 = QWEN3VL_ROPE_SUB(QWEN3VL_ROPE_MUL(x1, c), QWEN3VL_ROPE_MUL(x2, s));
    *o2 = QWEN3VL_ROPE_ADD(QWEN3VL_ROPE_MUL(x2, c), QWEN3VL_ROPE_MUL(x1, s));
  } else {
    const float a1 = round_to<T>(QWEN3VL_ROPE_MUL(x1, c)),
                b1 = round_to<T>(QWEN3VL_ROPE_MUL(x2, s));
    const float a2 = round_to<T>(QWEN3VL_ROPE_MUL(x2, c)),
                b2 = round_to<T>(QWEN3VL_ROPE_MUL(x1, s));
    *o1 = QWEN3VL_ROPE_SUB(a1, b1);
    *o2 = QWEN3VL_ROPE_ADD(a2, b2);
  }
}

}  // namespace detail

// Applies RoPE on one device. apply() validates everything up front and never throws.
class RopeApplier {
 public:
  virtual ~RopeApplier() = default;
  virtual Device device() const = 0;
  // On CUDA `stream` is the cudaStream_t; positions out of range are reported by take_error().
  virtual Status apply(const RopeApplyParams& params, void* stream = nullptr) const = 0;
  // CPU: always ok (apply checks positions itself). CUDA: waits for `stream` and reports the first
  // out-of-range position any earlier apply() met (those tokens were left unrotated).
  virtual Status take_error(void* stream = nullptr) const = 0;
  virtual std::string describe() const = 0;

  // Convenience for host callers: throws Error on failure.
  void run(const RopeApplyParams& params) const {
    throw_if_error(apply(params));
    throw_if_error(take_error());
  }
};

// The CPU applier: oneTBB over tokens, SIMD per the chosen ISA (CpuOptions: threads, isa).
[[nodiscard]] Status create_rope_cpu(const CpuOptions& options, std::unique_ptr<RopeApplier>* out);

}  // namespace qwen3vl::rope
