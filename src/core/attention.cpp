#include "qwen3vl/variants/attention.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "src/core/host_workspace.hpp"

namespace qwen3vl {

namespace {
constexpr Variant kAllVariants[] = {
    Variant::kAuto,        Variant::kStandard,     Variant::kFlash2,
    Variant::kSm61Tiled,   Variant::kStaticSparse, Variant::kDynamicSparse,
    Variant::kBlockSparse, Variant::kLinear,       Variant::kMixtureOfHeads};
}

const char* to_string(Variant v) {
  switch (v) {
    case Variant::kAuto: return "auto";
    case Variant::kStandard: return "standard";
    case Variant::kFlash2: return "flash2";
    case Variant::kSm61Tiled: return "sm61_tiled";
    case Variant::kStaticSparse: return "static_sparse";
    case Variant::kDynamicSparse: return "dynamic_sparse";
    case Variant::kBlockSparse: return "block_sparse";
    case Variant::kLinear: return "linear";
    case Variant::kMixtureOfHeads: return "moh";
  }
  return "?";
}

Status parse_variant(const std::string& text, Variant* v) {
  std::string allowed;
  for (Variant candidate : kAllVariants) {
    if (text == to_string(candidate)) {
      *v = candidate;
      return Status();
    }
    allowed += (allowed.empty() ? "" : ", ") + std::string(to_string(candidate));
  }
  return make_error(StatusCode::kInvalidArgument, "variant = '", text, "': allowed ", allowed);
}

namespace detail {
namespace {

// FNV-1a over a host i32 tensor's values in index order (strides followed).
uint64_t index_hash(const TensorView& v) {
  uint64_t h = 1469598103934665603ull;
  const int64_t n = v.numel();
  if (v.data == nullptr || n <= 0) return h;
  const int32_t* base = v.ptr<const int32_t>();
  int64_t at[TensorView::kMaxRank] = {0, 0, 0, 0};
  for (int64_t e = 0; e < n; ++e) {
    int64_t off = 0;
    for (int d = 0; d < v.rank; ++d) off += at[d] * v.stride[d];
    uint32_t x = static_cast<uint32_t>(base[off]);
    for (int byte = 0; byte < 4; ++byte, x >>= 8) h = (h ^ (x & 0xffu)) * 1099511628211ull;
    for (int d = v.rank - 1; d >= 0 && ++at[d] == v.shape[d]; --d) at[d] = 0;
  }
  return h;
}

bool host_index(const ParamTensor& t) {
  return t.role == TensorRole::kIndex && t.view->present() && t.view->device == Device::kCPU;
}

// Everything but the values' hash (hash_of: once the shape is known to be the planned one).
TensorSignature tensor_signature(const ParamTensor& t) {
  TensorSignature s = view_signature(*t.view);
  s.index_data = host_index(t) ? t.view->data : nullptr;
  return s;
}

uint64_t hash_of(const ParamTensor& t) { return host_index(t) ? index_hash(*t.view) : 0; }

// All but the hash (want's rank is a validated one: at most kMaxRank).
bool same_tensor(const TensorSignature& got, const TensorSignature& want) {
  return same_view(got, want) && (got.rank == 0 || got.index_data == want.index_data);
}

bool same_scalars(const ProblemSignature& planned, const AttentionParams& p) {
  return p.scale.has_value() == planned.has_scale && p.scale.value_or(0.0f) == planned.scale &&
         p.softcap == planned.softcap && p.mask == planned.mask &&
         p.window_left == planned.window_left && p.window_right == planned.window_right &&
         p.max_seqlen_q == planned.max_seqlen_q && p.max_seqlen_k == planned.max_seqlen_k &&
         p.block_layout.block_q == planned.block_q && p.block_layout.block_k == planned.block_k;
}

std::string dims(const int64_t* x, int rank) {
  std::string s = "[";
  for (int d = 0; d < rank; ++d) s += (d ? ", " : "") + std::to_string(x[d]);
  return s + "]";
}

Status differs(const std::string& field, const std::string& given, const std::string& planned) {
  return make_error(StatusCode::kInvalidArgument, "params.", field, " = ", given,
                    ": the plan was made for ", planned, " (plan() these params)");
}

// The message for a tensor that differs from the planned one (same_tensor() was false).
Status tensor_differs(const std::string& name, const TensorSignature& got,
                      const TensorSignature& want) {
  if (got.rank != want.rank)
    return differs(name + ".rank", std::to_string(got.rank), std::to_string(want.rank));
  if (!std::equal(got.shape, got.shape + got.rank, want.shape))
    return differs(name + ".shape", dims(got.shape, got.rank), dims(want.shape, want.rank));
  if (!std::equal(got.stride, got.stride + got.rank, want.stride))
    return differs(name + ".stride", dims(got.stride, got.rank), dims(want.stride, want.rank));
  if (got.dtype != want.dtype)
    return differs(name + ".dtype", to_string(got.dtype), to_string(want.dtype));
  if (got.device != want.device || got.device_index != want.device_index)
    return differs(name + ".device",
                   std::string(to_string(got.device)) + ":" + std::to_string(got.device_index),
                   std::string(to_string(want.device)) + ":" + std::to_string(want.device_index));
  if (got.index_data != want.index_data)
    return differs(name + ".data", "another host index tensor", "the one whose values it read");
  return make_error(StatusCode::kInvalidArgument, "params.", name,
                    ": its values changed since plan() read them (the plan depends on them; "
                    "plan() again after rewriting a host index tensor)");
}

// The message for scalars that differ (same_scalars() was false).
Status scalars_differ(const ProblemSignature& planned, const AttentionParams& p) {
  const auto text = [](auto x) { return detail::concat(x); };
  if (p.scale.has_value() != planned.has_scale || p.scale.value_or(0.0f) != planned.scale)
    return differs("scale", p.scale ? text(*p.scale) : "unset",
                   planned.has_scale ? text(planned.scale) : "unset");
  if (p.softcap != planned.softcap)
    return differs("softcap", text(p.softcap), text(planned.softcap));
  if (p.mask != planned.mask) return differs("mask", to_string(p.mask), to_string(planned.mask));
  if (p.window_left != planned.window_left || p.window_right != planned.window_right)
    return differs("window", text(p.window_left) + ", " + text(p.window_right),
                   text(planned.window_left) + ", " + text(planned.window_right));
  if (p.max_seqlen_q != planned.max_seqlen_q || p.max_seqlen_k != planned.max_seqlen_k)
    return differs("max_seqlen_q/k", text(p.max_seqlen_q) + "/" + text(p.max_seqlen_k),
                   text(planned.max_seqlen_q) + "/" + text(planned.max_seqlen_k));
  return differs("block_layout blocks",
                 text(p.block_layout.block_q) + "x" + text(p.block_layout.block_k),
                 text(planned.block_q) + "x" + text(planned.block_k));
}

}  // namespace

ProblemSignature signature_of(const AttentionParams& p) {
  ProblemSignature s;
  ParamTensor tensors[kParamTensors];
  param_tensors(p, tensors);
  for (int t = 0; t < kParamTensors; ++t) {
    s.tensors[t] = tensor_signature(tensors[t]);
    s.tensors[t].index_hash = hash_of(tensors[t]);
  }
  s.has_scale = p.scale.has_value();
  s.scale = p.scale.value_or(0.0f);
  s.softcap = p.softcap;
  s.mask = p.mask;
  s.window_left = p.window_left;
  s.window_right = p.window_right;
  s.max_seqlen_q = p.max_seqlen_q;
  s.max_seqlen_k = p.max_seqlen_k;
  s.block_q = p.block_layout.block_q;
  s.block_k = p.block_layout.block_k;
  return s;
}

Status check_signature(const ProblemSignature& planned, const AttentionParams& p) {
  ParamTensor tensors[kParamTensors];
  param_tensors(p, tensors);
  for (int t = 0; t < kParamTensors; ++t) {
    TensorSignature got = tensor_signature(tensors[t]);
    if (same_tensor(got, planned.tensors[t])) got.index_hash = hash_of(tensors[t]);  // in bounds
    if (!same_tensor(got, planned.tensors[t]) || got.index_hash != planned.tensors[t].index_hash)
      return tensor_differs(tensors[t].name, got, planned.tensors[t]);
  }
  return same_scalars(planned, p) ? Status() : scalars_differ(planned, p);
}

}  // namespace detail

uint64_t Attention::next_id() {
  static std::atomic<uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;  // 0 means "no maker"
}

Status Attention::plan(const AttentionParams& problem, AttentionPlan* plan) const {
  if (plan == nullptr)
    return make_error(StatusCode::kNullPointer, "plan = null: must point to an AttentionPlan");
  return plan_problem(problem, /*need_data=*/false, /*for_run=*/true, plan);
}

Status Attention::plan_problem(const AttentionParams& problem, bool need_data, bool for_run,
                               AttentionPlan* plan) const {
  AttentionShape shape;
  QWEN3VL_RETURN_IF_ERROR(validate(problem, &shape, need_data));
  if (required_mask_ && problem.mask != *required_mask_)
    return make_error(StatusCode::kInvalidArgument, "params.mask = ", to_string(problem.mask),
                      " differs from config.mask = ", to_string(*required_mask_),
                      ": pass the config's mask with every call (or leave config.mask unset)");
  AttentionPlan made;
  made.with_reason = for_run;
  QWEN3VL_RETURN_IF_ERROR(plan_part(*this, problem, shape, &made));
  detail::plan_counter().fetch_add(1, std::memory_order_relaxed);
  if (for_run) made.signature = detail::signature_of(problem);
  *plan = std::move(made);
  return Status();
}

Status Attention::plan_part(const Attention& part, const AttentionParams& problem,
                            const AttentionShape& shape, AttentionPlan* plan) {
  plan->variant = part.variant();
  plan->device = part.device();
  plan->owner = part.id();
  plan->shape = shape;
  plan->workspace_bytes = 0;
  plan->reason.clear();  // with_reason is the caller's
  plan->data.reset();
  return part.make_plan(problem, plan);
}

Status Attention::run(const AttentionPlan& plan, const AttentionParams& params, Workspace ws,
                      void* stream) const {
  QWEN3VL_RETURN_IF_ERROR(check_run(plan, params, ws));
  return launch(plan, params, ws, stream);
}

Status Attention::check_run(const AttentionPlan& plan, const AttentionParams& params,
                            Workspace ws) const {
  if (plan.owner != id())
    return make_error(StatusCode::kInvalidArgument, "plan (", to_string(plan.variant), ", ",
                      to_string(plan.device),
                      "): ", plan.owner ? "made by another attention object" : "not made by plan()",
                      "; run() takes a plan of this object (", to_string(variant()), ", ",
                      to_string(device()), ")");
  QWEN3VL_RETURN_IF_ERROR(detail::check_signature(plan.signature, params));
  detail::ParamTensor tensors[detail::kParamTensors];
  detail::param_tensors(params, tensors);
  for (const detail::ParamTensor& t : tensors)  // host index tensors' pointers are the planned ones
    if (t.view->present() && t.view->data == nullptr && t.view->numel() > 0 &&
        !(t.role == detail::TensorRole::kIndex && t.view->device == Device::kCPU))
      return make_error(StatusCode::kNullPointer, t.name, ".data = null with shape ",
                        t.view->shape_string(), ": a non-empty tensor needs memory");
  QWEN3VL_RETURN_IF_ERROR(detail::check_data_pointers(params));  // the new pointers' checks
  return check_workspace(plan, ws);
}

Status Attention::check_workspace(const AttentionPlan& plan, Workspace ws) {
  if (plan.workspace_bytes > 0 && (ws.data == nullptr || ws.bytes < plan.workspace_bytes))
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ws.data ? "" : " (data = null)", ": need ", plan.workspace_bytes,
                      " (workspace_size() for these params)");
  return Status();
}

// The one-off entry points plan with the data (validate() then checks the data pointers too) and
// launch that plan at once: no signature to compare, no reason text to build.
Status Attention::forward(const AttentionParams& params, Workspace ws, void* stream) const {
  AttentionPlan made;
  QWEN3VL_RETURN_IF_ERROR(plan_problem(params, /*need_data=*/true, /*for_run=*/false, &made));
  QWEN3VL_RETURN_IF_ERROR(check_workspace(made, ws));
  return launch(made, params, ws, stream);
}

Status Attention::supports(const AttentionParams& params) const {
  AttentionPlan made;
  return plan_problem(params, /*need_data=*/false, /*for_run=*/false, &made);
}

size_t Attention::workspace_size(const AttentionParams& params) const {
  AttentionPlan made;
  return plan_problem(params, /*need_data=*/false, /*for_run=*/false, &made).ok()
             ? made.workspace_bytes
             : 0;
}

std::string Attention::describe() const {
  const std::string what = description();
  if (selection_reason_.empty()) return what;
  const std::string mask =
      required_mask_ ? std::string("mask ") + to_string(*required_mask_) : "mask per call";
  return what + " [" + selection_reason_ + "; " + mask + "]";
}

void Attention::run(const AttentionParams& params) const {
  if (device() != Device::kCPU)
    throw Error(StatusCode::kUnsupported,
                detail::concat("run() on a ", to_string(device()), " variant (",
                               to_string(variant()), "): run() allocates host memory; call ",
                               "forward() with a device workspace of workspace_size() bytes"));
  AttentionPlan made;
  throw_if_error(plan_problem(params, /*need_data=*/true, /*for_run=*/false, &made));
  const detail::HostWorkspace buffer(made.workspace_bytes);
  throw_if_error(launch(made, params, buffer.workspace(), nullptr));
}

}  // namespace qwen3vl
