#include "qwen3vl/variants/attention.hpp"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

namespace qwen3vl {

namespace {
constexpr Variant kAllVariants[] = {
    Variant::kAuto,         Variant::kStandard,      Variant::kFlash2,
    Variant::kSm61Tiled,    Variant::kStaticSparse,  Variant::kDynamicSparse,
    Variant::kBlockSparse,  Variant::kLinear,        Variant::kMixtureOfHeads};
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

// The tensors of a signature, in the order check_signature() reports them.
struct NamedTensor {
  const char* name;
  const TensorView* view;
  bool index;  // host-resident values that plan() reads
};

void named_tensors(const AttentionParams& p, NamedTensor (&out)[ProblemSignature::kTensors]) {
  const NamedTensor all[ProblemSignature::kTensors] = {
      {"q", &p.q, false},
      {"k", &p.k, false},
      {"v", &p.v, false},
      {"out", &p.out, false},
      {"lse", &p.lse, false},
      {"weights", &p.weights, false},
      {"cu_seqlens_q", &p.cu_seqlens_q, true},
      {"cu_seqlens_k", &p.cu_seqlens_k, true},
      {"additive_mask", &p.additive_mask, false},
      {"key_lengths", &p.key_lengths, true},
      {"q_positions", &p.q_positions, true},
      {"block_layout.indptr", &p.block_layout.indptr, true},
      {"block_layout.indices", &p.block_layout.indices, true}};
  for (int t = 0; t < ProblemSignature::kTensors; ++t) out[t] = all[t];
}

TensorSignature tensor_signature(const TensorView& v, bool index) {
  TensorSignature t;
  t.index_data = index && v.device == Device::kCPU ? v.data : nullptr;
  t.dtype = v.dtype;
  t.device = v.device;
  t.device_index = v.device_index;
  t.rank = v.rank;
  for (int d = 0; d < v.rank; ++d) {
    t.shape[d] = v.shape[d];
    t.stride[d] = v.stride[d];
  }
  return t;
}

std::string dims(const int64_t* x, int rank) {
  std::string s = "[";
  for (int d = 0; d < rank; ++d) s += (d ? ", " : "") + std::to_string(x[d]);
  return s + "]";
}

Status differs(const char* field, const std::string& given, const std::string& planned) {
  return make_error(StatusCode::kInvalidArgument, "params.", field, " = ", given,
                    ": the plan was made for ", planned, " (plan() these params)");
}

}  // namespace

ProblemSignature signature_of(const AttentionParams& p) {
  ProblemSignature s;
  NamedTensor tensors[ProblemSignature::kTensors];
  named_tensors(p, tensors);
  for (int t = 0; t < ProblemSignature::kTensors; ++t)
    s.tensors[t] = tensor_signature(*tensors[t].view, tensors[t].index);
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
  NamedTensor tensors[ProblemSignature::kTensors];
  named_tensors(p, tensors);
  for (int t = 0; t < ProblemSignature::kTensors; ++t) {
    const TensorSignature& want = planned.tensors[t];
    const TensorSignature got = tensor_signature(*tensors[t].view, tensors[t].index);
    const std::string name = tensors[t].name;
    if (got.rank != want.rank)
      return differs((name + ".rank").c_str(), std::to_string(got.rank), std::to_string(want.rank));
    if (!std::equal(got.shape, got.shape + got.rank, want.shape))
      return differs((name + ".shape").c_str(), dims(got.shape, got.rank),
                     dims(want.shape, want.rank));
    if (!std::equal(got.stride, got.stride + got.rank, want.stride))
      return differs((name + ".stride").c_str(), dims(got.stride, got.rank),
                     dims(want.stride, want.rank));
    if (got.rank == 0) continue;
    if (got.dtype != want.dtype)
      return differs((name + ".dtype").c_str(), to_string(got.dtype), to_string(want.dtype));
    if (got.device != want.device || got.device_index != want.device_index)
      return differs((name + ".device").c_str(),
                     std::string(to_string(got.device)) + ":" + std::to_string(got.device_index),
                     std::string(to_string(want.device)) + ":" + std::to_string(want.device_index));
    if (got.index_data != want.index_data)
      return differs((name + ".data").c_str(), "another host index tensor",
                     "the one whose values it read");
  }
  const auto text = [](auto x) { return detail::concat(x); };
  if (p.scale.has_value() != planned.has_scale || p.scale.value_or(0.0f) != planned.scale)
    return differs("scale", p.scale ? text(*p.scale) : "unset",
                   planned.has_scale ? text(planned.scale) : "unset");
  if (p.softcap != planned.softcap) return differs("softcap", text(p.softcap), text(planned.softcap));
  if (p.mask != planned.mask) return differs("mask", to_string(p.mask), to_string(planned.mask));
  if (p.window_left != planned.window_left || p.window_right != planned.window_right)
    return differs("window", text(p.window_left) + ", " + text(p.window_right),
                   text(planned.window_left) + ", " + text(planned.window_right));
  if (p.max_seqlen_q != planned.max_seqlen_q || p.max_seqlen_k != planned.max_seqlen_k)
    return differs("max_seqlen_q/k", text(p.max_seqlen_q) + "/" + text(p.max_seqlen_k),
                   text(planned.max_seqlen_q) + "/" + text(planned.max_seqlen_k));
  if (p.block_layout.block_q != planned.block_q || p.block_layout.block_k != planned.block_k)
    return differs("block_layout blocks",
                   text(p.block_layout.block_q) + "x" + text(p.block_layout.block_k),
                   text(planned.block_q) + "x" + text(planned.block_k));
  return Status();
}

}  // namespace detail

Status Attention::plan(const AttentionParams& problem, AttentionPlan* plan) const {
  if (plan == nullptr) return make_error(StatusCode::kNullPointer, "plan = null: must point to an AttentionPlan");
  AttentionShape shape;
  QWEN3VL_RETURN_IF_ERROR(validate(problem, &shape, /*need_data=*/false));
  if (required_mask_ && problem.mask != *required_mask_)
    return make_error(StatusCode::kInvalidArgument, "params.mask = ", to_string(problem.mask),
                      " differs from config.mask = ", to_string(*required_mask_),
                      ": pass the config's mask with every call (or leave config.mask unset)");
  AttentionPlan made;
  QWEN3VL_RETURN_IF_ERROR(plan_part(*this, problem, shape, &made));
  detail::plan_counter().fetch_add(1, std::memory_order_relaxed);
  made.signature = detail::signature_of(problem);
  *plan = std::move(made);
  return Status();
}

Status Attention::plan_part(const Attention& part, const AttentionParams& problem,
                            const AttentionShape& shape, AttentionPlan* plan) {
  plan->variant = part.variant();
  plan->device = part.device();
  plan->owner = &part;
  plan->shape = shape;
  plan->workspace_bytes = 0;
  plan->reason.clear();
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
  if (plan.owner != this)
    return make_error(StatusCode::kInvalidArgument, "plan (", to_string(plan.variant), ", ",
                      to_string(plan.device), "): ",
                      plan.owner ? "made by another attention object" : "not made by plan()",
                      "; run() takes a plan of this object (", to_string(variant()), ", ",
                      to_string(device()), ")");
  QWEN3VL_RETURN_IF_ERROR(detail::check_signature(plan.signature, params));
  const TensorView* data[] = {&params.q,   &params.k,       &params.v,
                              &params.out, &params.lse,     &params.weights,
                              &params.additive_mask};
  const char* names[] = {"q", "k", "v", "out", "lse", "weights", "additive_mask"};
  for (int t = 0; t < 7; ++t)
    if (data[t]->present() && data[t]->data == nullptr && data[t]->numel() > 0)
      return make_error(StatusCode::kNullPointer, names[t], ".data = null with shape ",
                        data[t]->shape_string(), ": a non-empty tensor needs memory");
  QWEN3VL_RETURN_IF_ERROR(detail::check_data_pointers(params));  // the new pointers' checks
  if (plan.workspace_bytes > 0 && (ws.data == nullptr || ws.bytes < plan.workspace_bytes))
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ws.data ? "" : " (data = null)", ": need ", plan.workspace_bytes,
                      " (workspace_size() for these params)");
  return Status();
}

Status Attention::forward(const AttentionParams& params, Workspace ws, void* stream) const {
  AttentionPlan made;
  QWEN3VL_RETURN_IF_ERROR(plan(params, &made));
  return run(made, params, ws, stream);
}

Status Attention::supports(const AttentionParams& params) const {
  AttentionPlan made;
  return plan(params, &made);
}

size_t Attention::workspace_size(const AttentionParams& params) const {
  AttentionPlan made;
  return plan(params, &made).ok() ? made.workspace_bytes : 0;
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
  throw_if_error(plan(params, &made));
  const size_t bytes = made.workspace_bytes;
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> buffer(bytes ? std::malloc(bytes) : nullptr);
  if (bytes && !buffer)
    throw Error(StatusCode::kOutOfMemory, detail::concat("workspace of ", bytes, " bytes"));
  throw_if_error(run(made, params, Workspace{buffer.get(), bytes}));
}

}  // namespace qwen3vl
