// KvCache: the config's checks, then one KvPageTable and one KvLayerStorage doing the work; each
// mutating call checks everything, then moves data, and only then commits the table.
#include "qwen3vl/kv_cache/kv_cache.hpp"

#include <utility>

namespace qwen3vl {
namespace {

// The per-layer fields here; batch, layout and capacity are the page table's checks.
Status check_config(const KvCacheConfig& c) {
  if (c.kv_heads < 1)
    return make_error(StatusCode::kInvalidArgument, "config.kv_heads = ", c.kv_heads,
                      ": must be >= 1");
  if (c.head_dim < 1 || c.head_dim > 256)
    return make_error(StatusCode::kInvalidArgument, "config.head_dim = ", c.head_dim,
                      ": allowed 1..256");
  QWEN3VL_RETURN_IF_ERROR(check_kv_format(c.format, c.head_dim, "config.format"));
  if (!is_compressed(c.format) && !is_floating(c.dtype))
    return make_error(StatusCode::kInvalidArgument, "config.dtype = ", to_string(c.dtype),
                      ": allowed f32, f16, bf16");
  return validate(table_config(c));
}

Status check_storage(const KvCacheConfig& c, const TensorView& t, const char* name) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(t, name));
  const std::vector<int64_t> want = kv_storage_shape(c);
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(t, name, 4, {want[0], want[1], want[2], want[3]}));
  if (t.dtype != kv_storage_dtype(c))
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype),
                      is_compressed(c.format) ? ": must be u8 (codes of config.format = "
                                              : ": must equal config.dtype (",
                      is_compressed(c.format) ? to_string(c.format) : to_string(c.dtype), ")");
  return detail::check_last_contiguous(t, name);
}

}  // namespace

Status KvCache::create(const KvCacheConfig& config, const TensorView& k_storage,
                       const TensorView& v_storage, KvCache* out, const KvStorageOps* ops) {
  return create(config, k_storage, v_storage, TensorView{}, out, ops);
}

Status KvCache::create(const KvCacheConfig& config, const TensorView& k_storage,
                       const TensorView& v_storage, const TensorView& key_bounds, KvCache* out,
                       const KvStorageOps* ops) {
  KvStorageViews views;
  views.k = k_storage;
  views.v = v_storage;
  views.key_bounds = key_bounds;
  return create(config, views, out, ops);
}

Status KvCache::create(const KvCacheConfig& config, const KvStorageViews& views, KvCache* out,
                       const KvStorageOps* ops) {
  const TensorView &k_storage = views.k, &v_storage = views.v, &key_bounds = views.key_bounds;
  QWEN3VL_RETURN_IF_ERROR(check_config(config));
  QWEN3VL_RETURN_IF_ERROR(check_storage(config, k_storage, "k_storage"));
  QWEN3VL_RETURN_IF_ERROR(check_storage(config, v_storage, "v_storage"));
  if (!config.key_bounds && key_bounds.present())
    return make_error(StatusCode::kInvalidArgument, "key_bounds = ", key_bounds.shape_string(),
                      ": given while config.key_bounds is false");
  if (config.key_bounds) {
    if (config.layout != KvLayout::kPaged)
      return make_error(StatusCode::kInvalidArgument,
                        "config.key_bounds = true: needs layout paged (bounds are per block), not ",
                        to_string(config.layout));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(key_bounds, "key_bounds"));
  }
  KvCache c;
  QWEN3VL_RETURN_IF_ERROR(KvPageTable::create(table_config(config), &c.table_));
  QWEN3VL_RETURN_IF_ERROR(
      KvLayerStorage::create(&c.table_, config.format, views, &c.storage_, ops));
  c.config_ = config;
  *out = std::move(c);
  return Status();
}

// One layer's whole step: the table plans it, the storage writes it, the table commits (or aborts:
// the cache is then unchanged).
Status KvCache::append(const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       void* stream) {
  QWEN3VL_RETURN_IF_ERROR(storage_.check_source(k, v, cu_seqlens.present()));
  QWEN3VL_RETURN_IF_ERROR(table_.begin_append(k.shape[cu_seqlens.present() ? 0 : 1], cu_seqlens));
  const Status st = storage_.apply(table_, k, v, stream);
  if (!st.ok()) {
    (void)table_.abort();
    return st;
  }
  return table_.commit();
}

Status KvCache::fork(int64_t src, int64_t dst, void* stream) {
  QWEN3VL_RETURN_IF_ERROR(table_.check_fork(src, dst));
  if (config_.layout ==
      KvLayout::kContiguous)  // rows first: a failed copy leaves the table as it was
    QWEN3VL_RETURN_IF_ERROR(storage_.copy({KvRun{src, 0, dst, 0, table_.length(src)}}, stream));
  return table_.fork(src, dst);
}

Status KvCache::reset(int64_t seq) { return table_.reset(seq); }

std::string KvCache::describe() const {
  const KvCacheConfig& c = config_;
  const std::string storage =
      c.format == KvFormat::kInt8      ? "int8 storage (f16 scale per token and KV head)"
      : c.format == KvFormat::kInt4    ? "int4 storage (f16 scale per 32 values)"
      : c.format == KvFormat::kFp8E4M3 ? "fp8e4m3 storage (f16 scale per token and KV head)"
      : c.dtype == DType::kF16
          ? "f16 storage (the KvCacheConfig default: ~4e-4 decode error against ~6e-7 with f32)"
          : std::string(to_string(c.dtype)) + " storage";
  std::string s =
      detail::concat("KvCache ", to_string(c.layout), ", ", storage, ", batch ", c.batch, ", Hkv ",
                     c.kv_heads, ", D ", c.head_dim, ", ", capacity(), " tokens a sequence");
  if (c.layout == KvLayout::kPaged)
    s += detail::concat(", ", c.num_blocks, " blocks of ", c.block_size);
  return s;
}

}  // namespace qwen3vl
