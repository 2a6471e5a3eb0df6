// TieredKvStore: the K/V of every layer of a model's KvPageTable, kept in three tiers: a compute
// arena the decode kernels read (a budget of blocks for all layers together), a host store and a
// disk store (FileStore). The ResidencyTable decides what lives where from the engine's schedule;
// this class moves the bytes and hands each layer a KvCacheView over the arena.
//
// One decode step of an L-layer model:
//   table.begin_append(1);  store.sync(table);
//   for each layer l:  store.apply(table, l, k, v);          // the step's rows into the arena
//                      store.acquire(table, l, &view);       // every block layer l reads, resident
//                      decode.run(plan, {q, view, out}, ws); store.release(l);
//   table.commit();
// Fetch mode: acquire() moves the blocks a layer reads into the arena before it returns, so the
// kernel reads the same bytes in the same order as over an all-resident cache: outputs are
// bitwise identical. A layer whose blocks cannot all be in the arena at once is refused with
// kOutOfMemory (admission control), never thrashed. The next layers' blocks are prefetched at each
// acquire() (prefetch_layers) while the arena has room.
//
// The mover (async_mover): one worker thread owned by the store copies every unit's bytes (arena
// <-> host <-> disk); it is the only thread touching the stores. The residency table stays on the
// caller's thread: it plans, begins each move and hands it to the worker, and applies finished
// moves when it drains completions (every call, and wait_idle()). acquire() waits only for the
// blocks its layer reads; prefetches go on while the caller decodes. A move whose destination slot
// an eviction vacates starts when that eviction has finished. With async_mover = false the moves
// are copied on the calling thread as they are begun (the synchronous baseline).
//
// The arena is host memory for the CPU decode kernels (create_host_arena), or one the caller
// makes for another device and hands to create() (create_cuda_arena); paged tables only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/kv_cache_view.hpp"
#include "qwen3vl/kv_cache/page_table.hpp"
#include "qwen3vl/lifecycle/arena.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"
#include "qwen3vl/lifecycle/residency.hpp"

namespace qwen3vl::lifecycle {

struct TieredKvConfig {
  int32_t layers = 0;
  int64_t kv_heads = 0, head_dim = 0;
  DType dtype = DType::kF16;
  int64_t arena_blocks = 0;  // blocks (of one layer each) the compute arena holds; >= 1 (0 with
                             // an arena given to create(): its units)
  int64_t host_blocks = 0;   // blocks in the host store (0: no host tier)
  int64_t disk_blocks = 0;   // blocks in the disk store (0: no disk tier)
  std::string disk_path;     // the slot file, created (truncated) when disk_blocks > 0
  FileStoreOptions disk;
  EvictionPolicy policy = EvictionPolicy::kScheduleDriven;
  // A block read up from the disk keeps its disk slot while unchanged, so its eviction writes
  // nothing (ResidencyConfig::keep_disk_copies).
  bool keep_disk_copies = true;
  // Layers after the acquired one whose blocks acquire() prefetches into free arena room.
  int32_t prefetch_layers = 2;
  // Moves copied by the store's worker thread (true) or on the calling thread (false). Off by
  // default: with one worker copying one block at a time, and in-flight prefetches holding slots
  // the planner then routes around, it measured slower than the synchronous mover where copies
  // dominate the step (the tiered routine, 8 layers, 2-core VM: 286-311 against 193-200 ms).
  bool async_mover = false;
};

// What moved, for the benchmark's telemetry. Units are blocks of one layer (unit_bytes() each).
struct TieredKvStats {
  std::array<std::array<int64_t, kTierCount>, kTierCount> units_moved{};  // [from][to]
  int64_t fetched = 0;     // blocks a layer waited for (not in the arena when acquired)
  int64_t prefetched = 0;  // blocks moved ahead of their layer
  int64_t hits = 0;        // blocks already in the arena when their layer was acquired
  int64_t evicted = 0;
  int64_t clean_drops = 0;  // evictions into the unit's own disk copy: no bytes written
  int64_t failed = 0;       // copies that failed (the unit stayed where it was)
  double stall_ms = 0;      // the caller's time waiting for moves (synchronous: copying them)
  double busy_ms = 0;       // the mover's time copying
  std::vector<double> layer_stall_ms;  // per layer: stall_ms accrued in its acquire() calls
  // The share of the copying hidden behind the caller's work: 1 - stall / busy (0 when idle).
  double overlap() const { return busy_ms > 0 ? 1.0 - stall_ms / busy_ms : 0.0; }
  // Blocks a layer read that were in the arena already, of all it read.
  double hit_rate() const {
    return hits + fetched > 0 ? static_cast<double>(hits) / static_cast<double>(hits + fetched)
                              : 0.0;
  }
  int64_t bytes_moved(size_t unit_bytes) const;
};

class TieredKvStore {
 public:
  // The table's geometry (paged layout, block size, blocks) and the config's. `arena`: the
  // compute tier (its shape must match); null makes a host arena of config.arena_blocks. A device
  // arena needs the synchronous mover. Errors name the field.
  [[nodiscard]] static Status create(const KvPageTable& table, const TieredKvConfig& config,
                                     std::unique_ptr<TieredKvStore>* out,
                                     std::unique_ptr<Arena> arena = nullptr);
  ~TieredKvStore();
  TieredKvStore(const TieredKvStore&) = delete;
  TieredKvStore& operator=(const TieredKvStore&) = delete;

  // Follows the table's allocator: blocks freed since the last sync (a reset sequence, a dropped
  // fork) release their units in every layer. Once per step, before the layers.
  [[nodiscard]] Status sync(const KvPageTable& table);
  // Writes layer `layer`'s share of the table's open step (copy-on-write copies, then the rows of
  // k, v shaped as KvLayerStorage::apply takes them), the blocks it writes made resident first.
  [[nodiscard]] Status apply(const KvPageTable& table, int32_t layer, const TensorView& k,
                             const TensorView& v);
  // Every block layer `layer` reads (the table's visible lengths) resident in the arena and pinned;
  // *view reads them (host seq_lens and a block table of arena slots, valid until release()).
  // Waits for those blocks only; the prefetches it starts continue after it returns. A failed copy
  // of a block it reads (this call's fetch or an earlier prefetch) is its error (kIoError,
  // kDataCorrupt from the store); the block stays in its store and a later call retries.
  [[nodiscard]] Status acquire(const KvPageTable& table, int32_t layer, KvCacheView* view);
  // Unpins what acquire(layer) pinned.
  [[nodiscard]] Status release(int32_t layer);
  // Moves every unpinned block out of the arena (to the host while it has room, else to disk):
  // the "evict everything" schedule of the tests, and a way to free the arena between requests.
  [[nodiscard]] Status evict_all();
  // Waits until no move is queued or in flight and applies every completion.
  [[nodiscard]] Status wait_idle();

  size_t unit_bytes() const;  // one layer's K and V of one block
  const TieredKvStats& stats() const;
  const ResidencyTable& residency() const;
  std::string describe() const;  // tiers, capacities, the disk store's engine

  struct Impl;

 private:
  explicit TieredKvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwen3vl::lifecycle
