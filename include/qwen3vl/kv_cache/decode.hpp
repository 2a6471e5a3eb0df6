// Decode attention: a few new query rows per sequence against a KV cache that already holds their
// keys. All query heads of a KV group are packed into one tile so that every K/V row is read once
// per group, the keys are split across threads (CPU) or thread blocks (CUDA), and the partial
// results are combined with merge_states' arithmetic.
#pragma once

#include <atomic>
#include <cstdint>
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
  TensorView out;              // the dtype of q
  TensorView lse;              // optional f32 [batch, Hq, R], natural log
  std::optional<float> scale;  // default 1 / sqrt(D)
  int64_t num_splits = 0;      // key splits per sequence; 0 = chosen from the shape and device
  // int8 caches on the CPU: true computes Q.K as integer dot products of the int8 keys with q
  // quantized per (row, head) to int8 (kv_quantize_query); false (default) on the keys converted to
  // fp32 as the other formats do. The integer path saves a few percent of CPU time and adds q's
  // rounding (about 5e-3 relative on the text layer). Other formats and devices ignore it.
  bool integer_qk = false;
};

struct DecodeShape {
  int64_t batch = 0, rows = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t max_len = 0;  // bound on seq_lens (kv.length_bound())
  float scale = 1.0f;
  int64_t group_size() const { return heads / kv_heads; }
};

namespace detail {

// validate(DecodeParams) and DecodeAttention::plan() calls since the program started (relaxed
// atomics, as debug_counters.hpp keeps for Attention): tests check that forward() validates and
// plans once and that run() with a reused plan does neither.
inline std::atomic<uint64_t>& decode_validation_counter() {
  static std::atomic<uint64_t> count{0};
  return count;
}
inline std::atomic<uint64_t>& decode_plan_counter() {
  static std::atomic<uint64_t> count{0};
  return count;
}
inline uint64_t decode_validation_count() {
  return decode_validation_counter().load(std::memory_order_relaxed);
}
inline uint64_t decode_plan_count() {
  return decode_plan_counter().load(std::memory_order_relaxed);
}

// The outputs: no element written twice, no memory shared with the queries, the cache or each
// other. Pointer checks: run() makes them on every call (null data passes, as in a plan).
inline Status check_decode_overlaps(const DecodeParams& p) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(p.out, "out"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.q, "q"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.k, "kv.k"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.v, "kv.v"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.k_scales, "kv.k_scales"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.v_scales, "kv.v_scales"));
  if (p.lse.present()) {
    QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(p.lse, "lse"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.q, "q"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.out, "out"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.kv.k, "kv.k"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.kv.v, "kv.v"));
  }
  return Status();
}

}  // namespace detail

// Every argument, once, before any kernel runs (see validate(KvCacheView) for the cache).
// need_data = false (DecodeAttention::plan): q, out, lse, k and v may have null data.
inline Status validate(const DecodeParams& p, DecodeShape* shape = nullptr, bool need_data = true) {
  detail::decode_validation_counter().fetch_add(1, std::memory_order_relaxed);
  QWEN3VL_RETURN_IF_ERROR(validate(p.kv, need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.q, "q", need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.out, "out", need_data));
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
    return make_error(StatusCode::kInvalidArgument, "q.shape[1] (rows) = ", s.rows, ": allowed 1..",
                      kMaxDecodeRows);
  if (s.heads < 1 || s.heads % s.kv_heads != 0)
    return make_error(StatusCode::kInvalidArgument, "q.shape[2] (Hq) = ", s.heads,
                      ": must be a positive multiple of the cache's Hkv = ", s.kv_heads);
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.q, "q", 4, {s.batch, s.rows, s.heads, s.head_dim}));
  QWEN3VL_RETURN_IF_ERROR(
      detail::check_dims(p.out, "out", 4, {s.batch, s.rows, s.heads, s.head_dim}));
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
    return make_error(StatusCode::kInvalidArgument,
                      "kv.seq_lens.device = ", to_string(p.kv.seq_lens.device),
                      ": must equal the cache's device (", to_string(p.kv.k.device), ")");
  if (p.lse.present()) {
    if (p.lse.dtype != DType::kF32)
      return make_error(StatusCode::kInvalidArgument, "lse.dtype = ", to_string(p.lse.dtype),
                        ": must be f32");
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.lse, "lse", 3, {s.batch, s.heads, s.rows}));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.lse, "lse", need_data));
    if (p.lse.device != p.q.device)
      return make_error(StatusCode::kInvalidArgument, "lse.device = ", to_string(p.lse.device),
                        ": must equal q.device");
  }
  if (p.scale && !std::isfinite(*p.scale))
    return make_error(StatusCode::kInvalidArgument, "scale = ", *p.scale, ": must be finite");
  if (p.num_splits < 0 || p.num_splits > 1024)
    return make_error(StatusCode::kInvalidArgument, "num_splits = ", p.num_splits,
                      ": allowed 0 (auto) .. 1024");
  QWEN3VL_RETURN_IF_ERROR(detail::check_decode_overlaps(p));
  s.max_len = p.kv.length_bound();
  s.scale = p.scale ? *p.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  if (shape) *shape = s;
  return Status();
}

namespace detail {

// Every field of DecodeParams that a decode plan depends on.
struct DecodeSignature {
  // q out lse kv.k kv.v kv.seq_lens kv.block_table kv.k_scales kv.v_scales
  static constexpr int kTensors = 9;
  TensorSignature tensors[kTensors];  // view_signature(): no index fields
  KvLayout layout = KvLayout::kContiguous;
  KvFormat format = KvFormat::kFloat;
  int64_t max_seq_len = 0;
  bool has_scale = false;
  float scale = 0.0f;
  int64_t num_splits = 0;
};

DecodeSignature decode_signature_of(const DecodeParams& params);
// kInvalidArgument naming the first field of `params` that differs from the planned one.
Status check_decode_signature(const DecodeSignature& planned, const DecodeParams& params);

}  // namespace detail

// A decode plan: a plain copyable value, made from shapes (data pointers may be null, the cache's
// length bound kv.max_seq_len included) and the device's facts. It serves any decode object with
// the same facts (every layer of a model on one device) and any params equal to the planned ones
// up to the data pointers and the values of seq_lens / block_table: one plan a decode step.
struct DecodePlan {
  Device device = Device::kCPU;
  uint64_t facts = 0;  // the planning object's device facts (threads and ISA; SMs and kernel knobs)
  DecodeShape shape;
  int64_t splits = 1;          // key splits per sequence (1 = no split)
  int kernel = 0;              // the device's kernel choice (CUDA: 1 = tensor cores)
  size_t workspace_bytes = 0;  // run() needs at least this much workspace
  std::string reason;          // what was chosen for this problem and why
  detail::DecodeSignature signature;
};

// The decode counterpart of Attention, with the same contract: plan once from shapes, run many
// with cheap pointer and device checks only (no allocation, no host sync on CUDA).
// supports / workspace_size / splits / forward are plan() (+ run()) for one-off calls.
class DecodeAttention {
 public:
  virtual ~DecodeAttention() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;

  // Validates `problem` (data pointers may be null; host seq_lens / block_table are read when
  // present) and plans it; a problem this object cannot run is the error.
  Status plan(const DecodeParams& problem, DecodePlan* plan) const;
  // Whether `plan` serves `params` on this object: same device facts, params equal to the planned
  // ones up to the data pointers. run() starts with this check.
  Status check_plan(const DecodePlan& plan, const DecodeParams& params) const;
  // Computes params.out (and lse) with a plan: check_plan, the data pointers, the values of
  // host-resident seq_lens / block_table (they change every step), the workspace, then launches.
  Status run(const DecodePlan& plan, const DecodeParams& params, Workspace workspace,
             void* stream = nullptr) const;

  // plan() and run()'s data checks (pointers, overlaps, host table values): whether forward() runs.
  Status supports(const DecodeParams& params) const;
  size_t workspace_size(const DecodeParams& params) const;
  Status forward(const DecodeParams& params, Workspace workspace, void* stream = nullptr) const;
  // The key splits forward() uses for these params (1 = no split, or refused).
  int64_t splits(const DecodeParams& params) const;

  // Convenience for host-side callers: allocates the workspace and throws Error on failure.
  void run(const DecodeParams& params) const;

 protected:
  // What a plan of this object depends on besides the problem (threads, SM count, knobs).
  virtual uint64_t facts() const = 0;
  // Device checks before validation (the CPU refuses a device cache up front).
  virtual Status check_device(const DecodeParams& /*problem*/) const { return Status(); }
  // The object's planning for a validated problem: fills splits, kernel, workspace_bytes, reason.
  virtual Status make_plan(const DecodeParams& problem, DecodePlan* plan) const = 0;
  // The launch: the plan fits, pointers are set, the workspace holds plan.workspace_bytes.
  virtual Status launch(const DecodePlan& plan, const DecodeParams& params, Workspace workspace,
                        void* stream) const = 0;
};

// CPU decode: oneTBB over (sequence, key split, KV-head range), per-ISA inner loops (AVX-512,
// AVX2+FMA+F16C, scalar). The cache must be host-resident.
Status create_decode_cpu(const CpuOptions& options, std::unique_ptr<DecodeAttention>* out);

}  // namespace qwen3vl
