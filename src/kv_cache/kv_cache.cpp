// KvCache metadata: validation, block planning (allocation, copy-on-write, sharing) and the run
// lists that the storage device's ops execute. Each mutating call checks everything, then moves
// data, and only then commits lengths and reference counts, undoing its table changes on failure.
#include "qwen3vl/kv_cache/kv_cache.hpp"

#include <algorithm>
#include <utility>

namespace qwen3vl {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Status check_config(const KvCacheConfig& c) {
  if (c.batch < 1 || c.batch > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument, "config.batch = ", c.batch, ": allowed 1..",
                      INT32_MAX);
  if (c.kv_heads < 1)
    return make_error(StatusCode::kInvalidArgument, "config.kv_heads = ", c.kv_heads,
                      ": must be >= 1");
  if (c.head_dim < 1 || c.head_dim > 256)
    return make_error(StatusCode::kInvalidArgument, "config.head_dim = ", c.head_dim,
                      ": allowed 1..256");
  if (!is_floating(c.dtype))
    return make_error(StatusCode::kInvalidArgument, "config.dtype = ", to_string(c.dtype),
                      ": allowed f32, f16, bf16");
  if (c.layout == KvLayout::kContiguous) {
    if (c.max_len < 0 || c.max_len > INT32_MAX)
      return make_error(StatusCode::kInvalidArgument, "config.max_len = ", c.max_len,
                        ": allowed 0..", INT32_MAX);
    return Status();
  }
  if (c.block_size < 16 || c.block_size % 16 != 0)
    return make_error(StatusCode::kInvalidArgument, "config.block_size = ", c.block_size,
                      ": must be a positive multiple of 16");
  if (c.num_blocks < 1 || c.num_blocks > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument, "config.num_blocks = ", c.num_blocks,
                      ": allowed 1..", INT32_MAX);
  if (c.max_blocks < 1 || c.max_blocks > INT32_MAX / c.block_size)  // no int64 overflow
    return make_error(StatusCode::kInvalidArgument, "config.max_blocks = ", c.max_blocks,
                      ": must be >= 1 with max_blocks * block_size <= ", INT32_MAX);
  return Status();
}

Status check_storage(const KvCacheConfig& c, const TensorView& t, const char* name) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(t, name));
  const std::vector<int64_t> want = kv_storage_shape(c);
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(t, name, 4, {want[0], want[1], want[2], want[3]}));
  if (t.dtype != c.dtype)
    return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t.dtype),
                      ": must equal config.dtype (", to_string(c.dtype), ")");
  return detail::check_last_contiguous(t, name);
}

// Key bounds are present exactly when the config asks for them, shaped, typed and placed as
// kv_key_bounds_shape says, and the storage's ops can maintain them.
Status check_key_bounds(const KvCacheConfig& c, const TensorView& k_storage, const TensorView& b,
                        const KvStorageOps& ops) {
  if (!c.key_bounds) {
    if (b.present())
      return make_error(StatusCode::kInvalidArgument, "key_bounds = ", b.shape_string(),
                        ": given while config.key_bounds is false");
    return Status();
  }
  if (c.layout != KvLayout::kPaged)
    return make_error(StatusCode::kInvalidArgument,
                      "config.key_bounds = true: needs layout paged (bounds are per block), not ",
                      to_string(c.layout));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(b, "key_bounds"));
  const std::vector<int64_t> want = kv_key_bounds_shape(c);
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(b, "key_bounds", 4, {want[0], want[1], want[2], want[3]}));
  const TensorView packed = TensorView::contiguous(b.data, DType::kF32, {want[0], want[1], want[2], want[3]});
  for (int d = 0; d < 4; ++d)
    if (b.stride[d] != packed.stride[d])
      return make_error(StatusCode::kBadStride, "key_bounds.stride[", d, "] = ", b.stride[d],
                        ": must be contiguous (", packed.stride[d], ")");
  if (b.dtype != DType::kF32 || b.device != k_storage.device ||
      b.device_index != k_storage.device_index)
    return make_error(StatusCode::kInvalidArgument, "key_bounds = ", to_string(b.dtype), " on ",
                      to_string(b.device), ":", b.device_index, ": must be f32 on the storage's device (",
                      to_string(k_storage.device), ":", k_storage.device_index, ")");
  if (!ops.fold_key_bounds)
    return make_error(StatusCode::kUnsupported, "config.key_bounds = true: the ",
                      to_string(ops.device), " storage ops keep no key bounds");
  return Status();
}

// A rank-3 packed view [T, H, D] seen as rank 4 [1, T, H, D], so runs address every source alike.
TensorView as_rank4(const TensorView& t) {
  if (t.rank == 4) return t;
  TensorView r = t;
  r.rank = 4;
  for (int d = 3; d >= 1; --d) {
    r.shape[d] = t.shape[d - 1];
    r.stride[d] = t.stride[d - 1];
  }
  r.shape[0] = 1;
  r.stride[0] = 0;
  return r;
}

}  // namespace

Status KvCache::create(const KvCacheConfig& config, const TensorView& k_storage,
                       const TensorView& v_storage, KvCache* out, const KvStorageOps* ops) {
  return create(config, k_storage, v_storage, TensorView{}, out, ops);
}

Status KvCache::create(const KvCacheConfig& config, const TensorView& k_storage,
                       const TensorView& v_storage, const TensorView& key_bounds, KvCache* out,
                       const KvStorageOps* ops) {
  QWEN3VL_RETURN_IF_ERROR(check_config(config));
  QWEN3VL_RETURN_IF_ERROR(check_storage(config, k_storage, "k_storage"));
  QWEN3VL_RETURN_IF_ERROR(check_storage(config, v_storage, "v_storage"));
  if (v_storage.device != k_storage.device || v_storage.device_index != k_storage.device_index)
    return make_error(StatusCode::kInvalidArgument, "v_storage.device = ",
                      to_string(v_storage.device), ": must equal k_storage.device");
  // The cache writes both: no row stored twice, and keys and values in separate memory.
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(k_storage, "k_storage"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(v_storage, "v_storage"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(v_storage, "v_storage", k_storage, "k_storage"));
  if (!ops && k_storage.device == Device::kCPU) ops = &cpu_kv_storage_ops();
  if (!ops || ops->device != k_storage.device)
    return make_error(StatusCode::kInvalidArgument, "ops = ", ops ? to_string(ops->device) : "none",
                      ": storage on ", to_string(k_storage.device), " needs that device's ops",
                      k_storage.device == Device::kCUDA ? " (cuda_kv_storage_ops())" : "");
  QWEN3VL_RETURN_IF_ERROR(check_key_bounds(config, k_storage, key_bounds, *ops));
  KvCache c;
  c.bounds_ = key_bounds;
  c.config_ = config;
  c.k_ = k_storage;
  c.v_ = v_storage;
  c.ops_ = ops;
  c.lengths_.assign(static_cast<size_t>(config.batch), 0);
  c.deltas_.assign(static_cast<size_t>(config.batch), 0);
  if (config.layout == KvLayout::kPaged) {
    c.table_.assign(static_cast<size_t>(config.batch * config.max_blocks), -1);
    c.allocator_ = BlockAllocator(static_cast<int32_t>(config.num_blocks));
  }
  *out = std::move(c);
  return Status();
}

Status KvCache::check_seq(int64_t seq, const char* name) const {
  if (!ops_) return make_error(StatusCode::kInvalidArgument, "cache: not created (use KvCache::create)");
  if (seq < 0 || seq >= config_.batch)
    return make_error(StatusCode::kInvalidArgument, name, " = ", seq, ": allowed 0..",
                      config_.batch - 1);
  return Status();
}

Status KvCache::write_runs(const TensorView& src_k, const TensorView& src_v, void* stream) {
  if (runs_.empty()) return Status();
  return ops_->write(k_, v_, src_k, src_v, runs_.data(), static_cast<int64_t>(runs_.size()), stream);
}

Status KvCache::fold_bounds(void* stream) {
  if (!bounds_.present() || runs_.empty()) return Status();
  return ops_->fold_key_bounds(bounds_, k_, runs_.data(), static_cast<int64_t>(runs_.size()), stream);
}

Status KvCache::append(const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       void* stream) {
  QWEN3VL_RETURN_IF_ERROR(check_seq(0, "cache"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(k, "k"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(v, "v"));
  const bool ragged = cu_seqlens.present();
  const int rank = ragged ? 3 : 4;
  if (k.rank != rank)
    return make_error(StatusCode::kShapeMismatch, "k.rank = ", k.rank, " (shape ", k.shape_string(),
                      "): expected ", rank, ragged ? " ([tokens, Hkv, D]) with cu_seqlens"
                                                   : " ([batch, tokens, Hkv, D])");
  const int64_t hkv = config_.kv_heads, d = config_.head_dim;
  if (ragged) {
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(k, "k", 3, {k.shape[0], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(v, "v", 3, {k.shape[0], hkv, d}));
  } else {
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(k, "k", 4, {config_.batch, k.shape[1], hkv, d}));
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(v, "v", 4, {config_.batch, k.shape[1], hkv, d}));
  }
  for (const TensorView* t : {&k, &v}) {
    const char* name = t == &k ? "k" : "v";
    if (!is_floating(t->dtype))
      return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t->dtype),
                        ": allowed f32, f16, bf16");
    if (t->device != k_.device || t->device_index != k_.device_index)
      return make_error(StatusCode::kInvalidArgument, name, ".device = ", to_string(t->device), ":",
                        t->device_index, ": must equal the storage device (",
                        to_string(k_.device), ":", k_.device_index, ")");
    QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(*t, name));
  }
  const int32_t* cu = nullptr;
  if (ragged) {
    if (cu_seqlens.device != Device::kCPU)
      return make_error(StatusCode::kInvalidArgument, "cu_seqlens.device = ",
                        to_string(cu_seqlens.device), ": must be host memory (cpu)");
    int64_t seqs = 0, longest = 0;
    QWEN3VL_RETURN_IF_ERROR(
        detail::check_cu_seqlens(cu_seqlens, "cu_seqlens", k.shape[0], &seqs, &longest));
    if (seqs != config_.batch)
      return make_error(StatusCode::kShapeMismatch, "cu_seqlens.shape[0] = ", seqs + 1,
                        ": must be batch + 1 = ", config_.batch + 1);
    cu = cu_seqlens.ptr<const int32_t>();
  }
  auto added = [&](int64_t b) -> int64_t {
    return ragged ? cu[(b + 1) * cu_seqlens.stride[0]] - cu[b * cu_seqlens.stride[0]] : k.shape[1];
  };
  auto src_start = [&](int64_t b) -> detail::KvSlot {
    return ragged ? detail::KvSlot{0, cu[b * cu_seqlens.stride[0]]} : detail::KvSlot{b, 0};
  };

  // Capacity, then the blocks this append needs (new ones and copy-on-write copies).
  // A shared partial last block is copied unless every other user copies it first within this
  // append (then the last one writes it in place).
  const bool paged = config_.layout == KvLayout::kPaged;
  const int64_t bs = config_.block_size;
  int64_t blocks_needed = 0;
  std::vector<char> cow(static_cast<size_t>(config_.batch), 0);
  std::vector<std::pair<int32_t, int32_t>> leaving;  // (shared block, users copying it away)
  for (int64_t b = 0; b < config_.batch; ++b) {
    const int64_t len = length(b), n = added(b);
    if (len + n > capacity())
      return make_error(StatusCode::kInvalidArgument, "append to sequence ", b, ": length ", len,
                        " + ", n, " new tokens = ", len + n, ": exceeds the capacity ", capacity(),
                        paged ? " (max_blocks * block_size)" : " (max_len)");
    if (!paged || n == 0) continue;
    blocks_needed += ceil_div(len + n, bs) - ceil_div(len, bs);
    if (len % bs == 0) continue;
    const int32_t last = table_at(b, len / bs);
    if (allocator_.ref_count(last) < 2) continue;  // private: written in place
    auto it = std::find_if(leaving.begin(), leaving.end(), [&](auto& e) { return e.first == last; });
    if (it == leaving.end()) it = leaving.insert(leaving.end(), {last, 0});
    if (allocator_.ref_count(last) - it->second > 1) {
      cow[static_cast<size_t>(b)] = 1;
      ++it->second;
      ++blocks_needed;
    }
  }
  if (blocks_needed > allocator_.free_count())
    return make_error(StatusCode::kOutOfMemory, "append needs ", blocks_needed,
                      " free blocks: only ", allocator_.free_count(), " of ",
                      allocator_.capacity(), " are free");

  // Take the blocks and fill the table, remembering how to undo it.
  std::vector<int32_t> fresh(static_cast<size_t>(blocks_needed));
  QWEN3VL_RETURN_IF_ERROR(allocator_.allocate(static_cast<int32_t>(blocks_needed), fresh.data()));
  std::vector<std::pair<int64_t, int32_t>> undo;  // (table index, old id)
  std::vector<int32_t> copied_from;               // shared blocks replaced by private copies
  size_t next = 0;
  runs_.clear();
  if (paged) {
    for (int64_t b = 0; b < config_.batch; ++b) {
      const int64_t len = length(b), n = added(b);
      if (n == 0) continue;
      const int64_t first = ceil_div(len, bs), last = ceil_div(len + n, bs);
      if (cow[static_cast<size_t>(b)]) {
        int32_t& slot = table_at(b, len / bs);
        undo.emplace_back(b * config_.max_blocks + len / bs, slot);
        copied_from.push_back(slot);
        runs_.push_back(KvRun{slot, 0, fresh[next], 0, len % bs});
        slot = fresh[next++];
      }
      for (int64_t i = first; i < last; ++i) {
        undo.emplace_back(b * config_.max_blocks + i, table_at(b, i));
        table_at(b, i) = fresh[next++];
      }
    }
  }
  auto rollback = [&](Status failed) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) table_[static_cast<size_t>(it->first)] = it->second;
    for (int32_t id : fresh) (void)allocator_.release(id);
    return failed;
  };
  Status st = write_runs(k_, v_, stream);  // copy-on-write copies first: they fill the new blocks
  if (st.ok()) st = fold_bounds(stream);     // and restart the copies' bounds from their rows
  if (!st.ok()) return rollback(st);

  runs_.clear();
  const detail::PagedIndexer pager{table_.data(), config_.max_blocks, 1, bs};
  for (int64_t b = 0; b < config_.batch; ++b) {
    const int64_t len = length(b), n = added(b);
    const detail::KvSlot src = src_start(b);
    for (int64_t i = 0; i < n;) {
      const int64_t j = len + i;
      const int64_t count = paged ? pager.run(j, n - i) : n - i;
      const detail::KvSlot dst = paged ? pager.slot(b, j) : detail::KvSlot{b, j};
      runs_.push_back(KvRun{src.major, src.minor + i, dst.major, dst.minor, count});
      i += count;
    }
  }
  st = write_runs(as_rank4(k), as_rank4(v), stream);
  if (st.ok()) st = fold_bounds(stream);
  if (!st.ok()) return rollback(st);

  for (int32_t id : copied_from) QWEN3VL_RETURN_IF_ERROR(allocator_.release(id));  // still shared
  for (int64_t b = 0; b < config_.batch; ++b)
    lengths_[static_cast<size_t>(b)] += static_cast<int32_t>(added(b));
  return Status();
}

Status KvCache::fork(int64_t src, int64_t dst, void* stream) {
  QWEN3VL_RETURN_IF_ERROR(check_seq(src, "fork src"));
  QWEN3VL_RETURN_IF_ERROR(check_seq(dst, "fork dst"));
  if (src == dst)
    return make_error(StatusCode::kInvalidArgument, "fork dst = ", dst, ": must differ from src");
  if (length(dst) != 0)
    return make_error(StatusCode::kInvalidArgument, "fork dst = ", dst, " holds ", length(dst),
                      " tokens: it must be empty (reset it first)");
  const int64_t len = length(src);
  if (config_.layout == KvLayout::kPaged) {
    const int64_t blocks = ceil_div(len, config_.block_size);
    for (int64_t i = 0; i < blocks; ++i) {
      QWEN3VL_RETURN_IF_ERROR(allocator_.check_in_use(table_at(src, i), "fork"));
    }
    for (int64_t i = 0; i < blocks; ++i) {
      const int32_t id = table_at(src, i);
      QWEN3VL_RETURN_IF_ERROR(allocator_.share(id));
      table_at(dst, i) = id;
    }
  } else {
    runs_.assign(1, KvRun{src, 0, dst, 0, len});
    QWEN3VL_RETURN_IF_ERROR(write_runs(k_, v_, stream));
  }
  lengths_[static_cast<size_t>(dst)] = static_cast<int32_t>(len);
  deltas_[static_cast<size_t>(dst)] = deltas_[static_cast<size_t>(src)];
  return Status();
}

Status KvCache::reset(int64_t seq) {
  QWEN3VL_RETURN_IF_ERROR(check_seq(seq, "reset seq"));
  if (config_.layout == KvLayout::kPaged) {
    const int64_t blocks = ceil_div(length(seq), config_.block_size);
    for (int64_t i = 0; i < blocks; ++i)
      QWEN3VL_RETURN_IF_ERROR(allocator_.check_in_use(table_at(seq, i), "reset"));
    for (int64_t i = 0; i < blocks; ++i) {
      QWEN3VL_RETURN_IF_ERROR(allocator_.release(table_at(seq, i)));
      table_at(seq, i) = -1;
    }
  }
  lengths_[static_cast<size_t>(seq)] = 0;
  deltas_[static_cast<size_t>(seq)] = 0;
  return Status();
}

std::string KvCache::describe() const {
  const KvCacheConfig& c = config_;
  const std::string storage =
      c.dtype == DType::kF16
          ? "f16 storage (the KvCacheConfig default: ~4e-4 decode error against ~6e-7 with f32)"
          : std::string(to_string(c.dtype)) + " storage";
  std::string s = detail::concat("KvCache ", to_string(c.layout), ", ", storage, ", batch ",
                                 c.batch, ", Hkv ", c.kv_heads, ", D ", c.head_dim, ", ",
                                 capacity(), " tokens a sequence");
  if (c.layout == KvLayout::kPaged)
    s += detail::concat(", ", c.num_blocks, " blocks of ", c.block_size);
  return s;
}

Status KvCache::set_position_delta(int64_t seq, int64_t delta) {
  QWEN3VL_RETURN_IF_ERROR(check_seq(seq, "set_position_delta seq"));
  if (delta < INT32_MIN || delta > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument, "position delta = ", delta,
                      ": allowed the int32 range");
  deltas_[static_cast<size_t>(seq)] = static_cast<int32_t>(delta);
  return Status();
}

}  // namespace qwen3vl
