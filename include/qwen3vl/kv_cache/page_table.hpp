// KvPageTable: the metadata one model's attention layers share: sequence lengths, M-RoPE position
// deltas, the block table and its refcounted BlockAllocator. Every layer keeps its own K/V
// (KvLayerStorage, layer_storage.hpp) laid out by this one table, so a model of N layers keeps one
// table, not N identical ones.
//
// Appending is a step that every layer writes:
//   table.begin_append(rows, cu_seqlens)   validates counts, allocates blocks, lists the runs
//   storage[i].apply(table, k_i, v_i, ...)  each layer writes its new rows (and CoW copies)
//   table.commit()  /  table.abort()        publishes the new lengths, or releases what the step
//                                           took (the table is then as before begin_append)
// While a step is open the table shows the lengths after it (what decode reads); length() and
// position_delta() keep the committed values. A failed call changes nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qwen3vl/kv_cache/block_allocator.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache_view.hpp"

namespace qwen3vl {

struct KvTableConfig {
  KvLayout layout = KvLayout::kPaged;
  int64_t batch = 1;        // sequences
  int64_t max_len = 0;      // contiguous: tokens per sequence
  int64_t num_blocks = 0;   // paged: blocks in the pool
  int64_t block_size = 16;  // paged: tokens per block, a multiple of 16
  int64_t max_blocks = 0;   // paged: block-table columns (blocks one sequence may hold)
  bool operator==(const KvTableConfig& o) const {
    return layout == o.layout && batch == o.batch && max_len == o.max_len &&
           num_blocks == o.num_blocks && block_size == o.block_size && max_blocks == o.max_blocks;
  }
  bool operator!=(const KvTableConfig& o) const { return !(*this == o); }
};

// One run of token rows to copy: `count` rows from source (src_major, src_minor + i) to storage
// (dst_major, dst_minor + i), all heads of each row. Sources are rank-4 [major, minor, Hkv, D].
struct KvRun {
  int64_t src_major, src_minor, dst_major, dst_minor, count;
};

// An open append step: what every layer's storage must write, and the state commit() publishes.
struct KvAppendStep {
  bool ragged = false;  // sources [rows, Hkv, D] split by cu_seqlens, else [batch, rows, Hkv, D]
  int64_t rows = 0;     // ragged: all source rows; else new tokens per sequence
  std::vector<KvRun> copies;     // copy-on-write: storage rows to fresh blocks, before the writes
  std::vector<KvRun> writes;     // source rows to storage rows
  std::vector<int32_t> lengths;  // every sequence's length after the step
  std::vector<int32_t> position_deltas;  // committed with the lengths (set_position_delta)
  int64_t max_length = 0;                // the longest of `lengths`

 private:
  friend class KvPageTable;
  // A memo of derived values (see KvPageTable::step_decode_plans()): mutable so that the
  // layers' const queries (workspace_size, supports) fill it as forward() does.
  mutable std::vector<DecodePlan> decode_plans_;
  std::vector<std::pair<int64_t, int32_t>> undo_;  // (table index, old id)
  std::vector<int32_t> fresh_;                     // blocks the step took
  std::vector<int32_t> copied_from_;               // shared blocks left at commit
  std::vector<char> cow_;
};

class KvPageTable;

// A device copy of a table's lengths and block table (CudaKvMetadata on CUDA), which decode on
// that device reads. sync() uploads only when the table changed since the last upload.
class KvTableMirror {
 public:
  virtual ~KvTableMirror() = default;
  virtual Status sync(const KvPageTable& table, void* stream) = 0;
  // `view` with seq_lens and block_table pointing at the device copies.
  virtual KvCacheView device_view(KvCacheView view) const = 0;
  // Uploads made so far (each is one host-to-device copy).
  virtual uint64_t uploads() const = 0;
};

// The table config's checks (batch, layout, capacity): what KvPageTable::create refuses.
Status validate(const KvTableConfig& config);

class KvPageTable {
 public:
  KvPageTable() = default;
  KvPageTable(KvPageTable&&) noexcept = default;
  KvPageTable& operator=(KvPageTable&&) noexcept = default;

  static Status create(const KvTableConfig& config, KvPageTable* out);

  // Opens a step appending to the end of every sequence: `rows` new tokens each (sources
  // [batch, rows, Hkv, D]), or with cu_seqlens (host i32 [batch + 1], ragged counts, 0 allowed)
  // `rows` source rows in all ([rows, Hkv, D]). Checks capacity and free blocks, allocates, plans
  // copy-on-write copies of shared partial blocks. One step at a time.
  Status begin_append(int64_t rows, const TensorView& cu_seqlens = {});
  bool step_open() const { return open_; }
  const KvAppendStep& step() const { return step_; }
  // Decode plans made during the open step: the layers of a step share shapes, so the first
  // layer's plan serves every later one (DecodeAttention::check_plan decides whether it fits).
  // A memo of values derived from the step, not table state: remembering one changes nothing
  // the table stores, so it is const. Dropped when the step ends.
  const std::vector<DecodePlan>& step_decode_plans() const { return step_.decode_plans_; }
  Status remember_step_decode_plan(const DecodePlan& plan) const;
  // Publishes the open step's lengths and deltas, and drops the shared blocks it copied away from.
  Status commit();
  // Releases the open step's blocks and restores the table (nothing committed is lost).
  Status abort();

  // Makes empty sequence `dst` a copy of `src`. Paged: shares src's blocks. Contiguous: the rows
  // must be copied in every layer's storage: `copies` receives that run (apply it with
  // KvLayerStorage::copy before the next decode). check_fork is fork's validation alone.
  Status check_fork(int64_t src, int64_t dst) const;
  Status fork(int64_t src, int64_t dst, std::vector<KvRun>* copies = nullptr);
  // Empties sequence `seq`, releasing its blocks.
  Status reset(int64_t seq);
  // Sliding-window eviction (append attention with AppendParams::window / sinks): releases, in
  // every sequence, the blocks no later token sees: those wholly before length + 1 - window,
  // except the blocks holding one of the first `sinks` tokens. Their table entries become -1,
  // which only append attention with that window reads around (decode and validate(KvCacheView)
  // refuse them); fork shares and reset releases the blocks that remain. Paged tables only (a
  // contiguous one keeps its rows: nothing to release). `released`: the blocks returned to the
  // pool.
  Status evict_outside_window(int64_t window, int64_t sinks, int64_t* released = nullptr);
  // During a step: the delta commit() publishes; else the committed one (see KvCache).
  Status set_position_delta(int64_t seq, int64_t delta);

  const KvTableConfig& config() const { return config_; }
  bool created() const { return created_; }
  int64_t capacity() const {
    return config_.layout == KvLayout::kPaged ? config_.max_blocks * config_.block_size
                                              : config_.max_len;
  }
  // Committed length; 0 outside [0, batch).
  int64_t length(int64_t seq) const {
    return seq >= 0 && seq < static_cast<int64_t>(lengths_.size())
               ? lengths_[static_cast<size_t>(seq)]
               : 0;
  }
  const std::vector<int32_t>& lengths() const { return lengths_; }
  int32_t position_delta(int64_t seq) const {
    return seq >= 0 && seq < static_cast<int64_t>(deltas_.size())
               ? deltas_[static_cast<size_t>(seq)]
               : 0;
  }
  // What decode reads: the open step's lengths, else the committed ones.
  const std::vector<int32_t>& visible_lengths() const { return open_ ? step_.lengths : lengths_; }
  int64_t visible_max_length() const { return open_ ? step_.max_length : max_length_; }
  // Row-major [batch, max_blocks]; -1 where no block is assigned (paged only, else empty).
  const std::vector<int32_t>& block_table() const { return table_; }
  const BlockAllocator& allocator() const { return allocator_; }
  // Changes whenever what decode reads changes (never reused, across tables too): a mirror
  // uploads when the version it holds is not this one.
  uint64_t version() const { return version_; }

  // The device copy decode on another device reads (attached by the first layer storage of that
  // device, or by hand). sync_mirror() uploads it on `stream` if the table changed.
  void set_mirror(std::unique_ptr<KvTableMirror> mirror) { mirror_ = std::move(mirror); }
  KvTableMirror* mirror() const { return mirror_.get(); }
  Status sync_mirror(void* stream) const {
    if (!mirror_)
      return make_error(StatusCode::kInvalidArgument,
                        "page table: no device mirror (create a layer storage on the device, or "
                        "attach one with set_mirror)");
    return mirror_->sync(*this, stream);
  }

  std::string describe() const;

 private:
  int32_t& table_at(int64_t b, int64_t i) {
    return table_[static_cast<size_t>(b * config_.max_blocks + i)];
  }
  int32_t table_at(int64_t b, int64_t i) const {
    return table_[static_cast<size_t>(b * config_.max_blocks + i)];
  }
  Status check_seq(int64_t seq, const char* name) const;
  Status check_closed(const char* what) const;
  void changed();  // a new version
  void update_max();

  KvTableConfig config_;
  bool created_ = false;
  bool open_ = false;
  std::vector<int32_t> lengths_;
  std::vector<int32_t> deltas_;
  std::vector<int32_t> table_;
  int64_t max_length_ = 0;
  BlockAllocator allocator_;
  KvAppendStep step_;
  uint64_t version_ = 0;
  std::unique_ptr<KvTableMirror> mirror_;
};

}  // namespace qwen3vl
