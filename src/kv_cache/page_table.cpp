// KvPageTable: validation, the append step (capacity, block allocation, copy-on-write planning,
// the run lists every layer writes), commit / abort, fork and reset. Each call checks everything
// before it changes anything.
#include "qwen3vl/kv_cache/page_table.hpp"

#include <algorithm>
#include <atomic>

namespace qwen3vl {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Versions are unique across tables, so a mirror never mistakes another table's state for its own.
uint64_t next_version() {
  static std::atomic<uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

Status validate(const KvTableConfig& c) {
  if (c.batch < 1 || c.batch > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument, "config.batch = ", c.batch, ": allowed 1..",
                      INT32_MAX);
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

Status KvPageTable::create(const KvTableConfig& config, KvPageTable* out) {
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer, "out = null: must point to a KvPageTable");
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  KvPageTable t;
  t.config_ = config;
  t.created_ = true;
  t.lengths_.assign(static_cast<size_t>(config.batch), 0);
  t.deltas_.assign(static_cast<size_t>(config.batch), 0);
  if (config.layout == KvLayout::kPaged) {
    t.table_.assign(static_cast<size_t>(config.batch * config.max_blocks), -1);
    t.allocator_ = BlockAllocator(static_cast<int32_t>(config.num_blocks));
  }
  t.changed();
  *out = std::move(t);
  return Status();
}

void KvPageTable::changed() { version_ = next_version(); }

void KvPageTable::update_max() {
  max_length_ = 0;
  for (int32_t len : lengths_) max_length_ = std::max<int64_t>(max_length_, len);
}

Status KvPageTable::check_seq(int64_t seq, const char* name) const {
  if (!created_)
    return make_error(StatusCode::kInvalidArgument, "cache: not created (use KvCache::create)");
  if (seq < 0 || seq >= config_.batch)
    return make_error(StatusCode::kInvalidArgument, name, " = ", seq, ": allowed 0..",
                      config_.batch - 1);
  return Status();
}

Status KvPageTable::check_closed(const char* what) const {
  if (open_)
    return make_error(StatusCode::kInvalidArgument, what,
                      ": an append step is open: commit() or abort() it first");
  return Status();
}

Status KvPageTable::begin_append(int64_t rows, const TensorView& cu_seqlens) {
  QWEN3VL_RETURN_IF_ERROR(check_seq(0, "cache"));
  QWEN3VL_RETURN_IF_ERROR(check_closed("begin_append"));
  if (rows < 0) return make_error(StatusCode::kInvalidArgument, "rows = ", rows, ": must be >= 0");
  const bool ragged = cu_seqlens.present();
  const int32_t* cu = nullptr;
  if (ragged) {
    if (cu_seqlens.device != Device::kCPU)
      return make_error(StatusCode::kInvalidArgument,
                        "cu_seqlens.device = ", to_string(cu_seqlens.device),
                        ": must be host memory (cpu)");
    int64_t seqs = 0, longest = 0;
    QWEN3VL_RETURN_IF_ERROR(
        detail::check_cu_seqlens(cu_seqlens, "cu_seqlens", rows, &seqs, &longest));
    if (seqs != config_.batch)
      return make_error(StatusCode::kShapeMismatch, "cu_seqlens.shape[0] = ", seqs + 1,
                        ": must be batch + 1 = ", config_.batch + 1);
    cu = cu_seqlens.ptr<const int32_t>();
  }
  const int64_t cs = ragged ? cu_seqlens.stride[0] : 0;
  auto added = [&](int64_t b) -> int64_t { return ragged ? cu[(b + 1) * cs] - cu[b * cs] : rows; };
  auto src_start = [&](int64_t b) -> detail::KvSlot {
    return ragged ? detail::KvSlot{0, cu[b * cs]} : detail::KvSlot{b, 0};
  };

  // Capacity, then the blocks this step needs (new ones and copy-on-write copies). A shared
  // partial last block is copied unless every other user copies it first within this step (then
  // the last one writes it in place).
  KvAppendStep& s = step_;
  const bool paged = config_.layout == KvLayout::kPaged;
  const int64_t bs = config_.block_size;
  int64_t blocks_needed = 0;
  s.cow_.assign(static_cast<size_t>(config_.batch), 0);
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
    auto it =
        std::find_if(leaving.begin(), leaving.end(), [&](auto& e) { return e.first == last; });
    if (it == leaving.end()) it = leaving.insert(leaving.end(), {last, 0});
    if (allocator_.ref_count(last) - it->second > 1) {
      s.cow_[static_cast<size_t>(b)] = 1;
      ++it->second;
      ++blocks_needed;
    }
  }
  if (blocks_needed > allocator_.free_count())
    return make_error(StatusCode::kOutOfMemory, "append needs ", blocks_needed,
                      " free blocks: only ", allocator_.free_count(), " of ", allocator_.capacity(),
                      " are free");

  // Take the blocks and fill the table, remembering how to undo it.
  s.fresh_.resize(static_cast<size_t>(blocks_needed));
  QWEN3VL_RETURN_IF_ERROR(
      allocator_.allocate(static_cast<int32_t>(blocks_needed), s.fresh_.data()));
  s.undo_.clear();
  s.copied_from_.clear();
  s.copies.clear();
  s.writes.clear();
  s.decode_plans_.clear();
  size_t next = 0;
  if (paged) {
    for (int64_t b = 0; b < config_.batch; ++b) {
      const int64_t len = length(b), n = added(b);
      if (n == 0) continue;
      const int64_t first = ceil_div(len, bs), last = ceil_div(len + n, bs);
      if (s.cow_[static_cast<size_t>(b)]) {
        int32_t& slot = table_at(b, len / bs);
        s.undo_.emplace_back(b * config_.max_blocks + len / bs, slot);
        s.copied_from_.push_back(slot);
        s.copies.push_back(KvRun{slot, 0, s.fresh_[next], 0, len % bs});
        slot = s.fresh_[next++];
      }
      for (int64_t i = first; i < last; ++i) {
        s.undo_.emplace_back(b * config_.max_blocks + i, table_at(b, i));
        table_at(b, i) = s.fresh_[next++];
      }
    }
  }
  const detail::PagedIndexer pager{table_.data(), config_.max_blocks, 1, bs};
  s.lengths = lengths_;
  s.position_deltas = deltas_;
  s.max_length = 0;
  for (int64_t b = 0; b < config_.batch; ++b) {
    const int64_t len = length(b), n = added(b);
    const detail::KvSlot src = src_start(b);
    for (int64_t i = 0; i < n;) {
      const int64_t j = len + i;
      const int64_t count = paged ? pager.run(j, n - i) : n - i;
      const detail::KvSlot dst = paged ? pager.slot(b, j) : detail::KvSlot{b, j};
      s.writes.push_back(KvRun{src.major, src.minor + i, dst.major, dst.minor, count});
      i += count;
    }
    s.lengths[static_cast<size_t>(b)] = static_cast<int32_t>(len + n);
    s.max_length = std::max(s.max_length, len + n);
  }
  s.ragged = ragged;
  s.rows = rows;
  open_ = true;
  changed();
  return Status();
}

Status KvPageTable::commit() {
  if (!open_) return make_error(StatusCode::kInvalidArgument, "commit: no append step is open");
  for (int32_t id : step_.copied_from_)
    QWEN3VL_RETURN_IF_ERROR(allocator_.release(id));  // still shared
  lengths_.swap(step_.lengths);
  deltas_.swap(step_.position_deltas);
  max_length_ = step_.max_length;
  open_ = false;
  step_.decode_plans_.clear();
  // What decode reads is unchanged (it read the step's lengths): the version stays, so a mirror
  // synced during the step needs no upload.
  return Status();
}

Status KvPageTable::remember_step_decode_plan(const DecodePlan& plan) const {
  if (!open_)
    return make_error(StatusCode::kInvalidArgument,
                      "remember_step_decode_plan: no append step is open (begin_append first)");
  step_.decode_plans_.push_back(plan);
  return Status();
}

Status KvPageTable::abort() {
  if (!open_) return make_error(StatusCode::kInvalidArgument, "abort: no append step is open");
  for (auto it = step_.undo_.rbegin(); it != step_.undo_.rend(); ++it)
    table_[static_cast<size_t>(it->first)] = it->second;
  for (int32_t id : step_.fresh_) QWEN3VL_RETURN_IF_ERROR(allocator_.release(id));
  open_ = false;
  step_.decode_plans_.clear();
  changed();
  return Status();
}

Status KvPageTable::check_fork(int64_t src, int64_t dst) const {
  QWEN3VL_RETURN_IF_ERROR(check_seq(src, "fork src"));
  QWEN3VL_RETURN_IF_ERROR(check_seq(dst, "fork dst"));
  QWEN3VL_RETURN_IF_ERROR(check_closed("fork"));
  if (src == dst)
    return make_error(StatusCode::kInvalidArgument, "fork dst = ", dst, ": must differ from src");
  if (length(dst) != 0)
    return make_error(StatusCode::kInvalidArgument, "fork dst = ", dst, " holds ", length(dst),
                      " tokens: it must be empty (reset it first)");
  if (config_.layout == KvLayout::kPaged) {
    const int64_t blocks = ceil_div(length(src), config_.block_size);
    for (int64_t i = 0; i < blocks; ++i)
      if (table_at(src, i) >= 0)  // -1: evicted outside a window
        QWEN3VL_RETURN_IF_ERROR(allocator_.check_in_use(table_at(src, i), "fork"));
  }
  return Status();
}

Status KvPageTable::fork(int64_t src, int64_t dst, std::vector<KvRun>* copies) {
  QWEN3VL_RETURN_IF_ERROR(check_fork(src, dst));
  const int64_t len = length(src);
  if (copies) copies->clear();
  if (config_.layout == KvLayout::kPaged) {
    for (int64_t i = 0; i < ceil_div(len, config_.block_size); ++i) {
      const int32_t id = table_at(src, i);
      if (id >= 0) QWEN3VL_RETURN_IF_ERROR(allocator_.share(id));
      table_at(dst, i) = id;
    }
  } else if (copies) {
    copies->push_back(KvRun{src, 0, dst, 0, len});
  }
  lengths_[static_cast<size_t>(dst)] = static_cast<int32_t>(len);
  deltas_[static_cast<size_t>(dst)] = deltas_[static_cast<size_t>(src)];
  update_max();
  changed();
  return Status();
}

Status KvPageTable::reset(int64_t seq) {
  QWEN3VL_RETURN_IF_ERROR(check_seq(seq, "reset seq"));
  QWEN3VL_RETURN_IF_ERROR(check_closed("reset"));
  if (config_.layout == KvLayout::kPaged) {
    const int64_t blocks = ceil_div(length(seq), config_.block_size);
    for (int64_t i = 0; i < blocks; ++i)
      if (table_at(seq, i) >= 0)  // -1: evicted outside a window
        QWEN3VL_RETURN_IF_ERROR(allocator_.check_in_use(table_at(seq, i), "reset"));
    for (int64_t i = 0; i < blocks; ++i) {
      if (table_at(seq, i) >= 0) QWEN3VL_RETURN_IF_ERROR(allocator_.release(table_at(seq, i)));
      table_at(seq, i) = -1;
    }
  }
  lengths_[static_cast<size_t>(seq)] = 0;
  deltas_[static_cast<size_t>(seq)] = 0;
  update_max();
  changed();
  return Status();
}

Status KvPageTable::evict_outside_window(int64_t window, int64_t sinks, int64_t* released) {
  QWEN3VL_RETURN_IF_ERROR(check_closed("evict_outside_window"));
  if (window < 1 || sinks < 0)
    return make_error(StatusCode::kInvalidArgument, "window, sinks = ", window, ", ", sinks,
                      ": allowed window >= 1, sinks >= 0");
  int64_t count = 0;
  if (config_.layout == KvLayout::kPaged) {
    const int64_t bs = config_.block_size;
    for (int64_t b = 0; b < config_.batch; ++b) {
      const int64_t keep_from = length(b) + 1 - window;  // the next token's first key
      for (int64_t i = ceil_div(sinks, bs); (i + 1) * bs <= keep_from; ++i) {
        const int32_t id = table_at(b, i);
        if (id < 0) continue;
        QWEN3VL_RETURN_IF_ERROR(allocator_.release(id));
        table_at(b, i) = -1;
        ++count;
      }
    }
  }
  if (count > 0) changed();
  if (released) *released = count;
  return Status();
}

Status KvPageTable::set_position_delta(int64_t seq, int64_t delta) {
  QWEN3VL_RETURN_IF_ERROR(check_seq(seq, "set_position_delta seq"));
  if (delta < INT32_MIN || delta > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument, "position delta = ", delta,
                      ": allowed the int32 range");
  (open_ ? step_.position_deltas : deltas_)[static_cast<size_t>(seq)] = static_cast<int32_t>(delta);
  return Status();
}

std::string KvPageTable::describe() const {
  const KvTableConfig& c = config_;
  std::string s = detail::concat("KvPageTable ", to_string(c.layout), ", batch ", c.batch, ", ",
                                 capacity(), " tokens a sequence");
  if (c.layout == KvLayout::kPaged)
    s += detail::concat(", ", c.num_blocks, " blocks of ", c.block_size, " (",
                        allocator_.free_count(), " free)");
  return s;
}

}  // namespace qwen3vl
