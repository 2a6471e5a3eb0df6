// The two Qwen3-VL attention layers: text (QK-norm, M-RoPE, GQA, KV cache) and vision (packed
// patches, 2-D RoPE, attention within each frame).
#include "common.hpp"

namespace qwen3vl::python {

using namespace qwen3vl::layers;

nb::object numpy_of_tensor(Tensor t, const char* name) {
  if (!t.view().present()) return nb::none();
  nb::dlpack::dtype dt;
  switch (t.view().dtype) {
    case DType::kF32: dt = nb::dtype<float>(); break;
    case DType::kF16: dt = {uint8_t(nb::dlpack::dtype_code::Float), 16, 1}; break;
    case DType::kI32: dt = nb::dtype<int32_t>(); break;
    default:
      fail(StatusCode::kUnsupported, name,
           ": NumPy has no bfloat16; call forward() with an output array instead");
  }
  const TensorView v = t.view();
  size_t shape[4];
  int64_t strides[4];
  for (int d = 0; d < v.rank; ++d) shape[d] = size_t(v.shape[d]), strides[d] = v.stride[d];
  auto* owned = new Tensor(std::move(t));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  return nb::cast(
      nb::ndarray<nb::numpy>(owned->view().data, size_t(v.rank), shape, owner, strides, dt));
}

namespace {

struct PyText {
  std::unique_ptr<Qwen3VLTextAttention> impl;
};
struct PyVision {
  std::unique_ptr<Qwen3VLVisionAttention> impl;
};

TextAttentionInputs text_inputs(nb::handle hidden_states, nb::handle position_ids,
                                nb::handle attention_mask) {
  TextAttentionInputs in;
  in.hidden_states = arg_view(hidden_states, "hidden_states", false, false);
  in.position_ids = arg_view(position_ids, "position_ids");
  in.attention_mask = arg_view(attention_mask, "attention_mask");
  return in;
}

#define QW_TEXT_ARGS                                                              \
  nb::arg("hidden_states"), nb::arg("output"), nb::kw_only(),                     \
      nb::arg("cache").none() = nb::none(), nb::arg("position_ids") = nb::none(), \
      nb::arg("attention_mask") = nb::none(), nb::arg("attn_weights") = nb::none()

}  // namespace

void bind_layers(nb::module_& m) {
  nb::class_<LayerOptions>(m, "LayerOptions")
      .def(
          "__init__",
          [](LayerOptions* self, Device device, int device_index, DType dtype, Variant variant,
             bool need_weights, std::optional<CpuOptions> cpu) {
            new (self) LayerOptions();
            self->device = device;
            self->device_index = device_index;
            self->dtype = dtype;
            self->variant = variant;
            self->need_weights = need_weights;
            if (cpu) self->cpu = *cpu;
          },
          nb::kw_only(), nb::arg("device") = Device::kCPU, nb::arg("device_index") = 0,
          nb::arg("dtype") = DType::kF32, nb::arg("variant") = Variant::kAuto,
          nb::arg("need_weights") = false, nb::arg("cpu") = nb::none())
      .def_rw("device", &LayerOptions::device)
      .def_rw("device_index", &LayerOptions::device_index)
      .def_rw("dtype", &LayerOptions::dtype)
      .def_rw("variant", &LayerOptions::variant)
      .def_rw("need_weights", &LayerOptions::need_weights)
      .def_rw("cpu", &LayerOptions::cpu);

  nb::class_<TextAttentionConfig>(m, "TextAttentionConfig")
      .def(
          "__init__",
          [](TextAttentionConfig* self, int64_t hidden_size, int64_t num_heads,
             int64_t num_kv_heads, int64_t head_dim, double rms_norm_eps, double rope_theta,
             std::tuple<int32_t, int32_t, int32_t> mrope_section, int64_t max_position,
             std::optional<LayerOptions> options) {
            new (self) TextAttentionConfig();
            self->hidden_size = hidden_size;
            self->num_heads = num_heads;
            self->num_kv_heads = num_kv_heads;
            self->head_dim = head_dim;
            self->rms_norm_eps = rms_norm_eps;
            self->rope_theta = rope_theta;
            self->mrope_section = {std::get<0>(mrope_section), std::get<1>(mrope_section),
                                   std::get<2>(mrope_section)};
            self->max_position = max_position;
            if (options) self->options = *options;
          },
          nb::kw_only(), nb::arg("hidden_size"), nb::arg("num_heads"), nb::arg("num_kv_heads"),
          nb::arg("head_dim"), nb::arg("rms_norm_eps") = 1e-6, nb::arg("rope_theta") = 5e6,
          nb::arg("mrope_section") = std::make_tuple(24, 20, 20), nb::arg("max_position") = 262144,
          nb::arg("options") = nb::none())
      .def_rw("hidden_size", &TextAttentionConfig::hidden_size)
      .def_rw("num_heads", &TextAttentionConfig::num_heads)
      .def_rw("num_kv_heads", &TextAttentionConfig::num_kv_heads)
      .def_rw("head_dim", &TextAttentionConfig::head_dim)
      .def_rw("rms_norm_eps", &TextAttentionConfig::rms_norm_eps)
      .def_rw("rope_theta", &TextAttentionConfig::rope_theta)
      .def_rw("rope_scaling", &TextAttentionConfig::rope_scaling)
      .def_rw("mrope_layout", &TextAttentionConfig::mrope_layout)
      .def_prop_rw(
          "mrope_section",
          [](const TextAttentionConfig& c) {
            return std::make_tuple(c.mrope_section.t, c.mrope_section.h, c.mrope_section.w);
          },
          [](TextAttentionConfig& c, std::tuple<int32_t, int32_t, int32_t> s) {
            c.mrope_section = {std::get<0>(s), std::get<1>(s), std::get<2>(s)};
          })
      .def_rw("max_position", &TextAttentionConfig::max_position)
      .def_rw("rope_recipe", &TextAttentionConfig::rope_recipe)
      .def_rw("rope_table", &TextAttentionConfig::rope_table)
      .def_rw("rope_arithmetic", &TextAttentionConfig::rope_arithmetic)
      .def_rw("options", &TextAttentionConfig::options);

  nb::class_<PyText>(m, "TextAttention",
                     "Qwen3-VL's text attention layer (q/k/v projections, QK RMSNorm, M-RoPE, "
                     "GQA attention with a KV cache, o_proj). Weights are copied at creation.")
      .def(
          "__init__",
          [](PyText* self, const TextAttentionConfig& config, nb::handle q_proj, nb::handle k_proj,
             nb::handle v_proj, nb::handle o_proj, nb::handle q_norm, nb::handle k_norm,
             int layer_idx) {
            new (self) PyText();
            TextAttentionWeights w;
            w.q_proj = arg_view(q_proj, "q_proj", false, false);
            w.k_proj = arg_view(k_proj, "k_proj", false, false);
            w.v_proj = arg_view(v_proj, "v_proj", false, false);
            w.o_proj = arg_view(o_proj, "o_proj", false, false);
            w.q_norm = arg_view(q_norm, "q_norm", false, false);
            w.k_norm = arg_view(k_norm, "k_norm", false, false);
            check(Qwen3VLTextAttention::try_create(config, w, layer_idx, &self->impl));
          },
          nb::arg("config"), nb::arg("q_proj"), nb::arg("k_proj"), nb::arg("v_proj"),
          nb::arg("o_proj"), nb::arg("q_norm"), nb::arg("k_norm"), nb::arg("layer_idx") = 0)
      .def("describe", [](const PyText& t) { return t.impl->describe(); })
      .def_prop_ro("config", [](const PyText& t) { return t.impl->config(); })
      .def(
          "forward",
          [](const PyText& t, nb::handle hidden_states, nb::handle output, PyKvCache* cache,
             nb::handle position_ids, nb::handle attention_mask, nb::handle attn_weights,
             nb::object workspace, uintptr_t stream) {
            const TextAttentionInputs in = text_inputs(hidden_states, position_ids, attention_mask);
            TextAttentionOutputs out;
            out.output = arg_view(output, "output", true, false);
            out.attn_weights = arg_view(attn_weights, "attn_weights", true);
            KvCache* c = cache ? &cache->cache : nullptr;
            check(t.impl->supports(in, c, out));
            WorkspaceHolder ws;
            const Workspace w =
                ws.get(t.impl->workspace_size(in, c, out),
                       workspace.is_none() ? OptOut() : OptOut(nb::cast<Out>(workspace)),
                       t.impl->config().options.device);
            Status s;
            {
              nb::gil_scoped_release release;
              s = t.impl->forward(in, c, out, w, stream_ptr(stream));
            }
            check(s);
          },
          QW_TEXT_ARGS, nb::arg("workspace") = nb::none(), nb::arg("stream") = 0,
          "hidden_states [B, L, hidden] -> output [B, L, hidden]; the cache gains the L tokens. "
          "position_ids int32 [3, B, L] or [B, L] (absent: from the cache's lengths and rope "
          "delta); attention_mask int32 [B, L] host (left padding).")
      .def(
          "workspace_size",
          [](const PyText& t, nb::handle hidden_states, nb::handle output, PyKvCache* cache,
             nb::handle position_ids, nb::handle attention_mask, nb::handle attn_weights) {
            const TextAttentionInputs in = text_inputs(hidden_states, position_ids, attention_mask);
            TextAttentionOutputs out;
            out.output = arg_view(output, "output", true, false);
            out.attn_weights = arg_view(attn_weights, "attn_weights", true);
            return t.impl->workspace_size(in, cache ? &cache->cache : nullptr, out);
          },
          QW_TEXT_ARGS)
      .def(
          "__call__",
          [](const PyText& t, nb::handle hidden_states, nb::handle attention_mask,
             nb::handle position_ids, PyKvCache* cache) {
            const TextAttentionInputs in = text_inputs(hidden_states, position_ids, attention_mask);
            TextAttentionResult r;
            {
              nb::gil_scoped_release release;
              r = (*t.impl)(in.hidden_states, in.attention_mask, in.position_ids,
                            cache ? &cache->cache : nullptr);
            }
            return std::make_pair(numpy_of_tensor(std::move(r.output), "output"),
                                  numpy_of_tensor(std::move(r.attn_weights), "attn_weights"));
          },
          nb::arg("hidden_states"), nb::arg("attention_mask") = nb::none(),
          nb::arg("position_ids") = nb::none(), nb::arg("cache").none() = nb::none(),
          "The host convenience: (output, attn_weights or None) as new NumPy arrays.");

  nb::class_<VisionAttentionConfig>(m, "VisionAttentionConfig")
      .def(
          "__init__",
          [](VisionAttentionConfig* self, int64_t hidden_size, int64_t num_heads, double rope_theta,
             int64_t max_grid_side, std::optional<LayerOptions> options) {
            new (self) VisionAttentionConfig();
            self->hidden_size = hidden_size;
            self->num_heads = num_heads;
            self->rope_theta = rope_theta;
            self->max_grid_side = max_grid_side;
            if (options) self->options = *options;
          },
          nb::kw_only(), nb::arg("hidden_size"), nb::arg("num_heads"),
          nb::arg("rope_theta") = 10000.0, nb::arg("max_grid_side") = 4096,
          nb::arg("options") = nb::none())
      .def_rw("hidden_size", &VisionAttentionConfig::hidden_size)
      .def_rw("num_heads", &VisionAttentionConfig::num_heads)
      .def_rw("rope_theta", &VisionAttentionConfig::rope_theta)
      .def_rw("max_grid_side", &VisionAttentionConfig::max_grid_side)
      .def_rw("rope_recipe", &VisionAttentionConfig::rope_recipe)
      .def_rw("rope_arithmetic", &VisionAttentionConfig::rope_arithmetic)
      .def_rw("options", &VisionAttentionConfig::options);

  nb::class_<PyVision>(m, "VisionAttention",
                       "Qwen3-VL's vision attention layer: fused qkv with bias, 2-D RoPE, "
                       "attention within each frame (cu_seqlens), proj with bias.")
      .def(
          "__init__",
          [](PyVision* self, const VisionAttentionConfig& config, nb::handle qkv_weight,
             nb::handle qkv_bias, nb::handle proj_weight, nb::handle proj_bias, int layer_idx) {
            new (self) PyVision();
            VisionAttentionWeights w;
            w.qkv_weight = arg_view(qkv_weight, "qkv_weight", false, false);
            w.qkv_bias = arg_view(qkv_bias, "qkv_bias", false, false);
            w.proj_weight = arg_view(proj_weight, "proj_weight", false, false);
            w.proj_bias = arg_view(proj_bias, "proj_bias", false, false);
            check(Qwen3VLVisionAttention::try_create(config, w, layer_idx, &self->impl));
          },
          nb::arg("config"), nb::arg("qkv_weight"), nb::arg("qkv_bias"), nb::arg("proj_weight"),
          nb::arg("proj_bias"), nb::arg("layer_idx") = 0)
      .def("describe", [](const PyVision& v) { return v.impl->describe(); })
      .def_prop_ro("config", [](const PyVision& v) { return v.impl->config(); })
      .def(
          "forward",
          [](const PyVision& v, nb::handle hidden_states, nb::handle positions,
             nb::handle cu_seqlens, nb::handle output, nb::object workspace, uintptr_t stream) {
            VisionAttentionInputs in;
            in.hidden_states = arg_view(hidden_states, "hidden_states", false, false);
            in.positions = arg_view(positions, "positions", false, false);
            in.cu_seqlens = arg_view(cu_seqlens, "cu_seqlens", false, false);
            const TensorView out = arg_view(output, "output", true, false);
            check(v.impl->supports(in, out));
            WorkspaceHolder ws;
            const Workspace w =
                ws.get(v.impl->workspace_size(in, out),
                       workspace.is_none() ? OptOut() : OptOut(nb::cast<Out>(workspace)),
                       v.impl->config().options.device);
            Status s;
            {
              nb::gil_scoped_release release;
              s = v.impl->forward(in, out, w, stream_ptr(stream));
            }
            check(s);
          },
          nb::arg("hidden_states"), nb::arg("positions"), nb::arg("cu_seqlens"), nb::arg("output"),
          nb::kw_only(), nb::arg("workspace") = nb::none(), nb::arg("stream") = 0,
          "hidden_states [N, hidden], positions int32 [2, N] (rows, then columns), cu_seqlens "
          "int32 [frames + 1] on the host -> output [N, hidden].")
      .def(
          "__call__",
          [](const PyVision& v, nb::handle hidden_states, nb::handle positions,
             nb::handle cu_seqlens) {
            const TensorView h = arg_view(hidden_states, "hidden_states", false, false);
            const TensorView p = arg_view(positions, "positions", false, false);
            const TensorView c = arg_view(cu_seqlens, "cu_seqlens", false, false);
            Tensor out;
            {
              nb::gil_scoped_release release;
              out = (*v.impl)(h, p, c);
            }
            return numpy_of_tensor(std::move(out), "output");
          },
          nb::arg("hidden_states"), nb::arg("positions"), nb::arg("cu_seqlens"),
          "The host convenience: the output as a new NumPy array.");
}

}  // namespace qwen3vl::python
