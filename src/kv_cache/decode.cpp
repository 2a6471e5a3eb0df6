// DecodeAttention's plan / run contract, shared by every device: plan() validates once and asks
// the device for its plan; run() checks that the plan fits, the pointers and the host-resident
// table values, then launches. The one-off calls are built on the two.
#include <cstdlib>
#include <memory>

#include "qwen3vl/kv_cache/decode.hpp"
#include "src/core/host_workspace.hpp"

namespace qwen3vl {
namespace detail {
namespace {

const TensorView* decode_tensors(const DecodeParams& p, int i) {
  const TensorView* all[DecodeSignature::kTensors] = {
      &p.q,           &p.out,        &p.lse, &p.kv.k, &p.kv.v, &p.kv.seq_lens, &p.kv.block_table,
      &p.kv.k_scales, &p.kv.v_scales};
  return all[i];
}
const char* const kDecodeTensorNames[DecodeSignature::kTensors] = {
    "q",           "out",        "lse", "kv.k", "kv.v", "kv.seq_lens", "kv.block_table",
    "kv.k_scales", "kv.v_scales"};

}  // namespace

DecodeSignature decode_signature_of(const DecodeParams& p) {
  DecodeSignature s;
  for (int i = 0; i < DecodeSignature::kTensors; ++i)
    s.tensors[i] = view_signature(*decode_tensors(p, i));
  s.layout = p.kv.layout;
  s.format = p.kv.format;
  s.max_seq_len = p.kv.max_seq_len;
  s.has_scale = p.scale.has_value();
  s.scale = p.scale.value_or(0.0f);
  s.num_splits = p.num_splits;
  return s;
}

Status check_decode_signature(const DecodeSignature& planned, const DecodeParams& p) {
  const auto differs = [](const char* field, const std::string& got, const std::string& want) {
    return make_error(StatusCode::kInvalidArgument, "params.", field, " = ", got,
                      " differs from the plan's ", want,
                      ": run() takes params equal to the planned ones up to the data pointers "
                      "(plan again for another shape)");
  };
  for (int i = 0; i < DecodeSignature::kTensors; ++i) {
    const TensorView& t = *decode_tensors(p, i);
    if (!same_view(view_signature(t), planned.tensors[i])) {
      const TensorSignature& w = planned.tensors[i];
      TensorView want;
      want.rank = w.rank;
      for (int d = 0; d < w.rank && d < TensorView::kMaxRank; ++d) {
        want.shape[d] = w.shape[d];
        want.stride[d] = w.stride[d];
      }
      return differs(
          kDecodeTensorNames[i],
          concat(to_string(t.dtype), " ", t.shape_string(), " strides ", t.stride_string(), " on ",
                 to_string(t.device), ":", t.device_index),
          concat(to_string(w.dtype), " ", want.shape_string(), " strides ", want.stride_string(),
                 " on ", to_string(w.device), ":", w.device_index));
    }
  }
  if (p.kv.layout != planned.layout)
    return differs("kv.layout", to_string(p.kv.layout), to_string(planned.layout));
  if (p.kv.format != planned.format)
    return differs("kv.format", to_string(p.kv.format), to_string(planned.format));
  if (p.kv.max_seq_len != planned.max_seq_len)
    return differs("kv.max_seq_len", concat(p.kv.max_seq_len), concat(planned.max_seq_len));
  if (p.scale.has_value() != planned.has_scale || p.scale.value_or(0.0f) != planned.scale)
    return differs("scale", p.scale ? concat(*p.scale) : "unset",
                   planned.has_scale ? concat(planned.scale) : "unset");
  if (p.num_splits != planned.num_splits)
    return differs("num_splits", concat(p.num_splits), concat(planned.num_splits));
  return Status();
}

}  // namespace detail

namespace {
Status check_decode_data(const DecodeParams& params);
}  // namespace

Status DecodeAttention::plan(const DecodeParams& problem, DecodePlan* plan) const {
  if (plan == nullptr)
    return make_error(StatusCode::kNullPointer, "plan = null: must point to a DecodePlan");
  QWEN3VL_RETURN_IF_ERROR(check_device(problem));
  if (is_compressed(problem.kv.format) && device() != Device::kCPU)
    return make_error(StatusCode::kUnsupported, "kv.format = ", to_string(problem.kv.format),
                      ": the ", to_string(device()),
                      " decode reads f32, f16 and bf16 caches only (compressed formats: CPU)");
  DecodePlan made;
  QWEN3VL_RETURN_IF_ERROR(validate(problem, &made.shape, /*need_data=*/false));
  made.device = device();
  made.facts = facts();
  QWEN3VL_RETURN_IF_ERROR(make_plan(problem, &made));
  detail::decode_plan_counter().fetch_add(1, std::memory_order_relaxed);
  made.signature = detail::decode_signature_of(problem);
  *plan = std::move(made);
  return Status();
}

Status DecodeAttention::check_plan(const DecodePlan& plan, const DecodeParams& params) const {
  if (plan.device != device() || plan.facts != facts())
    return make_error(
        StatusCode::kInvalidArgument, "plan (", to_string(plan.device), "): ",
        plan.facts == 0 ? "not made by plan()" : "made by a decode object of other device facts",
        "; run() takes a plan of an object like this one (", describe(), ")");
  return detail::check_decode_signature(plan.signature, params);
}

namespace {
// What run() checks of the data on every call: pointers set, outputs apart from inputs, host table
// values within bounds.
Status check_decode_data(const DecodeParams& params) {
  const TensorView* data[] = {&params.q,
                              &params.out,
                              &params.lse,
                              &params.kv.k,
                              &params.kv.v,
                              &params.kv.seq_lens,
                              &params.kv.block_table,
                              &params.kv.k_scales,
                              &params.kv.v_scales};
  const char* names[] = {
      "q",           "out",        "lse", "kv.k", "kv.v", "kv.seq_lens", "kv.block_table",
      "kv.k_scales", "kv.v_scales"};
  for (int t = 0; t < 9; ++t)
    if (data[t]->present() && data[t]->data == nullptr && data[t]->numel() > 0)
      return make_error(StatusCode::kNullPointer, names[t], ".data = null with shape ",
                        data[t]->shape_string(), ": a non-empty tensor needs memory");
  QWEN3VL_RETURN_IF_ERROR(detail::check_decode_overlaps(params));
  return detail::check_kv_values(params.kv);
}
}  // namespace

Status DecodeAttention::run(const DecodePlan& plan, const DecodeParams& params, Workspace ws,
                            void* stream) const {
  QWEN3VL_RETURN_IF_ERROR(check_plan(plan, params));
  QWEN3VL_RETURN_IF_ERROR(check_decode_data(params));
  if (plan.workspace_bytes > 0 && (ws.data == nullptr || ws.bytes < plan.workspace_bytes))
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ws.data ? "" : " (data = null)", ": need ", plan.workspace_bytes,
                      " (workspace_size() for these params)");
  return launch(plan, params, ws, stream);
}

// Whether forward() can run these params: the plan, and run()'s data checks (decode's supports()
// always looked at the data; plan() is the shape-only question).
Status DecodeAttention::supports(const DecodeParams& params) const {
  DecodePlan made;
  QWEN3VL_RETURN_IF_ERROR(plan(params, &made));
  return check_decode_data(params);
}

size_t DecodeAttention::workspace_size(const DecodeParams& params) const {
  DecodePlan made;
  return plan(params, &made).ok() ? made.workspace_bytes : 0;
}

int64_t DecodeAttention::splits(const DecodeParams& params) const {
  DecodePlan made;
  return plan(params, &made).ok() ? made.splits : 1;
}

Status DecodeAttention::forward(const DecodeParams& params, Workspace ws, void* stream) const {
  DecodePlan made;
  QWEN3VL_RETURN_IF_ERROR(plan(params, &made));
  return run(made, params, ws, stream);
}

void DecodeAttention::run(const DecodeParams& params) const {
  if (device() != Device::kCPU)
    throw Error(StatusCode::kUnsupported,
                "DecodeAttention::run allocates host memory: on a GPU size a device workspace "
                "with workspace_size() and call forward()");
  DecodePlan made;
  throw_if_error(plan(params, &made));
  const detail::HostWorkspace buffer(made.workspace_bytes);
  throw_if_error(run(made, params, buffer.workspace()));
}

}  // namespace qwen3vl
