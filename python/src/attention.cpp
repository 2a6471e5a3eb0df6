// The selector, the attention objects (plan once, run many) and their arguments.
#include "common.hpp"

namespace qwen3vl::python {

namespace {

// BlockLayout with its index arrays kept by reference (converted at each call).
struct PyBlockLayout {
  int32_t block_q = 0, block_k = 0;
  nb::object indptr, indices;
};

struct PyAttention {
  std::unique_ptr<Attention> impl;
  std::optional<MaskKind> mask;  // the config's mask: a call's mask=None means this one
};

struct PyPlan {
  AttentionPlan plan;
};

// The keyword arguments of AttentionParams, shared by plan / run / forward / supports.
#define QW_PARAM_DECL                                                                              \
  nb::handle q, nb::handle k, nb::handle v, nb::handle out, nb::handle lse, nb::handle weights,    \
      std::optional<float> scale, float softcap, std::optional<MaskKind> mask,                     \
      int64_t window_left, int64_t window_right, nb::handle cu_seqlens_q, nb::handle cu_seqlens_k, \
      int64_t max_seqlen_q, int64_t max_seqlen_k, nb::handle additive_mask,                        \
      nb::handle key_lengths, nb::handle q_positions, const PyBlockLayout *block_layout
#define QW_PARAM_CALL                                                                        \
  q, k, v, out, lse, weights, scale, softcap, mask, window_left, window_right, cu_seqlens_q, \
      cu_seqlens_k, max_seqlen_q, max_seqlen_k, additive_mask, key_lengths, q_positions,     \
      block_layout
#define QW_PARAM_ARGS                                                                              \
  nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::arg("out"), nb::kw_only(),                         \
      nb::arg("lse") = nb::none(), nb::arg("weights") = nb::none(), nb::arg("scale") = nb::none(), \
      nb::arg("softcap") = 0.0f, nb::arg("mask") = nb::none(), nb::arg("window_left") = -1,        \
      nb::arg("window_right") = -1, nb::arg("cu_seqlens_q") = nb::none(),                          \
      nb::arg("cu_seqlens_k") = nb::none(), nb::arg("max_seqlen_q") = 0,                           \
      nb::arg("max_seqlen_k") = 0, nb::arg("additive_mask") = nb::none(),                          \
      nb::arg("key_lengths") = nb::none(), nb::arg("q_positions") = nb::none(),                    \
      nb::arg("block_layout").none() = nb::none()

AttentionParams make_params(const PyAttention& self, QW_PARAM_DECL) {
  AttentionParams p;
  p.q = arg_view(q, "q", false, false);
  p.k = arg_view(k, "k", false, false);
  p.v = arg_view(v, "v", false, false);
  p.out = arg_view(out, "out", true, false);
  p.lse = arg_view(lse, "lse", true);
  p.weights = arg_view(weights, "weights", true);
  p.scale = scale;
  p.softcap = softcap;
  p.mask = mask ? *mask : (self.mask ? *self.mask : MaskKind::kNone);
  p.window_left = window_left;
  p.window_right = window_right;
  p.cu_seqlens_q = arg_view(cu_seqlens_q, "cu_seqlens_q");
  p.cu_seqlens_k = arg_view(cu_seqlens_k, "cu_seqlens_k");
  p.max_seqlen_q = max_seqlen_q;
  p.max_seqlen_k = max_seqlen_k;
  p.additive_mask = arg_view(additive_mask, "additive_mask");
  p.key_lengths = arg_view(key_lengths, "key_lengths");
  p.q_positions = arg_view(q_positions, "q_positions");
  if (block_layout) {
    p.block_layout.block_q = block_layout->block_q;
    p.block_layout.block_k = block_layout->block_k;
    p.block_layout.indptr = arg_view(block_layout->indptr, "block_layout.indptr", false, false);
    p.block_layout.indices = arg_view(block_layout->indices, "block_layout.indices", false, false);
  }
  return p;
}

PyAttention create(const AttentionConfig& config, int layer_idx) {
  PyAttention a;
  check(Selector::try_create(config, layer_idx, &a.impl));
  a.mask = config.mask;
  return a;
}

}  // namespace

void bind_attention(nb::module_& m) {
  nb::class_<PyBlockLayout>(m, "BlockLayout",
                            "A BSR block layout: indptr int32 [L, NBq + 1], indices int32 [L, "
                            "capacity] (host arrays, kept by reference).")
      .def(
          "__init__",
          [](PyBlockLayout* self, int32_t block_q, int32_t block_k, nb::object indptr,
             nb::object indices) {
            new (self) PyBlockLayout{block_q, block_k, std::move(indptr), std::move(indices)};
          },
          nb::arg("block_q"), nb::arg("block_k"), nb::arg("indptr"), nb::arg("indices"))
      .def_rw("block_q", &PyBlockLayout::block_q)
      .def_rw("block_k", &PyBlockLayout::block_k)
      .def_rw("indptr", &PyBlockLayout::indptr)
      .def_rw("indices", &PyBlockLayout::indices);

  nb::class_<PyPlan>(
      m, "AttentionPlan",
      "What plan() decided for a problem's shapes; run() takes it with arrays of the "
      "same shapes, strides and dtypes.")
      .def_prop_ro("workspace_bytes", [](const PyPlan& p) { return p.plan.workspace_bytes; })
      .def_prop_ro("reason", [](const PyPlan& p) { return p.plan.reason; })
      .def_prop_ro("variant", [](const PyPlan& p) { return p.plan.variant; })
      .def_prop_ro("device", [](const PyPlan& p) { return p.plan.device; })
      .def("__repr__", [](const PyPlan& p) {
        return "AttentionPlan(" + std::string(to_string(p.plan.variant)) +
               ", workspace_bytes=" + std::to_string(p.plan.workspace_bytes) + ")";
      });

  nb::class_<PyAttention>(m, "Attention",
                          "An attention variant chosen by the selector: create once, plan once "
                          "per problem shape, run many times.")
      .def(nb::new_(&create), nb::arg("config"), nb::arg("layer_idx") = 0,
           "Selector.create(config, layer_idx).")
      .def_prop_ro("variant", [](const PyAttention& a) { return a.impl->variant(); })
      .def_prop_ro("device", [](const PyAttention& a) { return a.impl->device(); })
      .def("describe", [](const PyAttention& a) { return a.impl->describe(); })
      .def("__repr__", [](const PyAttention& a) { return "Attention(" + a.impl->describe() + ")"; })
      .def(
          "plan",
          [](const PyAttention& self, QW_PARAM_DECL) {
            const AttentionParams p = make_params(self, QW_PARAM_CALL);
            PyPlan plan;
            check(self.impl->plan(p, &plan.plan));
            return plan;
          },
          QW_PARAM_ARGS, "Validates the problem and decides kernel, tiles and workspace.")
      .def(
          "run",
          [](const PyAttention& self, const PyPlan& plan, QW_PARAM_DECL, nb::object workspace,
             uintptr_t stream) {
            const AttentionParams p = make_params(self, QW_PARAM_CALL);
            WorkspaceHolder ws;
            const Workspace w =
                ws.get(plan.plan.workspace_bytes,
                       workspace.is_none() ? OptOut() : OptOut(nb::cast<Out>(workspace)),
                       self.impl->device());
            Status s;
            {
              nb::gil_scoped_release release;
              s = self.impl->run(plan.plan, p, w, stream_ptr(stream));
            }
            check(s);
          },
          nb::arg("plan"), QW_PARAM_ARGS, nb::arg("workspace") = nb::none(), nb::arg("stream") = 0,
          "Runs a plan on arrays of the planned shapes (no validation beyond the plan's "
          "signature). stream: the cudaStream_t as an integer (CUDA).")
      .def(
          "forward",
          [](const PyAttention& self, QW_PARAM_DECL, nb::object workspace, uintptr_t stream) {
            const AttentionParams p = make_params(self, QW_PARAM_CALL);
            AttentionPlan plan;
            check(self.impl->plan(p, &plan));
            WorkspaceHolder ws;
            const Workspace w =
                ws.get(plan.workspace_bytes,
                       workspace.is_none() ? OptOut() : OptOut(nb::cast<Out>(workspace)),
                       self.impl->device());
            Status s;
            {
              nb::gil_scoped_release release;
              s = self.impl->run(plan, p, w, stream_ptr(stream));
            }
            check(s);
          },
          QW_PARAM_ARGS, nb::arg("workspace") = nb::none(), nb::arg("stream") = 0,
          "plan + run in one call; writes out (and lse / weights when given).")
      .def(
          "supports",
          [](const PyAttention& self, QW_PARAM_DECL) {
            return self.impl->supports(make_params(self, QW_PARAM_CALL)).ok();
          },
          QW_PARAM_ARGS, "Whether plan() accepts the problem (plan() raises with the reason).")
      .def(
          "workspace_size",
          [](const PyAttention& self, QW_PARAM_DECL) {
            return self.impl->workspace_size(make_params(self, QW_PARAM_CALL));
          },
          QW_PARAM_ARGS, "The plan's workspace bytes (0 if refused).");

  struct Selector_ {};
  nb::class_<Selector_>(m, "Selector")
      .def_static("create", &create, nb::arg("config"), nb::arg("layer_idx") = 0,
                  "The variant for the config (Variant.auto: the selector picks and says why in "
                  "describe()). A variant that is not built raises.")
      .def_static("built", &Selector::built, "The (variant, device) pairs this build has.");
}

}  // namespace qwen3vl::python
