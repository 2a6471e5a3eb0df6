// KV caches over caller arrays, their views, and decode attention (plan once, run many).
#include "common.hpp"

namespace qwen3vl::python {

namespace {

// A cache's view for decode; keeps the cache (and so its storage and table) alive.
struct PyKvView {
  KvCacheView view;
  nb::object owner;
};

struct PyDecode {
  std::unique_ptr<DecodeAttention> impl;
};

struct PyDecodePlan {
  DecodePlan plan;
};

struct PyQuest {
  std::unique_ptr<QuestDecode> impl;
};

PyQuest make_quest(std::unique_ptr<DecodeAttention> decode, int64_t token_budget,
                   QuestAggregation aggregation) {
  PyQuest q;
  QuestConfig c;
  c.token_budget = token_budget;
  c.aggregation = aggregation;
  check(QuestDecode::create(c, std::move(decode), &q.impl));
  return q;
}

void make_cache(PyKvCache* self, const KvCacheConfig& config, nb::object k, nb::object v,
                nb::object key_bounds) {
  // Built aside and moved in once it succeeded: nanobind runs no destructor for an __init__ that
  // raised.
  PyKvCache made;
  const TensorView kv = arg_view(k, "k_storage", true, false);
  const TensorView vv = arg_view(v, "v_storage", true, false);
  const TensorView kb = arg_view(key_bounds, "key_bounds", true);
  const KvStorageOps* ops = nullptr;
#if QWEN3VL_WITH_CUDA
  if (kv.device == Device::kCUDA) ops = &cuda_kv_storage_ops();
#endif
  if (kb.present())
    check(KvCache::create(config, kv, vv, kb, &made.cache, ops));
  else
    check(KvCache::create(config, kv, vv, &made.cache, ops));
  made.k = std::move(k);
  made.v = std::move(v);
  made.key_bounds = std::move(key_bounds);
  made.device = kv.device;
  new (self) PyKvCache(std::move(made));
}

DecodeParams make_decode(nb::handle q, nb::handle out, const PyKvView& kv, nb::handle lse,
                         std::optional<float> scale, int64_t num_splits) {
  DecodeParams p;
  p.q = arg_view(q, "q", false, false);
  p.out = arg_view(out, "out", true, false);
  p.kv = kv.view;
  p.lse = arg_view(lse, "lse", true);
  p.scale = scale;
  p.num_splits = num_splits;
  return p;
}

#define QW_DECODE_ARGS                                        \
  nb::arg("q"), nb::arg("out"), nb::arg("kv"), nb::kw_only(), \
      nb::arg("lse") = nb::none(), nb::arg("scale") = nb::none(), nb::arg("num_splits") = 0

}  // namespace

void bind_kv(nb::module_& m) {
  nb::class_<KvCacheConfig>(m, "KvCacheConfig")
      .def(
          "__init__",
          [](KvCacheConfig* self, KvLayout layout, int64_t batch, int64_t kv_heads,
             int64_t head_dim, DType dtype, int64_t max_len, int64_t num_blocks, int64_t block_size,
             int64_t max_blocks, bool key_bounds) {
            new (self) KvCacheConfig();
            self->layout = layout;
            self->batch = batch;
            self->kv_heads = kv_heads;
            self->head_dim = head_dim;
            self->dtype = dtype;
            self->max_len = max_len;
            self->num_blocks = num_blocks;
            self->block_size = block_size;
            self->max_blocks = max_blocks;
            self->key_bounds = key_bounds;
          },
          nb::kw_only(), nb::arg("layout") = KvLayout::kPaged, nb::arg("batch") = 1,
          nb::arg("kv_heads") = 1, nb::arg("head_dim") = 128, nb::arg("dtype") = DType::kF16,
          nb::arg("max_len") = 0, nb::arg("num_blocks") = 0, nb::arg("block_size") = 16,
          nb::arg("max_blocks") = 0, nb::arg("key_bounds") = false)
      .def_rw("layout", &KvCacheConfig::layout)
      .def_rw("batch", &KvCacheConfig::batch)
      .def_rw("kv_heads", &KvCacheConfig::kv_heads)
      .def_rw("head_dim", &KvCacheConfig::head_dim)
      .def_rw("dtype", &KvCacheConfig::dtype, "storage dtype (default f16)")
      .def_rw("max_len", &KvCacheConfig::max_len)
      .def_rw("num_blocks", &KvCacheConfig::num_blocks)
      .def_rw("block_size", &KvCacheConfig::block_size)
      .def_rw("max_blocks", &KvCacheConfig::max_blocks)
      .def_rw("key_bounds", &KvCacheConfig::key_bounds);
  m.def("kv_storage_shape", &kv_storage_shape, nb::arg("config"),
        "The shape of the k and v storage arrays the config needs.");
  m.def("kv_key_bounds_shape", &kv_key_bounds_shape, nb::arg("config"),
        "The shape of the float32 Quest key bounds storage [num_blocks, 2, Hkv, D].");

  nb::class_<PyKvView>(m, "KvCacheView", "What decode reads: a cache's storage and table.")
      .def_prop_ro("layout", [](const PyKvView& v) { return v.view.layout; })
      .def_prop_ro("batch", [](const PyKvView& v) { return v.view.batch(); })
      .def_prop_ro("kv_heads", [](const PyKvView& v) { return v.view.kv_heads(); })
      .def_prop_ro("head_dim", [](const PyKvView& v) { return v.view.head_dim(); })
      .def_prop_ro("max_seq_len", [](const PyKvView& v) { return v.view.max_seq_len; })
      .def_prop_ro("capacity", [](const PyKvView& v) { return v.view.capacity(); });

  nb::class_<PyKvCache>(m, "KvCache",
                        "A contiguous or paged KV cache over caller-owned storage arrays (kept "
                        "alive by the cache; written in place).")
      .def("__init__", &make_cache, nb::arg("config"), nb::arg("k_storage"), nb::arg("v_storage"),
           nb::arg("key_bounds") = nb::none())
      .def(
          "append",
          [](PyKvCache& self, nb::handle k, nb::handle v, nb::handle cu_seqlens, uintptr_t stream) {
            const TensorView kv = arg_view(k, "k", false, false);
            const TensorView vv = arg_view(v, "v", false, false);
            const TensorView cu = arg_view(cu_seqlens, "cu_seqlens");
            Status s;
            {
              nb::gil_scoped_release release;
              s = self.cache.append(kv, vv, cu, stream_ptr(stream));
            }
            check(s);
          },
          nb::arg("k"), nb::arg("v"), nb::arg("cu_seqlens") = nb::none(), nb::arg("stream") = 0,
          "Appends k, v [batch, T, Hkv, D] (T tokens a sequence), or [tokens, Hkv, D] with "
          "cu_seqlens int32 [batch + 1] on the host.")
      .def(
          "fork",
          [](PyKvCache& self, int64_t src, int64_t dst, uintptr_t stream) {
            check(self.cache.fork(src, dst, stream_ptr(stream)));
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("stream") = 0,
          "Makes empty sequence dst a copy of src (paged: shares blocks, copy-on-write).")
      .def(
          "reset", [](PyKvCache& self, int64_t seq) { check(self.cache.reset(seq)); },
          nb::arg("seq"))
      .def(
          "view",
          [](nb::handle self_h, uintptr_t stream) {
            PyKvCache& self = nb::cast<PyKvCache&>(self_h);
            PyKvView v;
            if (self.device == Device::kCPU) {
              v.view = self.cache.view();
            } else {
              check(self.cache.table().sync_mirror(stream_ptr(stream)));
              v.view = self.cache.storage().device_view(self.cache.table());
            }
            v.owner = nb::borrow(self_h);
            return v;
          },
          nb::arg("stream") = 0,
          "The view decode reads (CUDA: uploads the table's device copy on stream first). "
          "Take a fresh view after each append.")
      .def(
          "length", [](const PyKvCache& c, int64_t seq) { return c.cache.length(seq); },
          nb::arg("seq"))
      .def_prop_ro("lengths", [](const PyKvCache& c) { return c.cache.lengths(); })
      .def(
          "position_delta",
          [](const PyKvCache& c, int64_t seq) { return c.cache.position_delta(seq); },
          nb::arg("seq"))
      .def(
          "set_position_delta",
          [](PyKvCache& c, int64_t seq, int64_t delta) {
            check(c.cache.set_position_delta(seq, delta));
          },
          nb::arg("seq"), nb::arg("delta"))
      .def_prop_ro("block_table", [](const PyKvCache& c) { return c.cache.block_table(); })
      .def_prop_ro("capacity", [](const PyKvCache& c) { return c.cache.capacity(); })
      .def_prop_ro("config", [](const PyKvCache& c) { return c.cache.config(); })
      .def_prop_ro("k_storage", [](const PyKvCache& c) { return c.k; })
      .def_prop_ro("v_storage", [](const PyKvCache& c) { return c.v; })
      .def(
          "ref_count",
          [](const PyKvCache& c, int32_t block) { return c.cache.allocator().ref_count(block); },
          nb::arg("block"))
      .def("describe", [](const PyKvCache& c) { return c.cache.describe(); });

  nb::class_<PyDecodePlan>(m, "DecodePlan")
      .def_prop_ro("workspace_bytes", [](const PyDecodePlan& p) { return p.plan.workspace_bytes; })
      .def_prop_ro("splits", [](const PyDecodePlan& p) { return p.plan.splits; })
      .def_prop_ro("reason", [](const PyDecodePlan& p) { return p.plan.reason; })
      .def_prop_ro("device", [](const PyDecodePlan& p) { return p.plan.device; });

  nb::class_<PyDecode>(m, "DecodeAttention",
                       "Decode over a KV cache: q [batch, 1..8, Hq, D] new rows (causal among "
                       "them) against the cached tokens.")
      .def_static(
          "cpu",
          [](std::optional<CpuOptions> options) {
            PyDecode d;
            check(create_decode_cpu(options ? *options : CpuOptions(), &d.impl));
            return d;
          },
          nb::arg("options") = nb::none())
      .def_static(
          "cuda",
          [](int device, bool tensor_cores) {
            PyDecode d;
#if QWEN3VL_WITH_CUDA
            CudaOptions o;
            o.device = device;
            o.decode.tensor_cores = tensor_cores;
            check(create_decode_cuda(o, &d.impl));
#else
            (void)device, (void)tensor_cores;
            fail_no_cuda("DecodeAttention.cuda");
#endif
            return d;
          },
          nb::arg("device") = -1, nb::arg("tensor_cores") = true,
          "CUDA decode (device -1: the current device); NotBuiltError without the CUDA backend.")
      .def_prop_ro("device", [](const PyDecode& d) { return d.impl->device(); })
      .def("describe", [](const PyDecode& d) { return d.impl->describe(); })
      .def(
          "plan",
          [](const PyDecode& d, nb::handle q, nb::handle out, const PyKvView& kv, nb::handle lse,
             std::optional<float> scale, int64_t num_splits) {
            PyDecodePlan plan;
            check(d.impl->plan(make_decode(q, out, kv, lse, scale, num_splits), &plan.plan));
            return plan;
          },
          QW_DECODE_ARGS)
      .def(
          "run",
          [](const PyDecode& d, const PyDecodePlan& plan, nb::handle q, nb::handle out,
             const PyKvView& kv, nb::handle lse, std::optional<float> scale, int64_t num_splits,
             nb::object workspace, uintptr_t stream) {
            const DecodeParams p = make_decode(q, out, kv, lse, scale, num_splits);
            WorkspaceHolder ws;
            const Workspace w =
                ws.get(plan.plan.workspace_bytes,
                       workspace.is_none() ? OptOut() : OptOut(nb::cast<Out>(workspace)),
                       d.impl->device());
            Status s;
            {
              nb::gil_scoped_release release;
              s = d.impl->run(plan.plan, p, w, stream_ptr(stream));
            }
            check(s);
          },
          nb::arg("plan"), QW_DECODE_ARGS, nb::arg("workspace") = nb::none(), nb::arg("stream") = 0)
      .def(
          "forward",
          [](const PyDecode& d, nb::handle q, nb::handle out, const PyKvView& kv, nb::handle lse,
             std::optional<float> scale, int64_t num_splits, nb::object workspace,
             uintptr_t stream) {
            const DecodeParams p = make_decode(q, out, kv, lse, scale, num_splits);
            DecodePlan plan;
            check(d.impl->plan(p, &plan));
            WorkspaceHolder ws;
            const Workspace w =
                ws.get(plan.workspace_bytes,
                       workspace.is_none() ? OptOut() : OptOut(nb::cast<Out>(workspace)),
                       d.impl->device());
            Status s;
            {
              nb::gil_scoped_release release;
              s = d.impl->run(plan, p, w, stream_ptr(stream));
            }
            check(s);
          },
          QW_DECODE_ARGS, nb::arg("workspace") = nb::none(), nb::arg("stream") = 0)
      .def(
          "supports",
          [](const PyDecode& d, nb::handle q, nb::handle out, const PyKvView& kv, nb::handle lse,
             std::optional<float> scale, int64_t num_splits) {
            return d.impl->supports(make_decode(q, out, kv, lse, scale, num_splits)).ok();
          },
          QW_DECODE_ARGS)
      .def(
          "workspace_size",
          [](const PyDecode& d, nb::handle q, nb::handle out, const PyKvView& kv, nb::handle lse,
             std::optional<float> scale, int64_t num_splits) {
            return d.impl->workspace_size(make_decode(q, out, kv, lse, scale, num_splits));
          },
          QW_DECODE_ARGS);

  nb::enum_<QuestAggregation>(m, "QuestAggregation")
      .value("max", QuestAggregation::kMax)
      .value("sum", QuestAggregation::kSum);
  nb::class_<PyQuest>(m, "QuestDecode",
                      "Quest page selection over a paged cache with key bounds, then exact decode "
                      "over the kept pages (the newest rows' pages always kept).")
      .def_static(
          "cpu",
          [](int64_t token_budget, QuestAggregation aggregation, std::optional<CpuOptions> o) {
            std::unique_ptr<DecodeAttention> d;
            check(create_decode_cpu(o ? *o : CpuOptions(), &d));
            return make_quest(std::move(d), token_budget, aggregation);
          },
          nb::arg("token_budget") = 4096, nb::arg("aggregation") = QuestAggregation::kMax,
          nb::arg("options") = nb::none())
      .def_static(
          "cuda",
          [](int64_t token_budget, QuestAggregation aggregation, int device) {
            std::unique_ptr<DecodeAttention> d;
#if QWEN3VL_WITH_CUDA
            CudaOptions o;
            o.device = device;
            check(create_decode_cuda(o, &d));
#else
            (void)device;
            fail_no_cuda("QuestDecode.cuda");
#endif
            return make_quest(std::move(d), token_budget, aggregation);
          },
          nb::arg("token_budget") = 4096, nb::arg("aggregation") = QuestAggregation::kMax,
          nb::arg("device") = -1)
      .def_prop_ro("device", [](const PyQuest& q) { return q.impl->device(); })
      .def("describe", [](const PyQuest& q) { return q.impl->describe(); })
      .def(
          "forward",
          [](const PyQuest& q, nb::handle query, nb::handle out, const PyKvView& kv,
             nb::handle key_bounds, nb::handle lse, std::optional<float> scale,
             nb::object workspace, uintptr_t stream) {
            QuestParams p;
            p.decode = make_decode(query, out, kv, lse, scale, 0);
            p.key_bounds = arg_view(key_bounds, "key_bounds", false, false);
            check(q.impl->supports(p));
            WorkspaceHolder ws;
            const Workspace w =
                ws.get(q.impl->workspace_size(p),
                       workspace.is_none() ? OptOut() : OptOut(nb::cast<Out>(workspace)),
                       q.impl->device());
            Status s;
            {
              nb::gil_scoped_release release;
              s = q.impl->forward(p, w, stream_ptr(stream));
            }
            check(s);
          },
          nb::arg("q"), nb::arg("out"), nb::arg("kv"), nb::arg("key_bounds"), nb::kw_only(),
          nb::arg("lse") = nb::none(), nb::arg("scale") = nb::none(),
          nb::arg("workspace") = nb::none(), nb::arg("stream") = 0,
          "key_bounds: the float32 [num_blocks, 2, Hkv, D] array the cache was created with.");
}

}  // namespace qwen3vl::python
