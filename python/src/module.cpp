// The nanobind extension qwen3vl_attention._core: the module, its error translation, the enums,
// the configuration structs and the hardware report. The other bind_*.cpp add the rest.
#include <cstring>

#include "common.hpp"

namespace qwen3vl::python {

namespace {

// The Python exception classes, one per StatusCode, set by the package's errors module at import
// (_register_errors); strong references kept for the life of the process.
PyObject* g_error_classes[16] = {};
PyObject* g_error_base = nullptr;

void raise_status(StatusCode code, const std::string& message) {
  const int c = static_cast<int>(code);
  PyObject* cls = (c >= 0 && c < 16 && g_error_classes[c]) ? g_error_classes[c] : g_error_base;
  if (!cls) cls = PyExc_RuntimeError;
  nb::object inst = nb::borrow(cls)(message);
  nb::setattr(inst, "code", nb::cast(code));
  PyErr_SetObject(cls, inst.ptr());
}

}  // namespace

void register_errors(nb::module_& m) {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      raise_status(e.status.code(), e.status.message());
    } catch (const Error& e) {
      // Error's what() is Status::to_string(): "<code name>: <message>"; the class carries the
      // code.
      std::string what = e.what();
      const std::string prefix = std::string(to_string(e.code())) + ": ";
      if (what.compare(0, prefix.size(), prefix) == 0) what = what.substr(prefix.size());
      raise_status(e.code(), what);
    }
  });
  m.def(
      "_register_errors",
      [](nb::handle base, nb::dict classes) {
        Py_XDECREF(g_error_base);
        g_error_base = base.inc_ref().ptr();
        for (auto [key, value] : classes) {
          const int c = static_cast<int>(nb::cast<StatusCode>(key));
          if (c < 0 || c >= 16) continue;
          Py_XDECREF(g_error_classes[c]);
          g_error_classes[c] = value.inc_ref().ptr();
        }
      },
      nb::arg("base"), nb::arg("classes"),
      "Called once by qwen3vl_attention.errors: the exception class of each StatusCode.");
}

std::vector<int32_t> host_i32(const In& a, const char* name, std::vector<int64_t>* shape) {
  const TensorView v = to_view(a, name);
  if (v.dtype != DType::kI32)
    fail(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(v.dtype), ": must be int32");
  if (v.device != Device::kCPU)
    fail(StatusCode::kInvalidArgument, name, ": must be in host memory");
  std::vector<int32_t> out(size_t(v.numel()));
  const int32_t* p = v.ptr<const int32_t>();
  int64_t idx[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = p[v.offset(idx[0], idx[1], idx[2], idx[3])];
    for (int d = v.rank - 1; d >= 0; --d) {  // row-major walk over any strides
      if (++idx[d] < v.shape[d]) break;
      idx[d] = 0;
    }
  }
  if (shape) shape->assign(v.shape, v.shape + v.rank);
  return out;
}

void bind_enums(nb::module_& m) {
  nb::enum_<StatusCode>(m, "StatusCode")
      .value("ok", StatusCode::kOk)
      .value("invalid_argument", StatusCode::kInvalidArgument)
      .value("shape_mismatch", StatusCode::kShapeMismatch)
      .value("bad_stride", StatusCode::kBadStride)
      .value("null_pointer", StatusCode::kNullPointer)
      .value("unsupported", StatusCode::kUnsupported)
      .value("not_implemented", StatusCode::kNotImplemented)
      .value("workspace_too_small", StatusCode::kWorkspaceTooSmall)
      .value("device_error", StatusCode::kDeviceError)
      .value("out_of_memory", StatusCode::kOutOfMemory)
      .value("internal", StatusCode::kInternal)
      .value("io_error", StatusCode::kIoError)
      .value("data_corrupt", StatusCode::kDataCorrupt);
  nb::enum_<DType>(m, "DType")
      .value("f32", DType::kF32)
      .value("f16", DType::kF16)
      .value("bf16", DType::kBF16)
      .value("i32", DType::kI32);
  nb::enum_<Device>(m, "Device").value("cpu", Device::kCPU).value("cuda", Device::kCUDA);
  nb::enum_<Variant>(m, "Variant")
      .value("auto", Variant::kAuto)
      .value("standard", Variant::kStandard)
      .value("flash2", Variant::kFlash2)
      .value("sm61_tiled", Variant::kSm61Tiled)
      .value("static_sparse", Variant::kStaticSparse)
      .value("dynamic_sparse", Variant::kDynamicSparse)
      .value("block_sparse", Variant::kBlockSparse)
      .value("linear", Variant::kLinear)
      .value("mixture_of_heads", Variant::kMixtureOfHeads);
  nb::enum_<MaskKind>(m, "MaskKind")
      .value("none", MaskKind::kNone)
      .value("causal", MaskKind::kCausal)
      .value("causal_top_left", MaskKind::kCausalTopLeft)
      .value("sliding_window", MaskKind::kSlidingWindow);
  nb::enum_<CpuIsa>(m, "CpuIsa")
      .value("auto", CpuIsa::kAuto)
      .value("scalar", CpuIsa::kScalar)
      .value("avx2", CpuIsa::kAvx2)
      .value("avx512", CpuIsa::kAvx512);
  nb::enum_<KvLayout>(m, "KvLayout")
      .value("contiguous", KvLayout::kContiguous)
      .value("paged", KvLayout::kPaged);
  nb::enum_<SparsePattern>(m, "SparsePattern")
      .value("dense", SparsePattern::kDense)
      .value("sliding_window", SparsePattern::kSlidingWindow)
      .value("dilated", SparsePattern::kDilated)
      .value("longformer", SparsePattern::kLongformer)
      .value("bigbird", SparsePattern::kBigBird)
      .value("fixed", SparsePattern::kFixed)
      .value("variable", SparsePattern::kVariable);
  nb::enum_<DynamicSparseMethod>(m, "DynamicSparseMethod")
      .value("block_top_k", DynamicSparseMethod::kBlockTopK)
      .value("vertical_slash", DynamicSparseMethod::kVerticalSlash)
      .value("exact_top_k", DynamicSparseMethod::kExactTopK);
  nb::enum_<LinearFeatureMap>(m, "LinearFeatureMap")
      .value("elu_plus_one", LinearFeatureMap::kEluPlusOne)
      .value("performer", LinearFeatureMap::kPerformer);
  nb::enum_<PerformerNorm>(m, "PerformerNorm")
      .value("chi", PerformerNorm::kChi)
      .value("sqrt_head_dim", PerformerNorm::kSqrtHeadDim);
}

namespace {

void bind_configs(nb::module_& m) {
  nb::class_<CpuOptions>(m, "CpuOptions", "Threads and ISA of CPU kernels.")
      .def(nb::init<>())
      .def(
          "__init__",
          [](CpuOptions* self, int num_threads, CpuIsa isa) {
            new (self) CpuOptions();
            self->num_threads = num_threads;
            self->isa = isa;
          },
          nb::arg("num_threads") = 0, nb::arg("isa") = CpuIsa::kAuto)
      .def_rw("num_threads", &CpuOptions::num_threads, "0: the physical cores; else 1..1024")
      .def_rw("isa", &CpuOptions::isa);

  nb::class_<SlidingWindowPattern>(m, "SlidingWindowPattern")
      .def(nb::init<>())
      .def_rw("num_sliding_window_blocks", &SlidingWindowPattern::num_sliding_window_blocks);
  nb::class_<DilatedPattern>(m, "DilatedPattern")
      .def(nb::init<>())
      .def_rw("local_blocks", &DilatedPattern::local_blocks)
      .def_rw("dilation", &DilatedPattern::dilation)
      .def_rw("span_blocks", &DilatedPattern::span_blocks);
  nb::class_<GlobalBlocks>(m, "GlobalBlocks")
      .def(nb::init<>())
      .def_rw("global_block_indices", &GlobalBlocks::global_block_indices)
      .def_rw("global_block_end_indices", &GlobalBlocks::global_block_end_indices);
  nb::class_<LongformerPattern>(m, "LongformerPattern")
      .def(nb::init<>())
      .def_rw("num_sliding_window_blocks", &LongformerPattern::num_sliding_window_blocks)
      .def_rw("global_blocks", &LongformerPattern::global);
  nb::class_<BigBirdPattern>(m, "BigBirdPattern")
      .def(nb::init<>())
      .def_rw("num_random_blocks", &BigBirdPattern::num_random_blocks)
      .def_rw("num_sliding_window_blocks", &BigBirdPattern::num_sliding_window_blocks)
      .def_rw("num_global_blocks", &BigBirdPattern::num_global_blocks);
  nb::class_<FixedPattern>(m, "FixedPattern")
      .def(nb::init<>())
      .def_rw("num_local_blocks", &FixedPattern::num_local_blocks)
      .def_rw("num_global_blocks", &FixedPattern::num_global_blocks)
      .def_rw("horizontal_global_attention", &FixedPattern::horizontal_global_attention)
      .def_rw("num_different_global_patterns", &FixedPattern::num_different_global_patterns);
  nb::class_<VariablePattern>(m, "VariablePattern")
      .def(nb::init<>())
      .def_rw("num_random_blocks", &VariablePattern::num_random_blocks)
      .def_rw("local_window_blocks", &VariablePattern::local_window_blocks)
      .def_rw("global_blocks", &VariablePattern::global)
      .def_rw("horizontal_global_attention", &VariablePattern::horizontal_global_attention);
  nb::class_<StaticSparseConfig>(m, "StaticSparseConfig")
      .def(nb::init<>())
      .def_rw("pattern", &StaticSparseConfig::pattern)
      .def_rw("block", &StaticSparseConfig::block)
      .def_rw("unidirectional", &StaticSparseConfig::unidirectional)
      .def_rw("different_layout_per_head", &StaticSparseConfig::different_layout_per_head)
      .def_rw("seed", &StaticSparseConfig::seed)
      .def_rw("sliding_window", &StaticSparseConfig::sliding_window)
      .def_rw("dilated", &StaticSparseConfig::dilated)
      .def_rw("longformer", &StaticSparseConfig::longformer)
      .def_rw("bigbird", &StaticSparseConfig::bigbird)
      .def_rw("fixed", &StaticSparseConfig::fixed)
      .def_rw("variable", &StaticSparseConfig::variable);
  nb::class_<DynamicSparseConfig>(m, "DynamicSparseConfig")
      .def(nb::init<>())
      .def_rw("method", &DynamicSparseConfig::method)
      .def_rw("block_q", &DynamicSparseConfig::block_q)
      .def_rw("block_k", &DynamicSparseConfig::block_k)
      .def_rw("top_k_blocks", &DynamicSparseConfig::top_k_blocks)
      .def_rw("sink_blocks", &DynamicSparseConfig::sink_blocks)
      .def_rw("local_blocks", &DynamicSparseConfig::local_blocks)
      .def_rw("last_queries", &DynamicSparseConfig::last_queries)
      .def_rw("vertical", &DynamicSparseConfig::vertical)
      .def_rw("slash", &DynamicSparseConfig::slash)
      .def_rw("forced_vertical", &DynamicSparseConfig::forced_vertical)
      .def_rw("forced_slash", &DynamicSparseConfig::forced_slash)
      .def_rw("top_k", &DynamicSparseConfig::top_k)
      .def_rw("keep_fraction", &DynamicSparseConfig::keep_fraction);
  nb::class_<LinearConfig>(m, "LinearConfig")
      .def(nb::init<>())
      .def_rw("feature_map", &LinearConfig::feature_map)
      .def_rw("head_dim", &LinearConfig::head_dim)
      .def_rw("performer_features", &LinearConfig::performer_features)
      .def_rw("performer_seed", &LinearConfig::performer_seed)
      .def_rw("performer_norm", &LinearConfig::performer_norm)
      .def_rw("chunk", &LinearConfig::chunk)
      .def_rw("eps", &LinearConfig::eps);
  nb::class_<MoHConfig>(m, "MoHConfig")
      .def(nb::init<>())
      .def_rw("num_heads", &MoHConfig::num_heads)
      .def_rw("num_shared_heads", &MoHConfig::num_shared_heads)
      .def_rw("top_k", &MoHConfig::top_k);

  nb::class_<AttentionConfig>(m, "AttentionConfig",
                              "What the selector plans for (C++ AttentionConfig).")
      .def(
          "__init__",
          [](AttentionConfig* self, Variant variant, Device device, int num_heads, int num_kv_heads,
             int head_dim, DType dtype, std::optional<MaskKind> mask, bool need_weights,
             std::optional<CpuOptions> cpu, int cuda_device) {
            new (self) AttentionConfig();
            self->variant = variant;
            self->device = device;
            self->num_heads = num_heads;
            self->num_kv_heads = num_kv_heads;
            self->head_dim = head_dim;
            self->dtype = dtype;
            self->mask = mask;
            self->need_weights = need_weights;
            if (cpu) self->cpu = *cpu;
            self->cuda_device = cuda_device;
          },
          nb::arg("variant") = Variant::kAuto, nb::arg("device") = Device::kCPU,
          nb::arg("num_heads") = 0, nb::arg("num_kv_heads") = 0, nb::arg("head_dim") = 0,
          nb::arg("dtype") = DType::kF32, nb::arg("mask") = nb::none(),
          nb::arg("need_weights") = false, nb::arg("cpu") = nb::none(), nb::arg("cuda_device") = -1)
      .def_rw("variant", &AttentionConfig::variant)
      .def_rw("device", &AttentionConfig::device)
      .def_rw("num_heads", &AttentionConfig::num_heads)
      .def_rw("num_kv_heads", &AttentionConfig::num_kv_heads)
      .def_rw("head_dim", &AttentionConfig::head_dim)
      .def_rw("dtype", &AttentionConfig::dtype)
      .def_rw("mask", &AttentionConfig::mask)
      .def_rw("need_weights", &AttentionConfig::need_weights)
      .def_rw("cpu", &AttentionConfig::cpu)
      .def_rw("cuda_device", &AttentionConfig::cuda_device)
      .def_rw("static_sparse", &AttentionConfig::static_sparse)
      .def_rw("dynamic_sparse", &AttentionConfig::dynamic_sparse)
      .def_rw("linear", &AttentionConfig::linear)
      .def_rw("mixture_of_heads", &AttentionConfig::mixture_of_heads);
}

void bind_hardware(nb::module_& m) {
  nb::class_<CpuInfo>(m, "CpuInfo")
      .def_ro("vendor", &CpuInfo::vendor)
      .def_ro("brand", &CpuInfo::brand)
      .def_ro("avx2", &CpuInfo::avx2)
      .def_ro("fma", &CpuInfo::fma)
      .def_ro("f16c", &CpuInfo::f16c)
      .def_ro("avx512f", &CpuInfo::avx512f)
      .def_ro("avx512_bf16", &CpuInfo::avx512_bf16)
      .def_ro("avx512_vnni", &CpuInfo::avx512_vnni)
      .def_ro("physical_cores", &CpuInfo::physical_cores)
      .def_ro("logical_cores", &CpuInfo::logical_cores)
      .def_ro("l1d_bytes", &CpuInfo::l1d_bytes)
      .def_ro("l2_bytes", &CpuInfo::l2_bytes)
      .def_ro("l3_bytes", &CpuInfo::l3_bytes)
      .def("has_avx2_fma", &CpuInfo::has_avx2_fma)
      .def("has_avx512", &CpuInfo::has_avx512)
      .def("__str__", &CpuInfo::to_string);
  nb::class_<GpuInfo>(m, "GpuInfo")
      .def_ro("index", &GpuInfo::index)
      .def_ro("name", &GpuInfo::name)
      .def_ro("sm_major", &GpuInfo::sm_major)
      .def_ro("sm_minor", &GpuInfo::sm_minor)
      .def_ro("multiprocessors", &GpuInfo::multiprocessors)
      .def_ro("global_memory_bytes", &GpuInfo::global_memory_bytes)
      .def_ro("shared_memory_per_block", &GpuInfo::shared_memory_per_block);
  nb::class_<HardwareInfo>(m, "HardwareInfo", "The CPU and the CUDA devices the library sees.")
      .def_static(
          "current", []() { return HardwareInfo::current(); },
          "Detected once, then cached (a copy).")
      .def_ro("cpu", &HardwareInfo::cpu)
      .def_ro("gpus", &HardwareInfo::gpus)
      .def("to_string", &HardwareInfo::to_string)
      .def("__str__", &HardwareInfo::to_string);
  m.def(
      "merge_states",
      [](nb::handle o1, nb::handle lse1, nb::handle o2, nb::handle lse2, nb::handle out,
         nb::handle lse_out) {
        check(merge_states(arg_view(o1, "o1", false, false), arg_view(lse1, "lse1", false, false),
                           arg_view(o2, "o2", false, false), arg_view(lse2, "lse2", false, false),
                           arg_view(out, "out", true, false),
                           arg_view(lse_out, "lse_out", true, false)));
      },
      nb::arg("o1"), nb::arg("lse1"), nb::arg("o2"), nb::arg("lse2"), nb::arg("out"),
      nb::arg("lse_out"),
      "Merges two partial results over disjoint keys (o [tokens, heads, D], lse float32 "
      "[tokens, heads]) into the result over their union (host arrays).");
  m.def(
      "hardware_report", []() { return HardwareInfo::current().to_string(); },
      "HardwareInfo.current().to_string(): the CPU flags, cores, caches and CUDA devices.");
}

}  // namespace

}  // namespace qwen3vl::python

NB_MODULE(_core, m) {
  using namespace qwen3vl::python;
  // Objects cached at module level (the exception classes, transformers' registry of the backend)
  // live until interpreter exit, which nanobind would report as leaks.
  nb::set_leak_warnings(false);
  m.doc() = "qwen3vl-attention: attention kernels for Qwen3-VL (the C++ library's binding)";
  // A function, not a constant: the module's interface (and its stubs) is the same in CPU and
  // CUDA builds; the CUDA entry points of a CPU build raise NotBuiltError.
  m.def(
      "built_with_cuda", []() { return bool(QWEN3VL_PY_WITH_CUDA); },
      "Whether the library was built with its CUDA backend.");
  register_errors(m);
  bind_enums(m);
  bind_configs(m);
  bind_hardware(m);
  bind_attention(m);
  bind_kv(m);
  bind_rope(m);
  bind_layers(m);
}

namespace qwen3vl::python {

TensorView arg_view(nb::handle obj, const char* name, bool output, bool optional) {
  if (obj.is_none()) {
    if (!optional) fail(StatusCode::kNullPointer, name, " = None: required");
    return TensorView();
  }
  if (output) {
    Out a;
    if (nb::try_cast(obj, a, false)) return to_view(a, name);
    In r;
    if (nb::try_cast(obj, r, false))
      fail(StatusCode::kInvalidArgument, name,
           ": the array is read-only; an output must be writable");
  } else {
    In a;
    if (nb::try_cast(obj, a, false)) return to_view(a, name);
  }
  fail(StatusCode::kInvalidArgument, name, ": a ", nb::type_name(obj.type()).c_str(),
       " is not an array (expected an object exporting DLPack or the buffer protocol: NumPy, "
       "PyTorch, CuPy)");
}

}  // namespace qwen3vl::python
