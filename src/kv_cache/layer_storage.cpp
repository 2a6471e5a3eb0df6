// KvLayerStorage: checks one layer's K/V (and key bounds) against its table, and writes a table's
// append step into them through the device's KvStorageOps.
#include "qwen3vl/kv_cache/layer_storage.hpp"

#include "kv_source.hpp"

namespace qwen3vl {
namespace {

Status check_storage(const KvTableConfig& c, const TensorView& t, const char* name,
                     const TensorView& like, KvFormat format) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(t, name));
  if (t.rank != 4)
    return make_error(StatusCode::kShapeMismatch, name, ".rank = ", t.rank, " (shape ",
                      t.shape_string(), "): expected 4");
  const bool paged = c.layout == KvLayout::kPaged;
  const TensorView& first = like.present() ? like : t;
  QWEN3VL_RETURN_IF_ERROR(
      detail::check_dims(t, name, 4,
                         {paged ? c.num_blocks : c.batch, paged ? c.block_size : c.max_len,
                          first.shape[2], first.shape[3]}));
  const int64_t d = format == KvFormat::kInt4 ? 2 * t.shape[3] : t.shape[3];
  if (t.shape[2] < 1 || t.shape[3] < 1 || d > 256)
    return make_error(StatusCode::kInvalidArgument, name, ".shape = ", t.shape_string(),
                      ": needs Hkv >= 1 and head_dim 1..256");
  QWEN3VL_RETURN_IF_ERROR(check_kv_format(format, d, "format"));
  if (is_compressed(format) ? t.dtype != DType::kU8 : !is_floating(t.dtype))
    return make_error(
        StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype),
        is_compressed(format) ? ": must be u8 (the codes of format " : ": allowed f32, f16, bf16",
        is_compressed(format) ? to_string(format) : "", is_compressed(format) ? ")" : "");
  if (like.present() && t.dtype != like.dtype)
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype),
                      ": must equal k_storage.dtype (", to_string(like.dtype), ")");
  return detail::check_last_contiguous(t, name);
}

// Key bounds, when given: paged, f32 [num_blocks, 2, Hkv, D] contiguous on the storage's device,
// and ops that can maintain them.
Status check_key_bounds(const KvTableConfig& c, const TensorView& k, int64_t head_dim,
                        const TensorView& b, const KvStorageOps& ops) {
  if (!b.present()) return Status();
  if (c.layout != KvLayout::kPaged)
    return make_error(StatusCode::kInvalidArgument,
                      "config.key_bounds = true: needs layout paged (bounds are per block), not ",
                      to_string(c.layout));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(b, "key_bounds"));
  const int64_t want[4] = {c.num_blocks, 2, k.shape[2], head_dim};
  QWEN3VL_RETURN_IF_ERROR(
      detail::check_dims(b, "key_bounds", 4, {want[0], want[1], want[2], want[3]}));
  const TensorView packed =
      TensorView::contiguous(b.data, DType::kF32, {want[0], want[1], want[2], want[3]});
  for (int d = 0; d < 4; ++d)
    if (b.stride[d] != packed.stride[d])
      return make_error(StatusCode::kBadStride, "key_bounds.stride[", d, "] = ", b.stride[d],
                        ": must be contiguous (", packed.stride[d], ")");
  if (b.dtype != DType::kF32 || b.device != k.device || b.device_index != k.device_index)
    return make_error(StatusCode::kInvalidArgument, "key_bounds = ", to_string(b.dtype), " on ",
                      to_string(b.device), ":", b.device_index,
                      ": must be f32 on the storage's device (", to_string(k.device), ":",
                      k.device_index, ")");
  if (!ops.fold_key_bounds)
    return make_error(StatusCode::kUnsupported, "config.key_bounds = true: the ",
                      to_string(ops.device), " storage ops keep no key bounds");
  return Status();
}

// A compressed format's scales: f16 [k's first three dimensions, kv_scale_count], last dimension
// contiguous, on k's device, apart from each other and from the codes.
Status check_scales(KvFormat format, const TensorView& k, const TensorView& v, const TensorView& t,
                    const char* name) {
  if (!is_compressed(format)) {
    if (t.present())
      return make_error(StatusCode::kInvalidArgument, name, " = ", t.shape_string(),
                        ": given with format float (scales belong to compressed formats)");
    return Status();
  }
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(t, name));
  const int64_t d = format == KvFormat::kInt4 ? 2 * k.shape[3] : k.shape[3];
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(
      t, name, 4, {k.shape[0], k.shape[1], k.shape[2], kv_scale_count(format, d)}));
  if (t.dtype != DType::kF16 || t.device != k.device || t.device_index != k.device_index)
    return make_error(StatusCode::kInvalidArgument, name, " = ", to_string(t.dtype), " on ",
                      to_string(t.device), ":", t.device_index,
                      ": must be f16 on the storage's device (", to_string(k.device), ":",
                      k.device_index, ")");
  QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(t, name));
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(t, name));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(t, name, k, "k_storage"));
  return detail::check_disjoint(t, name, v, "v_storage");
}

}  // namespace

Status KvLayerStorage::create(KvPageTable* table, const TensorView& k, const TensorView& v,
                              const TensorView& key_bounds, KvLayerStorage* out,
                              const KvStorageOps* ops) {
  KvStorageViews views;
  views.k = k;
  views.v = v;
  views.key_bounds = key_bounds;
  return create(table, KvFormat::kFloat, views, out, ops);
}

Status KvLayerStorage::create(KvPageTable* table, KvFormat format, const KvStorageViews& views,
                              KvLayerStorage* out, const KvStorageOps* ops) {
  const TensorView &k = views.k, &v = views.v, &key_bounds = views.key_bounds;
  if (table == nullptr || !table->created())
    return make_error(StatusCode::kInvalidArgument, "table: ", table ? "not created" : "null",
                      " (use KvPageTable::create)");
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer, "out = null: must point to a KvLayerStorage");
  const KvTableConfig& c = table->config();
  QWEN3VL_RETURN_IF_ERROR(check_storage(c, k, "k_storage", TensorView{}, format));
  QWEN3VL_RETURN_IF_ERROR(check_storage(c, v, "v_storage", k, format));
  if (v.device != k.device || v.device_index != k.device_index)
    return make_error(StatusCode::kInvalidArgument, "v_storage.device = ", to_string(v.device),
                      ": must equal k_storage.device");
  // Appends write both: no row stored twice, and keys and values in separate memory.
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(k, "k_storage"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(v, "v_storage"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(v, "v_storage", k, "k_storage"));
  if (!ops && k.device == Device::kCPU) ops = &cpu_kv_storage_ops();
  if (!ops || ops->device != k.device)
    return make_error(StatusCode::kInvalidArgument, "ops = ", ops ? to_string(ops->device) : "none",
                      ": storage on ", to_string(k.device), " needs that device's ops",
                      k.device == Device::kCUDA ? " (cuda_kv_storage_ops())" : "");
  QWEN3VL_RETURN_IF_ERROR(check_scales(format, k, v, views.k_scales, "k_scales"));
  QWEN3VL_RETURN_IF_ERROR(check_scales(format, k, v, views.v_scales, "v_scales"));
  if (is_compressed(format))
    QWEN3VL_RETURN_IF_ERROR(
        detail::check_disjoint(views.v_scales, "v_scales", views.k_scales, "k_scales"));
  if (is_compressed(format) && !ops->write_coded)
    return make_error(StatusCode::kUnsupported, "format = ", to_string(format), ": the ",
                      to_string(ops->device), " storage ops store no compressed format");
  QWEN3VL_RETURN_IF_ERROR(check_key_bounds(
      c, k, format == KvFormat::kInt4 ? 2 * k.shape[3] : k.shape[3], key_bounds, *ops));
  if (is_compressed(format) && key_bounds.present() && !ops->fold_coded_key_bounds)
    return make_error(StatusCode::kUnsupported, "key_bounds with format ", to_string(format),
                      ": the ", to_string(ops->device),
                      " storage ops keep no bounds of compressed keys");
  if (ops->make_mirror && !table->mirror()) {
    std::unique_ptr<KvTableMirror> mirror;
    QWEN3VL_RETURN_IF_ERROR(ops->make_mirror(c, k.device_index, &mirror));
    table->set_mirror(std::move(mirror));
  }
  KvLayerStorage s;
  s.config_ = c;
  s.k_ = k;
  s.v_ = v;
  s.bounds_ = key_bounds;
  s.format_ = format;
  if (is_compressed(format)) {
    s.k_scales_ = views.k_scales;
    s.v_scales_ = views.v_scales;
  }
  s.ops_ = ops;
  *out = s;
  return Status();
}

Status KvLayerStorage::check_source(const TensorView& k, const TensorView& v, bool ragged) const {
  if (!ops_)
    return make_error(StatusCode::kInvalidArgument, "cache: not created (use KvCache::create)");
  KvAppendStep step;  // the shapes alone: any row count
  step.ragged = ragged;
  step.rows = k.rank == (ragged ? 3 : 4) ? k.shape[ragged ? 0 : 1] : 0;
  return detail::check_kv_source(
      k, v, step, {config_.batch, kv_heads(), head_dim(), k_.device, k_.device_index});
}

Status KvLayerStorage::run(const std::vector<KvRun>& runs, const TensorView& src_k,
                           const TensorView& src_v, void* stream) const {
  if (runs.empty()) return Status();
  const int64_t n = static_cast<int64_t>(runs.size());
  if (is_compressed(format_)) {
    const KvCodedStorage coded{format_, k_, v_, k_scales_, v_scales_};
    QWEN3VL_RETURN_IF_ERROR(ops_->write_coded(coded, src_k, src_v, runs.data(), n, stream));
    if (bounds_.present())
      QWEN3VL_RETURN_IF_ERROR(ops_->fold_coded_key_bounds(bounds_, coded, runs.data(), n, stream));
    return Status();
  }
  QWEN3VL_RETURN_IF_ERROR(ops_->write(k_, v_, src_k, src_v, runs.data(), n, stream));
  if (bounds_.present())
    QWEN3VL_RETURN_IF_ERROR(ops_->fold_key_bounds(bounds_, k_, runs.data(), n, stream));
  return Status();
}

Status KvLayerStorage::apply(const KvPageTable& table, const TensorView& k, const TensorView& v,
                             void* stream) const {
  if (!table.step_open())
    return make_error(StatusCode::kInvalidArgument,
                      "apply: the table has no open append step (begin_append first)");
  if (table.config() != config_)
    return make_error(StatusCode::kInvalidArgument, "apply: the table (", table.describe(),
                      ") is not the one this storage was created for");
  const KvAppendStep& s = table.step();
  if (!ops_)
    return make_error(StatusCode::kInvalidArgument, "cache: not created (use KvCache::create)");
  QWEN3VL_RETURN_IF_ERROR(detail::check_kv_source(
      k, v, s, {config_.batch, kv_heads(), head_dim(), k_.device, k_.device_index}));
  // Copy-on-write copies first: they fill the new blocks (and restart the copies' bounds).
  QWEN3VL_RETURN_IF_ERROR(run(s.copies, k_, v_, stream));
  return run(s.writes, detail::kv_source_rows(k), detail::kv_source_rows(v), stream);
}

Status KvLayerStorage::copy(const std::vector<KvRun>& runs, void* stream) const {
  if (!ops_)
    return make_error(StatusCode::kInvalidArgument, "cache: not created (use KvCache::create)");
  return run(runs, k_, v_, stream);
}

KvCacheView KvLayerStorage::view(const KvPageTable& table) const {
  KvCacheView view;
  view.layout = config_.layout;
  view.k = k_;
  view.v = v_;
  view.format = format_;
  view.k_scales = k_scales_;
  view.v_scales = v_scales_;
  const std::vector<int32_t>& lens = table.visible_lengths();
  // Views are non-const; kernels only read them.
  view.seq_lens =
      TensorView::contiguous(const_cast<int32_t*>(lens.data()), DType::kI32, {config_.batch});
  if (config_.layout == KvLayout::kPaged)
    view.block_table = TensorView::contiguous(const_cast<int32_t*>(table.block_table().data()),
                                              DType::kI32, {config_.batch, config_.max_blocks});
  view.max_seq_len = table.visible_max_length();
  return view;
}

KvCacheView KvLayerStorage::device_view(const KvPageTable& table) const {
  const KvCacheView host = view(table);
  if (k_.device == Device::kCPU || table.mirror() == nullptr) return host;
  return table.mirror()->device_view(host);
}

}  // namespace qwen3vl
