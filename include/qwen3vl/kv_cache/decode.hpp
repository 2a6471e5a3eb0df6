// Decode attention: a few new query rows per sequence against a KV cache that already holds their
// keys. All query heads of a KV group are packed into one tile so that every K/V row is read once
// per group, the keys are split across threads (CPU) or thread blocks (CUDA), and the partial
// results are combined with merge_states' arithmetic.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "qwen3vl/core/merge_states.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/kv_cache/kv_cache_view.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

constexpr int64_t kMaxDecodeRows = 8;

// q, out [batch, R, Hq, D] (R = 1..8, any strides with the last dimension contiguous): the newest
// R tokens of each sequence, whose keys are already in the cache. Query row r of sequence b sees
// keys [0, seq_lens[b] - R + r] (causal, bottom-right aligned among the new rows); a row that sees
// no key gives output 0 and LSE -inf.
struct DecodeParams {
  TensorView q;
  KvCacheView kv;
  TensorView out;               // the dtype of q
  TensorView lse;               // optional f32 [batch, Hq, R], natural log
  std::optional<float> scale;   // default 1 / sqrt(D)
  int64_t num_splits = 0;       // key splits per sequence; 0 = chosen from the shape and device
};

struct DecodeShape {
  int64_t batch = 0, rows = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t max_len = 0;  // bound on seq_lens (kv.length_bound())
  float scale = 1.0f;
  int64_t group_size() const { return heads / kv_heads; }
};

// Every argument, once, before any kernel runs (see validate(KvCacheView) for the cache).
inline Status validate(const DecodeParams& p, DecodeShape* shape = nullptr) {
  QWEN3VL_RETURN_IF_ERROR(validate(p.kv));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.q, "q"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.out, "out"));
  DecodeShape s;
  s.batch = p.kv.batch();
  s.kv_heads = p.kv.kv_heads();
  s.head_dim = p.kv.head_dim();
  if (p.q.rank != 4)
    return make_error(StatusCode::kShapeMismatch, "q.rank = ", p.q.rank, " (shape ",
                      p.q.shape_string(), "): expected 4 ([batch, rows, Hq, D])");
  s.rows = p.q.shape[1];
  s.heads = p.q.shape[2];
  if (s.rows < 1 || s.rows > kMaxDecodeRows)
    return make_error(StatusCode::kInvalidArgument, "q.shape[1] (rows) = ", s.rows,
                      ": allowed 1..", kMaxDecodeRows);
  if (s.heads < 1 || s.heads % s.kv_heads != 0)
    return make_error(StatusCode::kInvalidArgument, "q.shape[2] (Hq) = ", s.heads,
                      ": must be a positive multiple of the cache's Hkv = ", s.kv_heads);
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.q, "q", 4, {s.batch, s.rows, s.heads, s.head_dim}));
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.out, "out", 4, {s.batch, s.rows, s.heads, s.head_dim}));
  for (const TensorView* t : {&p.q, &p.out}) {
    const char* name = t == &p.q ? "q" : "out";
    if (!is_floating(t->dtype))
      return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t->dtype),
                        ": allowed f32, f16, bf16");
    if (t->device != p.kv.k.device || t->device_index != p.kv.k.device_index)
      return make_error(StatusCode::kInvalidArgument, name, ".device = ", to_string(t->device), ":",
                        t->device_index, ": must equal the cache's device (",
                        to_string(p.kv.k.device), ":", p.kv.k.device_index, ")");
    QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(*t, name));
  }
  if (p.out.dtype != p.q.dtype)
    return make_error(StatusCode::kInvalidArgument, "out.dtype = ", to_string(p.out.dtype),
                      ": must equal q.dtype (", to_string(p.q.dtype), ")");
  if (p.kv.seq_lens.device != p.kv.k.device)
    return make_error(StatusCode::kInvalidArgument, "kv.seq_lens.device = ",
                      to_string(p.kv.seq_lens.device), ": must equal the cache's device (",
                      to_string(p.kv.k.device), ")");
  if (p.lse.present()) {
    if (p.lse.dtype != DType::kF32)
      return make_error(StatusCode::kInvalidArgument, "lse.dtype = ", to_string(p.lse.dtype),
                        ": must be f32");
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.lse, "lse", 3, {s.batch, s.heads, s.rows}));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.lse, "lse"));
    if (p.lse.device != p.q.device)
      return make_error(StatusCode::kInvalidArgument, "lse.device = ", to_string(p.lse.device),
                        ": must equal q.device");
  }
  if (p.scale && !std::isfinite(*p.scale))
    return make_error(StatusCode::kInvalidArgument, "scale = ", *p.scale, ": must be finite");
  if (p.num_splits < 0 || p.num_splits > 1024)
    return make_error(StatusCode::kInvalidArgument, "num_splits = ", p.num_splits,
                      ": allowed 0 (auto) .. 1024");
  // Outputs: no element written twice, no memory shared with the queries, the cache or each other.
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(p.out, "out"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.q, "q"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.k, "kv.k"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.v, "kv.v"));
  if (p.lse.present()) {
    QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(p.lse, "lse"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.q, "q"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.out, "out"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.kv.k, "kv.k"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.kv.v, "kv.v"));
  }
  s.max_len = p.kv.length_bound();
  s.scale = p.scale ? *p.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  if (shape) *shape = s;
  return Status();
}

// The decode counterpart of Attention: the same contract (supports / workspace_size / forward
// without allocation or host sync / describe), with DecodeParams.
class DecodeAttention {
 public:
  virtual ~DecodeAttention() = default;
  virtual Device device() const = 0;
  virtual Status supports(const DecodeParams& params) const = 0;
  virtual size_t workspace_size(const DecodeParams& params) const = 0;
  virtual Status forward(const DecodeParams& params, Workspace workspace,
                         void* stream = nullptr) const = 0;
  virtual std::string describe() const = 0;
  // The key splits forward() uses for these params (1 = no split).
  virtual int64_t splits(const DecodeParams& params) const = 0;

  // Convenience for host-side callers: allocates the workspace and throws Error on failure.
  void run(const DecodeParams& params) const;
};

// CPU decode: oneTBB over (sequence, key split, KV-head range), per-ISA inner loops (AVX-512,
// AVX2+FMA+F16C, scalar). The cache must be host-resident.
Status create_decode_cpu(const CpuOptions& options, std::unique_ptr<DecodeAttention>* out);

}  // namespace qwen3vl
