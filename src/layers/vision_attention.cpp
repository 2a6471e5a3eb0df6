// Qwen3VLVisionAttention: fused qkv projection with bias -> vision 2-D RoPE -> non-causal varlen
// attention (one segment per frame) -> output projection with bias.
#include "qwen3vl/layers/vision_attention.hpp"

#include <algorithm>

#include "layer_common.hpp"
#include "qwen3vl/rope/vision.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "src/core/host_workspace.hpp"
#include "src/core/workspace_carver.hpp"

namespace qwen3vl::layers {

struct Qwen3VLVisionAttention::Impl {
  VisionAttentionConfig config;
  int layer_idx = 0;
  std::unique_ptr<detail::LayerOps> ops;
  rope::RopeTable table;
  rope::RopeTableView table_view;
  std::unique_ptr<Attention> attention;
  detail::Linear qkv, proj;

  int64_t heads() const { return config.num_heads; }
  int64_t dim() const { return config.hidden_size / config.num_heads; }
};

namespace {

using Impl = Qwen3VLVisionAttention::Impl;

struct VisionPlan {
  int64_t tokens = 0, max_len = 0;
  TensorView qkv, q, k, v, attn, device_cu;
  void* linear_scratch = nullptr;
  rope::RopeApplyParams rope;
  AttentionParams params;
  Workspace kernel;
  size_t bytes = 0;
};

Status plan_vision(const Impl& m, const VisionAttentionInputs& in, const TensorView& out,
                   void* base, VisionPlan* p) {
  const LayerOptions& o = m.config.options;
  const int64_t hidden = m.config.hidden_size, H = m.heads(), D = m.dim();
  const TensorView& x = in.hidden_states;
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_present(x, "hidden_states"));
  if (x.rank != 2)
    return make_error(StatusCode::kShapeMismatch, "hidden_states.shape = ", x.shape_string(),
                      ": expected [patches, hidden = ", hidden, "]");
  const int64_t N = x.shape[0];
  QWEN3VL_RETURN_IF_ERROR(detail::check_activation(x, "hidden_states", o, {N, hidden}));
  QWEN3VL_RETURN_IF_ERROR(detail::check_activation(out, "output", o, {N, hidden}));
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_no_self_overlap(out, "output"));
  const TensorView& pos = in.positions;
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_present(pos, "positions"));
  if (pos.dtype != DType::kI32 || pos.device != o.device)
    return make_error(StatusCode::kInvalidArgument, "positions = ", to_string(pos.dtype), " on ",
                      to_string(pos.device), ": must be i32 on the layer's device");
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_dims(pos, "positions", 2, {2, N}));
  const TensorView& cu = in.cu_seqlens;
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_present(cu, "cu_seqlens"));
  if (cu.device != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument, "cu_seqlens.device = ", to_string(cu.device),
                      ": must be host memory (the layer copies it to the device)");
  int64_t frames = 0;
  QWEN3VL_RETURN_IF_ERROR(
      qwen3vl::detail::check_cu_seqlens(cu, "cu_seqlens", N, &frames, &p->max_len));
  const int32_t last = cu.ptr<const int32_t>()[frames * cu.stride[0]];
  if (last != N)
    return make_error(StatusCode::kShapeMismatch, "cu_seqlens[", frames, "] = ", last,
                      ": must equal the patch count ", N, " (every patch belongs to a frame)");
  p->tokens = N;

  // The layout: counting with a null base (supports(), workspace_size(): views of null data and
  // shape-only plans), over the caller's buffer in forward().
  qwen3vl::detail::Carver carve = qwen3vl::detail::carve(base);
  const int64_t es = size_of(o.dtype);
  void* qkv = carve.take<char>(N * 3 * hidden * es);
  p->qkv = TensorView::contiguous(qkv, o.dtype, {N, 3, H, D}, o.device);
  const auto part = [&](int64_t which) {  // [N, H, D] rows of one of q, k, v
    char* first = qkv ? static_cast<char*>(qkv) + which * hidden * es : nullptr;  // null: sizing
    return TensorView::strided(first, o.dtype, {N, H, D}, {3 * hidden, D, 1}, o.device);
  };
  p->q = part(0);
  p->k = part(1);
  p->v = part(2);
  p->attn = TensorView::contiguous(carve.take<char>(N * hidden * es), o.dtype, {N, H, D}, o.device);
  for (TensorView* t : {&p->qkv, &p->q, &p->k, &p->v, &p->attn}) t->device_index = o.device_index;
  const detail::RowsView xr = detail::rows_of(x);
  p->linear_scratch = carve.take<char>(static_cast<int64_t>(std::max(
      m.ops->linear_scratch_bytes(xr, 3 * hidden), m.ops->linear_scratch_bytes(xr, hidden))));
  p->rope.q = p->q;
  p->rope.k = p->k;
  p->rope.positions = pos;
  p->rope.table = m.table_view;
  p->rope.arithmetic = m.config.rope_arithmetic;
  rope::RopeApplyShape rope_shape;
  // positions: values at apply. q and k are the layer's own views, which need data: checked when
  // carved for real (the positions' shape was checked above).
  if (!carve.sizing()) QWEN3VL_RETURN_IF_ERROR(rope::validate(p->rope, &rope_shape));
  AttentionParams& a = p->params;
  a.q = p->q;
  a.k = p->k;
  a.v = p->v;
  a.out = p->attn;
  a.mask = MaskKind::kNone;
  a.cu_seqlens_q = a.cu_seqlens_k = cu;
  a.max_seqlen_q = a.max_seqlen_k = p->max_len;
  if (o.device != Device::kCPU) {  // kernels read cu_seqlens where they run
    p->device_cu = TensorView::contiguous(carve.take<int32_t>(frames + 1), DType::kI32,
                                          {frames + 1}, o.device);
    p->device_cu.device_index = o.device_index;
    a.cu_seqlens_q = a.cu_seqlens_k = p->device_cu;
  }
  QWEN3VL_RETURN_IF_ERROR(m.attention->supports(a));
  const size_t need = m.attention->workspace_size(a);
  p->kernel = Workspace{carve.take<char>(static_cast<int64_t>(need)), need};
  p->bytes = carve.used() + qwen3vl::detail::kAlignSlack;
  return Status();
}

}  // namespace

Status Qwen3VLVisionAttention::try_create(const VisionAttentionConfig& config,
                                          const VisionAttentionWeights& w, int layer_idx,
                                          std::unique_ptr<Qwen3VLVisionAttention>* out) {
  const int64_t H = config.hidden_size;
  if (H < 1 || config.num_heads < 1 || H % config.num_heads != 0)
    return make_error(StatusCode::kInvalidArgument, "config hidden_size, num_heads = ", H, ", ",
                      config.num_heads, ": allowed positive, num_heads dividing hidden_size");
  QWEN3VL_RETURN_IF_ERROR(detail::check_options(config.options));
  std::vector<float> qkv_w, qkv_b, proj_w, proj_b;
  QWEN3VL_RETURN_IF_ERROR(
      detail::append_host_weight(w.qkv_weight, "weights.qkv_weight", {3 * H, H}, &qkv_w));
  QWEN3VL_RETURN_IF_ERROR(
      detail::append_host_weight(w.qkv_bias, "weights.qkv_bias", {3 * H}, &qkv_b));
  QWEN3VL_RETURN_IF_ERROR(
      detail::append_host_weight(w.proj_weight, "weights.proj_weight", {H, H}, &proj_w));
  QWEN3VL_RETURN_IF_ERROR(
      detail::append_host_weight(w.proj_bias, "weights.proj_bias", {H}, &proj_b));

  auto m = std::make_unique<Impl>();
  m->config = config;
  m->layer_idx = layer_idx;
  const LayerOptions& opt = config.options;
  QWEN3VL_RETURN_IF_ERROR(rope::make_vision_table(m->dim(), config.rope_theta, config.max_grid_side,
                                                  config.rope_recipe, rope::TableLayout::kFull,
                                                  &m->table, config.rope_inv_freq));
  QWEN3VL_RETURN_IF_ERROR(detail::make_layer_ops(opt, &m->ops));
  QWEN3VL_RETURN_IF_ERROR(m->ops->rope_table(m->table, &m->table_view));
  AttentionConfig ac;
  ac.variant = opt.variant;
  ac.device = opt.device;
  ac.num_heads = ac.num_kv_heads = static_cast<int>(config.num_heads);
  ac.head_dim = static_cast<int>(m->dim());
  ac.dtype = opt.dtype;
  ac.mask = MaskKind::kNone;
  ac.cpu = opt.cpu;
  QWEN3VL_RETURN_IF_ERROR(Selector::try_create(ac, layer_idx, &m->attention));
  m->qkv = detail::Linear{nullptr, nullptr, 3 * H, H};
  m->proj = detail::Linear{nullptr, nullptr, H, H};
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(qkv_w, &m->qkv.w));
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(qkv_b, &m->qkv.bias));
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(proj_w, &m->proj.w));
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(proj_b, &m->proj.bias));
  out->reset(new Qwen3VLVisionAttention(std::move(m)));
  return Status();
}

std::unique_ptr<Qwen3VLVisionAttention> Qwen3VLVisionAttention::create(
    const VisionAttentionConfig& config, const VisionAttentionWeights& weights, int layer_idx) {
  std::unique_ptr<Qwen3VLVisionAttention> out;
  throw_if_error(try_create(config, weights, layer_idx, &out));
  return out;
}

Qwen3VLVisionAttention::Qwen3VLVisionAttention(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
Qwen3VLVisionAttention::~Qwen3VLVisionAttention() = default;
const VisionAttentionConfig& Qwen3VLVisionAttention::config() const { return impl_->config; }

Status Qwen3VLVisionAttention::supports(const VisionAttentionInputs& in,
                                        const TensorView& output) const {
  VisionPlan p;
  return plan_vision(*impl_, in, output, nullptr, &p);
}

size_t Qwen3VLVisionAttention::workspace_size(const VisionAttentionInputs& in,
                                              const TensorView& output) const {
  VisionPlan p;
  return plan_vision(*impl_, in, output, nullptr, &p).ok() ? p.bytes : 0;
}

Status Qwen3VLVisionAttention::forward(const VisionAttentionInputs& in, const TensorView& output,
                                       Workspace ws, void* stream, LayerProfile* profile) const {
  const Impl& m = *impl_;
  VisionPlan p;
  QWEN3VL_RETURN_IF_ERROR(plan_vision(m, in, output, nullptr, &p));
  if (ws.data == nullptr || ws.bytes < p.bytes)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ws.data ? "" : " (data = null)", ": need ", p.bytes, " (workspace_size())");
  QWEN3VL_RETURN_IF_ERROR(plan_vision(m, in, output, ws.data, &p));
  detail::StepTimer timer(profile, *m.ops, stream);
  const int64_t N = p.tokens, hidden = m.config.hidden_size;
  const detail::RowsView xr = detail::rows_of(in.hidden_states);
  const detail::RowsView qkv_rows{p.qkv.data, p.qkv.dtype,    1,         N,
                                  3 * hidden, N * 3 * hidden, 3 * hidden};
  QWEN3VL_RETURN_IF_ERROR(m.ops->linear(xr, m.qkv, qkv_rows, p.linear_scratch, stream));
  QWEN3VL_RETURN_IF_ERROR(timer.mark(&LayerProfile::projections));

  QWEN3VL_RETURN_IF_ERROR(m.ops->rope().apply(p.rope, stream));
  QWEN3VL_RETURN_IF_ERROR(timer.mark(&LayerProfile::norm_rope));

  if (p.device_cu.present())
    QWEN3VL_RETURN_IF_ERROR(m.ops->copy_from_host(p.device_cu.data, in.cu_seqlens.data,
                                                  static_cast<size_t>(p.device_cu.numel()) * 4,
                                                  stream));
  QWEN3VL_RETURN_IF_ERROR(m.attention->forward(p.params, p.kernel, stream));
  QWEN3VL_RETURN_IF_ERROR(timer.mark(&LayerProfile::attention));

  const detail::RowsView attn_rows{p.attn.data, p.attn.dtype, 1, N, hidden, N * hidden, hidden};
  QWEN3VL_RETURN_IF_ERROR(
      m.ops->linear(attn_rows, m.proj, detail::rows_of(output), p.linear_scratch, stream));
  return timer.mark(&LayerProfile::projections);
}

Tensor Qwen3VLVisionAttention::operator()(const TensorView& hidden_states,
                                          const TensorView& positions,
                                          const TensorView& cu_seqlens) const {
  const Impl& m = *impl_;
  if (m.config.options.device != Device::kCPU)
    throw Error(StatusCode::kUnsupported,
                "the convenience call allocates host memory: on CUDA "
                "size a device workspace and call forward()");
  if (hidden_states.rank != 2)
    throw Error(
        StatusCode::kShapeMismatch,
        "hidden_states.shape = " + hidden_states.shape_string() + ": expected [patches, hidden]");
  Tensor output(m.config.options.dtype, {hidden_states.shape[0], m.config.hidden_size});
  const VisionAttentionInputs in{hidden_states, positions, cu_seqlens};
  throw_if_error(supports(in, output.view()));
  const qwen3vl::detail::HostWorkspace ws(workspace_size(in, output.view()));
  throw_if_error(forward(in, output.view(), ws.workspace()));
  return output;
}

std::string Qwen3VLVisionAttention::describe() const {
  const Impl& m = *impl_;
  return qwen3vl::detail::concat(
      "Qwen3VLVisionAttention layer ", m.layer_idx, ": hidden ", m.config.hidden_size, ", heads ",
      m.heads(), ", D ", m.dim(), ", ", to_string(m.config.options.dtype), ", 2-D RoPE theta ",
      m.config.rope_theta, "; attention: ", m.attention->describe(), "; ", m.ops->describe());
}

}  // namespace qwen3vl::layers
