// AttentionPlan: what Attention::plan() decided for one problem, reused by Attention::run() for
// every call of the same shapes (plan once, run many).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "qwen3vl/core/params.hpp"

namespace qwen3vl {

enum class Variant : uint8_t {
  kAuto,
  kStandard,        // scores materialised; can return the attention weights
  kFlash2,          // FlashAttention-2 style fused kernel, O(n) memory
  kSm61Tiled,       // flash kernel with Pascal (sm_61) tiles
  kStaticSparse,    // fixed sparse patterns (window, dilated, global, BigBird, ...)
  kDynamicSparse,   // routed sparse: the pattern is chosen from the inputs
  kBlockSparse,     // BSR block-sparse layout
  kLinear,          // linear attention (kernel feature maps)
  kMixtureOfHeads,  // per-token top-k head routing
};

const char* to_string(Variant v);

namespace detail {

// A tensor argument as the plan saw it: everything but the data pointer, which run() may change,
// except for host-resident index tensors (cu_seqlens, key_lengths, q_positions, block layouts),
// whose values plan() read: their pointer is kept, and a hash of their values, so that values
// rewritten in place between plan() and run() are refused rather than run with a stale plan.
struct TensorSignature {
  const void* index_data = nullptr;
  uint64_t index_hash = 0;  // FNV-1a of the values in index order (host index tensors only)
  DType dtype = DType::kF32;
  Device device = Device::kCPU;
  int device_index = 0;
  int rank = 0;
  int64_t shape[TensorView::kMaxRank] = {0, 0, 0, 0};
  int64_t stride[TensorView::kMaxRank] = {0, 0, 0, 0};
};

// The signature of a view without index fields: dtype, device, rank, shape and strides.
inline TensorSignature view_signature(const TensorView& v) {
  TensorSignature s;
  s.dtype = v.dtype;
  s.device = v.device;
  s.device_index = v.device_index;
  s.rank = v.rank;
  for (int d = 0; d < v.rank && d < TensorView::kMaxRank; ++d) {
    s.shape[d] = v.shape[d];
    s.stride[d] = v.stride[d];
  }
  return s;
}

// Whether two signatures agree on everything but the index fields (`want`'s rank is a validated
// one: at most kMaxRank). Rank-0 (absent) views agree whatever their dtype or device.
inline bool same_view(const TensorSignature& got, const TensorSignature& want) {
  if (got.rank != want.rank) return false;
  for (int d = 0; d < got.rank && d < TensorView::kMaxRank; ++d)
    if (got.shape[d] != want.shape[d] || got.stride[d] != want.stride[d]) return false;
  return got.rank == 0 || (got.dtype == want.dtype && got.device == want.device &&
                           got.device_index == want.device_index);
}

// Every field of AttentionParams that a plan depends on.
struct ProblemSignature {
  static constexpr int kTensors = kParamTensors;  // in param_tensors() order
  TensorSignature tensors[kTensors];
  bool has_scale = false;
  float scale = 0.0f;
  float softcap = 0.0f;
  MaskKind mask = MaskKind::kNone;
  int64_t window_left = -1, window_right = -1;
  int64_t max_seqlen_q = 0, max_seqlen_k = 0;
  int32_t block_q = 0, block_k = 0;
};

ProblemSignature signature_of(const AttentionParams& params);
// kInvalidArgument naming the first field of `params` that differs from the planned one. Allocates
// nothing when they match (run()'s hot path); the message is built on a mismatch only.
Status check_signature(const ProblemSignature& planned, const AttentionParams& params);

}  // namespace detail

// A plan: a plain copyable value, valid for the object that made it and for params equal to the
// planned ones up to the data pointers of q, k, v, out, lse, weights and additive_mask.
struct AttentionPlan {
  Variant variant = Variant::kAuto;
  Device device = Device::kCPU;
  // The id of the Attention object that made it (Attention::id(): unique for the process's life,
  // so an object allocated where a destroyed one lived never accepts that one's plans); 0: none.
  uint64_t owner = 0;
  AttentionShape shape;        // what validate() derived
  size_t workspace_bytes = 0;  // run() needs at least this much workspace
  detail::ProblemSignature signature;
  std::string reason;  // what was chosen for this problem and why (describe() for the problem)
  // Whether make_plan fills reason: false for the one-off plans of forward(), supports() and
  // workspace_size(), whose reason nobody reads (building it costs string allocations per call).
  bool with_reason = true;
  // The variant's own decisions (tiles, inner plans, layouts), immutable and shared by copies.
  std::shared_ptr<const void> data;
};

}  // namespace qwen3vl
