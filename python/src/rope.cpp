// RoPE / M-RoPE: tables, cos/sin, appliers, position ids (get_rope_index) and vision positions.
#include "common.hpp"

namespace qwen3vl::python {

namespace {

using namespace qwen3vl::rope;
using Grid = std::tuple<int64_t, int64_t, int64_t>;

std::vector<GridThw> grids_of(const std::vector<Grid>& g) {
  std::vector<GridThw> out;
  for (const Grid& x : g) out.push_back({std::get<0>(x), std::get<1>(x), std::get<2>(x)});
  return out;
}

// A NumPy array that owns `values` (moved into the capsule).
template <class T>
nb::ndarray<nb::numpy, T> numpy_of(std::vector<T> values, std::vector<size_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(owned->data(), shape.size(), shape.data(), owner);
}

InvFreq inv_freq_of(nb::handle a) {
  InvFreq f;
  if (a.is_none()) return f;
  nb::ndarray<nb::ro, nb::ndim<1>, nb::device::cpu> arr;
  if (!nb::try_cast(a, arr, false))
    fail(StatusCode::kInvalidArgument, "inv_freq: expected a 1-D host array of float32 or float64");
  const nb::dlpack::dtype dt = arr.dtype();
  const bool f32 = dt == nb::dtype<float>(), f64 = dt == nb::dtype<double>();
  if (!f32 && !f64) fail(StatusCode::kInvalidArgument, "inv_freq.dtype: allowed float32, float64");
  for (size_t i = 0; i < arr.shape(0); ++i) {
    const char* at =
        static_cast<const char*>(arr.data()) + int64_t(i) * arr.stride(0) * (f32 ? 4 : 8);
    if (f32)
      f.f32.push_back(*reinterpret_cast<const float*>(at));
    else
      f.f64.push_back(*reinterpret_cast<const double*>(at));
  }
  return f;
}

struct PyRopeTable {
  RopeTable table;
};

// A table in device memory (an empty shell without the CUDA backend: upload() raises).
struct PyDeviceRopeTable {
#if QWEN3VL_WITH_CUDA
  DeviceRopeTable table;
#endif
};

struct PyRopeApplier {
  std::unique_ptr<RopeApplier> impl;
};

RopeTableView table_view(nb::handle t) {
  if (nb::isinstance<PyRopeTable>(t)) return nb::cast<const PyRopeTable&>(t).table.view();
#if QWEN3VL_WITH_CUDA
  if (nb::isinstance<PyDeviceRopeTable>(t))
    return nb::cast<const PyDeviceRopeTable&>(t).table.view();
#endif
  fail(StatusCode::kInvalidArgument, "table: expected a RopeTable (or a DeviceRopeTable), got ",
       nb::type_name(t.type()).c_str());
}

}  // namespace

void bind_rope(nb::module_& m) {
  nb::enum_<RopeStyle>(m, "RopeStyle")
      .value("neox", RopeStyle::kNeox)
      .value("gptj", RopeStyle::kGptj);
  nb::enum_<RopeArithmetic>(m, "RopeArithmetic")
      .value("fused", RopeArithmetic::kFused)
      .value("transformers_fp32", RopeArithmetic::kTransformersFp32)
      .value("transformers_storage", RopeArithmetic::kTransformersStorage);
  nb::enum_<AngleRecipe>(m, "AngleRecipe")
      .value("exact", AngleRecipe::kExact)
      .value("transformers_fp32", AngleRecipe::kTransformersFp32);
  nb::enum_<TableLayout>(m, "TableLayout")
      .value("full", TableLayout::kFull)
      .value("split", TableLayout::kSplit);
  nb::enum_<MRopeLayout>(m, "MRopeLayout")
      .value("none", MRopeLayout::kNone)
      .value("chunked", MRopeLayout::kChunked)
      .value("interleaved", MRopeLayout::kInterleaved);
  nb::enum_<RopeScalingType>(m, "RopeScalingType")
      .value("default", RopeScalingType::kDefault)
      .value("linear", RopeScalingType::kLinear)
      .value("ntk", RopeScalingType::kNtk)
      .value("dynamic", RopeScalingType::kDynamic)
      .value("yarn", RopeScalingType::kYarn)
      .value("llama3", RopeScalingType::kLlama3);
  nb::enum_<RopeIndexModel>(m, "RopeIndexModel")
      .value("qwen2_vl", RopeIndexModel::kQwen2VL)
      .value("qwen2_5_vl", RopeIndexModel::kQwen25VL)
      .value("qwen3_vl", RopeIndexModel::kQwen3VL);

  nb::class_<RopeScaling>(m, "RopeScaling")
      .def(nb::init<>())
      .def_rw("type", &RopeScaling::type)
      .def_rw("factor", &RopeScaling::factor)
      .def_rw("original_max_position", &RopeScaling::original_max_position)
      .def_rw("beta_fast", &RopeScaling::beta_fast)
      .def_rw("beta_slow", &RopeScaling::beta_slow)
      .def_rw("mscale", &RopeScaling::mscale)
      .def_rw("mscale_all_dim", &RopeScaling::mscale_all_dim)
      .def_rw("attention_factor", &RopeScaling::attention_factor)
      .def_rw("truncate", &RopeScaling::truncate)
      .def_rw("low_freq_factor", &RopeScaling::low_freq_factor)
      .def_rw("high_freq_factor", &RopeScaling::high_freq_factor);
  nb::class_<RopeConfig>(m, "RopeConfig")
      .def(
          "__init__",
          [](RopeConfig* self, int64_t head_dim, int64_t rotary_dim, double theta,
             std::optional<RopeScaling> scaling) {
            new (self) RopeConfig();
            self->head_dim = head_dim;
            self->rotary_dim = rotary_dim;
            self->theta = theta;
            if (scaling) self->scaling = *scaling;
          },
          nb::arg("head_dim") = 128, nb::arg("rotary_dim") = 0, nb::arg("theta") = 10000.0,
          nb::arg("scaling") = nb::none())
      .def_rw("head_dim", &RopeConfig::head_dim)
      .def_rw("rotary_dim", &RopeConfig::rotary_dim)
      .def_rw("theta", &RopeConfig::theta)
      .def_rw("scaling", &RopeConfig::scaling);

  m.def(
      "compute_frequencies",
      [](const RopeConfig& config, int64_t seq_len, nb::handle inv_freq) {
        RopeFrequencies f;
        check(compute_frequencies(config, seq_len, inv_freq_of(inv_freq), &f));
        const size_t n = f.inv_freq.size();
        return std::make_pair(numpy_of<float>(std::move(f.inv_freq), {n}), f.attention_factor);
      },
      nb::arg("config"), nb::arg("seq_len"), nb::arg("inv_freq") = nb::none(),
      "(inv_freq float32 [rotary / 2], attention_factor) for a sequence length (dynamic NTK).");

  nb::class_<PyRopeTable>(m, "RopeTable", "cos / sin of every position and frequency slot.")
      .def_static(
          "text",
          [](const RopeConfig& config, MRopeLayout layout,
             std::tuple<int32_t, int32_t, int32_t> section, int64_t max_position,
             AngleRecipe recipe, TableLayout table_layout, nb::handle inv_freq) {
            PyRopeTable t;
            check(make_text_table(
                config, layout,
                MRopeSection{std::get<0>(section), std::get<1>(section), std::get<2>(section)},
                max_position, recipe, table_layout, &t.table, inv_freq_of(inv_freq)));
            return t;
          },
          nb::arg("config"), nb::arg("layout") = MRopeLayout::kInterleaved,
          nb::arg("section") = std::make_tuple(24, 20, 20), nb::arg("max_position") = 262144,
          nb::arg("recipe") = AngleRecipe::kExact, nb::arg("table_layout") = TableLayout::kSplit,
          nb::arg("inv_freq") = nb::none(),
          "make_text_table: the text table (M-RoPE sections t, h, w add up to rotary_dim / 2).")
      .def_static(
          "vision",
          [](int64_t head_dim, double theta, int64_t max_side, AngleRecipe recipe,
             TableLayout table_layout, nb::handle inv_freq) {
            PyRopeTable t;
            check(make_vision_table(head_dim, theta, max_side, recipe, table_layout, &t.table,
                                    inv_freq_of(inv_freq)));
            return t;
          },
          nb::arg("head_dim"), nb::arg("theta") = 10000.0, nb::arg("max_side") = 4096,
          nb::arg("recipe") = AngleRecipe::kTransformersFp32,
          nb::arg("table_layout") = TableLayout::kFull, nb::arg("inv_freq") = nb::none(),
          "make_vision_table: the vision encoder's 2-D table (rows, columns).")
      .def_prop_ro("half", [](const PyRopeTable& t) { return t.table.view().half; })
      .def_prop_ro("axes", [](const PyRopeTable& t) { return t.table.view().axes; })
      .def_prop_ro("max_position", [](const PyRopeTable& t) { return t.table.view().max_position; })
      .def_prop_ro("layout", [](const PyRopeTable& t) { return t.table.view().layout; })
      .def_prop_ro("recipe", [](const PyRopeTable& t) { return t.table.view().recipe; })
      .def_prop_ro("inv_freq",
                   [](const PyRopeTable& t) {
                     const auto& f = t.table.spec().inv_freq;
                     return nb::cast(numpy_of<float>(f, {f.size()}), nb::rv_policy::move);
                   })
      .def_prop_ro("axis",
                   [](const PyRopeTable& t) {
                     std::vector<int32_t> a(t.table.spec().axis.begin(), t.table.spec().axis.end());
                     const size_t n = a.size();
                     return nb::cast(numpy_of<int32_t>(std::move(a), {n}), nb::rv_policy::move);
                   })
      .def_prop_ro("bytes", [](const PyRopeTable& t) { return t.table.bytes(); });

  nb::class_<PyDeviceRopeTable>(m, "DeviceRopeTable", "A RopeTable copied to a CUDA device.")
      .def_static(
          "upload",
          [](const PyRopeTable& t, int device) {
            PyDeviceRopeTable d;
#if QWEN3VL_WITH_CUDA
            check(DeviceRopeTable::upload(t.table, device, &d.table));
#else
            (void)t, (void)device;
            fail_no_cuda("DeviceRopeTable.upload");
#endif
            return d;
          },
          nb::arg("table"), nb::arg("device") = 0);

  m.def(
      "rope_cos_sin",
      [](nb::handle table, nb::handle positions, nb::handle cos, nb::handle sin) {
        check(rope_cos_sin(table_view(table), arg_view(positions, "positions", false, false),
                           arg_view(cos, "cos", true, false), arg_view(sin, "sin", true, false)));
      },
      nb::arg("table"), nb::arg("positions"), nb::arg("cos"), nb::arg("sin"),
      "The cos / sin the table gives host positions int32 [T] or [axes, T], into float32 "
      "[T, half] arrays.");

  nb::class_<PyRopeApplier>(m, "RopeApplier", "Rotates q and k in place.")
      .def_static(
          "cpu",
          [](std::optional<CpuOptions> options) {
            PyRopeApplier a;
            check(create_rope_cpu(options ? *options : CpuOptions(), &a.impl));
            return a;
          },
          nb::arg("options") = nb::none())
      .def_static(
          "cuda",
          [](int device) {
            PyRopeApplier a;
#if QWEN3VL_WITH_CUDA
            check(create_rope_cuda(device, &a.impl));
#else
            (void)device;
            fail_no_cuda("RopeApplier.cuda");
#endif
            return a;
          },
          nb::arg("device") = 0)
      .def_prop_ro("device", [](const PyRopeApplier& a) { return a.impl->device(); })
      .def("describe", [](const PyRopeApplier& a) { return a.impl->describe(); })
      .def(
          "apply",
          [](const PyRopeApplier& a, nb::handle q, nb::handle k, nb::handle positions,
             nb::handle table, RopeStyle style, RopeArithmetic arithmetic, uintptr_t stream) {
            RopeApplyParams p;
            p.q = arg_view(q, "q", true, false);
            p.k = arg_view(k, "k", true);
            p.positions = arg_view(positions, "positions", false, false);
            p.table = table_view(table);
            p.style = style;
            p.arithmetic = arithmetic;
            Status s;
            {
              nb::gil_scoped_release release;
              s = a.impl->apply(p, stream_ptr(stream));
              if (s.ok() && a.impl->device() == Device::kCPU) s = a.impl->take_error(nullptr);
            }
            check(s);
          },
          nb::arg("q"), nb::arg("k").none(), nb::arg("positions"), nb::arg("table"), nb::kw_only(),
          nb::arg("style") = RopeStyle::kNeox, nb::arg("arithmetic") = RopeArithmetic::kFused,
          nb::arg("stream") = 0,
          "q [B, S, H, D] or [T, H, D] (and k, or None) rotated in place; positions int32 [B, S] "
          "/ [T] or [axes, B, S] / [axes, T]. CUDA: positions out of the table are reported by "
          "take_error().")
      .def(
          "take_error",
          [](const PyRopeApplier& a, uintptr_t stream) {
            check(a.impl->take_error(stream_ptr(stream)));
          },
          nb::arg("stream") = 0);

  m.def(
      "get_rope_index",
      [](const In& token_types, const std::vector<Grid>& image_grid_thw,
         const std::vector<Grid>& video_grid_thw, std::optional<In> attention_mask,
         RopeIndexModel model, std::vector<double> second_per_grid_ts, int64_t tokens_per_second,
         int64_t spatial_merge_size, int32_t pad_position) {
        std::vector<int64_t> shape;
        const std::vector<int32_t> types = host_i32(token_types, "token_types", &shape);
        if (shape.size() > 2)
          fail(StatusCode::kShapeMismatch, "token_types.ndim = ", shape.size(),
               ": allowed 1 ([L]) or 2 ([B, L])");
        RopeIndexInput in;
        in.model = model;
        in.batch = shape.size() == 2 ? shape[0] : 1;
        in.seq_len = shape.back();
        in.token_types = types.data();
        std::vector<int32_t> mask;
        if (attention_mask) {
          std::vector<int64_t> mshape;
          mask = host_i32(*attention_mask, "attention_mask", &mshape);
          if (int64_t(mask.size()) != in.batch * in.seq_len)
            fail(StatusCode::kShapeMismatch, "attention_mask: ", mask.size(),
                 " elements; must match token_types (", in.batch * in.seq_len, ")");
          in.attention_mask = mask.data();
        }
        in.image_grid_thw = grids_of(image_grid_thw);
        in.video_grid_thw = grids_of(video_grid_thw);
        in.second_per_grid_ts = std::move(second_per_grid_ts);
        in.tokens_per_second = tokens_per_second;
        in.spatial_merge_size = spatial_merge_size;
        in.pad_position = pad_position;
        RopeIndexOutput out;
        check(get_rope_index(in, &out));
        const size_t b = size_t(in.batch), l = size_t(in.seq_len);
        return std::make_pair(numpy_of<int32_t>(std::move(out.positions), {3, b, l}),
                              numpy_of<int32_t>(std::move(out.delta), {b}));
      },
      nb::arg("token_types"), nb::arg("image_grid_thw") = std::vector<Grid>(),
      nb::arg("video_grid_thw") = std::vector<Grid>(), nb::arg("attention_mask") = nb::none(),
      nb::arg("model") = RopeIndexModel::kQwen3VL,
      nb::arg("second_per_grid_ts") = std::vector<double>(), nb::arg("tokens_per_second") = 2,
      nb::arg("spatial_merge_size") = 2, nb::arg("pad_position") = 0,
      "M-RoPE position ids: (positions int32 [3, B, L] (t, h, w), delta int32 [B]). "
      "token_types int32 [B, L] or [L]: 0 text, 1 image, 2 video.");

  m.def(
      "vision_positions",
      [](const std::vector<Grid>& grids, int64_t merge) {
        std::vector<int32_t> pos;
        const std::vector<GridThw> g = grids_of(grids);
        check(vision_positions(g, merge, &pos));
        const size_t n = size_t(vision_patches(g));
        return numpy_of<int32_t>(std::move(pos), {2, n});
      },
      nb::arg("grids"), nb::arg("merge") = 2,
      "The vision encoder's (row, col) of every patch, int32 [2, N], in merge-block order.");
  m.def(
      "vision_patches",
      [](const std::vector<Grid>& grids) { return vision_patches(grids_of(grids)); },
      nb::arg("grids"));
}

}  // namespace qwen3vl::python
