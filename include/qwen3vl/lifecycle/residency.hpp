// ResidencyTable: where every unit of the tiered KV store lives, and the plans that move units
// between tiers. Pure bookkeeping: no bytes are copied here. A unit is one (layer, block id) of the
// model's KvPageTable: the K/V rows of that block in that layer's KvLayerStorage.
//
// The protocol with the mover (the code that copies bytes):
//   table.plan(access, &moves)        what to fetch, prefetch and evict for the engine's schedule
//   table.begin_move(move)            the mover starts a copy: the destination slot is claimed
//   table.finish_move(unit)           the copy is done: the unit lives at the destination, the
//                                     source slot is free again
//   table.abort_move(unit)            the copy failed or was dropped: the unit stays where it was
// A unit in flight holds both slots, so no tier ever holds more units than its capacity, even
// mid-copy. Pinned units (read by a running kernel) and units in flight are never planned to move.
// A failed call changes nothing.
//
// Disk copies (keep_disk_copies): a unit read up from the disk keeps its disk slot as a clean copy
// while its bytes stay unchanged, so evicting it back to the disk moves no bytes (Move::clean): in
// a decode step nearly every block is read-only, and this halves the disk traffic of a working set
// larger than memory. mark_dirty() drops the copy when the unit's bytes change. Copies are the
// first disk slots given up when the disk is full (Move::reclaims).
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <ostream>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/lifecycle/policy.hpp"
#include "qwen3vl/lifecycle/slot_pool.hpp"
#include "qwen3vl/lifecycle/tier.hpp"

namespace qwen3vl {
namespace lifecycle {

struct UnitId {
  int32_t layer = 0;
  int32_t block = 0;  // a block id of the page table's allocator
  bool operator==(const UnitId& o) const { return layer == o.layer && block == o.block; }
  bool operator!=(const UnitId& o) const { return !(*this == o); }
};
// "(layer 3, block 17)": how errors and test output name a unit.
inline std::ostream& operator<<(std::ostream& os, UnitId u) {
  return os << "(layer " << u.layer << ", block " << u.block << ")";
}

struct ResidencyConfig {
  int32_t layers = 0;
  int32_t blocks = 0;                          // the page table's pool (BlockAllocator capacity)
  std::array<int64_t, kTierCount> capacity{};  // units per tier, indexed by Tier
  // Watermarks, as fractions of the device and host capacities: plan() evicts a tier above its
  // high mark down to its low mark, and prefetch fills the device only up to its high mark, so
  // admissions find room without waiting for an eviction.
  double device_high = 0.95, device_low = 0.85;
  double host_high = 0.95, host_low = 0.85;
  EvictionPolicy policy = EvictionPolicy::kScheduleDriven;
  bool keep_disk_copies = true;  // see the header comment
};

struct UnitState {
  bool live = false;  // admitted and not released
  Tier tier = Tier::kDevice;
  int32_t slot = -1;
  bool in_flight = false;  // a move has begun and not finished or aborted
  Tier to_tier = Tier::kDevice;
  int32_t to_slot = -1;    // claimed while in flight
  int32_t disk_copy = -1;  // a disk slot holding the unit's current bytes (never while on disk)
  int32_t pins = 0;        // running kernels reading it: never moved while > 0
  int32_t refcount = 0;    // sequences sharing it (a shared prefix is one unit)
  uint64_t checksum = 0, version = 0;  // opaque: the store fills them (record_checksum)
  int64_t last_use = 0;                // tick of the last admission or pin
};

// The engine's schedule for upcoming work: entries in order, each a layer and the blocks it reads
// (a decode step: layers 0 .. L-1, each reading every live block of the batch; several steps may
// follow). Entry 0 is the work about to run.
struct AccessEntry {
  int32_t layer = 0;
  std::vector<int32_t> blocks;
};
struct AccessPlan {
  std::vector<AccessEntry> entries;
  // Entries after the first whose units plan() prefetches; later entries still inform the
  // schedule-driven policy's next uses.
  int32_t prefetch_entries = std::numeric_limits<int32_t>::max();
  // Prefetch moves the mover can overlap with the coming work (its bandwidth); -1: no limit.
  int64_t max_prefetch_units = -1;
  // Whether a prefetch may evict a unit a later entry reads (one needed after the prefetched
  // one). True trades extra transfers for overlap; false prefetches only into free room and units
  // the plan never reads, which keeps the fixed share Belady's rule retains on a cyclic schedule
  // that does not fit (the right choice when the mover cannot overlap, or the plan covers a whole
  // cycle).
  bool prefetch_evicts_scheduled = true;
};

enum class MoveReason : uint8_t {
  kFetch,     // entry 0 reads it: the work waits for it
  kPrefetch,  // a later entry reads it: overlaps the work
  kEvict,     // frees room on a faster tier
};
const char* to_string(MoveReason why);

struct Move {
  UnitId unit;
  Tier from = Tier::kDevice;
  int32_t from_slot = -1;
  Tier to = Tier::kHost;
  int32_t to_slot = -1;
  MoveReason why = MoveReason::kEvict;
  // The index (in MovePlan::moves) of a move that must finish first because it vacates to_slot;
  // -1 when to_slot is free now. Always an earlier move, so the moves run in order never deadlock.
  int32_t after = -1;
  // to_slot is the unit's own disk copy: the unit's bytes are there already and none move.
  bool clean = false;
  // to_slot is another unit's disk copy, given up by begin_move (that unit keeps its own tier).
  bool reclaims = false;
  UnitId reclaimed;
};

struct MovePlan {
  std::vector<Move> moves;  // fetches (each after its eviction), prefetches, watermark evictions
  std::vector<UnitId> waiting;  // units entry 0 reads that are already in flight
  int64_t fetches = 0, prefetches = 0, evictions = 0;
};

class ResidencyTable {
 public:
  // Errors (kInvalidArgument, naming the field): layers or blocks < 1, layers * blocks above
  // 2^31 - 1, a device capacity < 1, a negative or over-2^31 - 1 capacity, watermarks outside
  // 0 < low <= high <= 1.
  [[nodiscard]] static Status create(const ResidencyConfig& config, ResidencyTable* out);

  // A new unit (refcount 1), placed on the first tier with a free slot: device, host, disk.
  // kOutOfMemory when every tier is full; kInvalidArgument for a unit out of range or live.
  [[nodiscard]] Status admit(UnitId unit, Tier* placed = nullptr);
  // One more sequence shares the unit (a forked prefix).
  [[nodiscard]] Status share(UnitId unit);
  // One sharer fewer; at zero the unit's slot is free again. Dropping the last reference of a
  // pinned unit or one in flight is refused: its slot is still being read or written.
  [[nodiscard]] Status release(UnitId unit);

  // A kernel reads the unit now: it must be on the device and not in flight.
  [[nodiscard]] Status pin(UnitId unit);
  [[nodiscard]] Status unpin(UnitId unit);

  // The mover's reports. begin_move checks the move against the table as it is now (a plan may
  // be stale): the unit live at move.from / from_slot, not pinned, not in flight, and to_slot
  // free on a different tier.
  [[nodiscard]] Status begin_move(const Move& move);
  [[nodiscard]] Status finish_move(UnitId unit);
  [[nodiscard]] Status abort_move(UnitId unit);
  // The store's integrity stamp of the unit's bytes, kept with it across moves.
  [[nodiscard]] Status record_checksum(UnitId unit, uint64_t checksum, uint64_t version);
  // The unit's bytes are about to change: its disk copy (if any) is stale and its slot free again.
  // Refused for a unit in flight (its bytes are being copied).
  [[nodiscard]] Status mark_dirty(UnitId unit);

  // The moves that make entry 0's units device-resident (fetch), then prefetch the next entries
  // (up to plan.prefetch_entries and plan.max_prefetch_units, the device's high watermark, and
  // only by evicting units needed later than the prefetched one), then bring the device and host
  // down to their low watermarks when above the high ones. Evictions go to the host while it is
  // under its high watermark, else to disk; victims are chosen by the config's policy. Does not
  // change the table: begin_move claims what the plan names.
  // Errors: kInvalidArgument for an entry naming a layer or block out of range or not live;
  // kOutOfMemory when entry 0's units cannot all be on the device at once (the need, the device
  // capacity and the units pinned or in flight named), or when no tier has room for an eviction.
  [[nodiscard]] Status plan(const AccessPlan& access, MovePlan* out) const;

  // Observers.
  const ResidencyConfig& config() const { return config_; }
  bool contains(UnitId unit) const { return in_range(unit); }
  // The unit's state (live == false for a unit never admitted or released); nullptr out of range.
  const UnitState* state(UnitId unit) const {
    return in_range(unit) ? &units_[index(unit)] : nullptr;
  }
  const SlotPool& slots(Tier tier) const { return pools_[static_cast<size_t>(tier)]; }
  int64_t live_units() const { return live_; }
  // Checks every invariant (each live unit holds exactly its slots, pools agree with the units,
  // no count below zero); kInternal naming the first broken one. For tests and debug builds.
  [[nodiscard]] Status check_invariants() const;

 private:
  bool in_range(UnitId u) const {
    return u.layer >= 0 && u.layer < config_.layers && u.block >= 0 && u.block < config_.blocks;
  }
  size_t index(UnitId u) const {
    return static_cast<size_t>(u.layer) * static_cast<size_t>(config_.blocks) +
           static_cast<size_t>(u.block);
  }
  UnitId unit_at(size_t i) const {
    return UnitId{static_cast<int32_t>(i / static_cast<size_t>(config_.blocks)),
                  static_cast<int32_t>(i % static_cast<size_t>(config_.blocks))};
  }
  Status check_live(UnitId unit, const char* what) const;
  Status end_move(UnitId unit, bool finished, const char* what);
  SlotPool& pool(Tier tier) { return pools_[static_cast<size_t>(tier)]; }

  ResidencyConfig config_;
  std::vector<UnitState> units_;  // [layer * blocks + block]
  std::array<SlotPool, kTierCount> pools_;
  int64_t live_ = 0;
  int64_t tick_ = 0;
};

}  // namespace lifecycle
}  // namespace qwen3vl
