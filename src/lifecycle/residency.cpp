// ResidencyTable's bookkeeping: creation, admission, sharing, pins and the mover's reports.
// plan() is in policy.cpp.
#include "qwen3vl/lifecycle/residency.hpp"

#include <cstddef>
#include <utility>

namespace qwen3vl {
namespace lifecycle {

namespace {

constexpr int64_t kMaxSlots = std::numeric_limits<int32_t>::max();

Status check_watermarks(const char* low_name, double low, const char* high_name, double high) {
  // Written so that NaN fails too.
  if (!(low > 0.0 && low <= high && high <= 1.0))
    return make_error(StatusCode::kInvalidArgument, "residency config: ", low_name, " = ", low,
                      ", ", high_name, " = ", high, ": allowed 0 < low <= high <= 1");
  return Status();
}

}  // namespace

const char* to_string(MoveReason why) {
  constexpr const char* kNames[] = {"fetch", "prefetch", "evict"};
  const auto i = static_cast<unsigned>(why);
  return i < 3 ? kNames[i] : "unknown move reason";
}

Status ResidencyTable::create(const ResidencyConfig& config, ResidencyTable* out) {
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer,
                      "residency table out = null: must point to a table");
  if (config.layers < 1)
    return make_error(StatusCode::kInvalidArgument, "residency config: layers = ", config.layers,
                      ": must be >= 1");
  if (config.blocks < 1)
    return make_error(StatusCode::kInvalidArgument, "residency config: blocks = ", config.blocks,
                      ": must be >= 1");
  if (static_cast<int64_t>(config.layers) * config.blocks > kMaxSlots)
    return make_error(StatusCode::kInvalidArgument,
                      "residency config: layers * blocks = ", config.layers, " * ", config.blocks,
                      ": allowed up to ", kMaxSlots);
  for (int t = 0; t < kTierCount; ++t) {
    int64_t c = config.capacity[static_cast<size_t>(t)];
    if (c < 0 || c > kMaxSlots)
      return make_error(StatusCode::kInvalidArgument, "residency config: capacity[",
                        to_string(static_cast<Tier>(t)), "] = ", c, ": allowed 0..", kMaxSlots);
  }
  // Host and disk may be absent (0); a table with no device room could never serve a kernel.
  if (config.capacity[static_cast<size_t>(Tier::kDevice)] < 1)
    return make_error(StatusCode::kInvalidArgument, "residency config: capacity[device] = ",
                      config.capacity[static_cast<size_t>(Tier::kDevice)], ": must be >= 1");
  QWEN3VL_RETURN_IF_ERROR(
      check_watermarks("device_low", config.device_low, "device_high", config.device_high));
  QWEN3VL_RETURN_IF_ERROR(
      check_watermarks("host_low", config.host_low, "host_high", config.host_high));
  if (config.policy != EvictionPolicy::kLru && config.policy != EvictionPolicy::kScheduleDriven)
    return make_error(StatusCode::kInvalidArgument,
                      "residency config: policy = ", static_cast<int>(config.policy),
                      ": allowed lru, schedule-driven");

  ResidencyTable t;
  t.config_ = config;
  t.units_.assign(static_cast<size_t>(config.layers) * static_cast<size_t>(config.blocks),
                  UnitState{});
  for (int i = 0; i < kTierCount; ++i)
    t.pools_[static_cast<size_t>(i)] =
        SlotPool(static_cast<int32_t>(config.capacity[static_cast<size_t>(i)]));
  *out = std::move(t);
  return Status();
}

Status ResidencyTable::check_live(UnitId unit, const char* what) const {
  if (units_.empty())
    return make_error(StatusCode::kInvalidArgument, what, ": residency table not created");
  if (!in_range(unit))
    return make_error(StatusCode::kInvalidArgument, what, ": unit ", unit, ": allowed layer 0..",
                      config_.layers - 1, ", block 0..", config_.blocks - 1);
  if (!units_[index(unit)].live)
    return make_error(StatusCode::kInvalidArgument, what, ": unit ", unit,
                      " is not admitted (or was released)");
  return Status();
}

Status ResidencyTable::admit(UnitId unit, Tier* placed) {
  if (units_.empty())
    return make_error(StatusCode::kInvalidArgument, "admit: residency table not created");
  if (!in_range(unit))
    return make_error(StatusCode::kInvalidArgument, "admit: unit ", unit, ": allowed layer 0..",
                      config_.layers - 1, ", block 0..", config_.blocks - 1);
  UnitState& s = units_[index(unit)];
  if (s.live)
    return make_error(StatusCode::kInvalidArgument, "admit: unit ", unit,
                      " is already admitted: share() adds a sharer");
  for (int t = 0; t < kTierCount; ++t) {
    int32_t slot = pools_[static_cast<size_t>(t)].take_any();
    if (slot < 0) continue;
    s = UnitState{};
    s.live = true;
    s.tier = static_cast<Tier>(t);
    s.slot = slot;
    s.refcount = 1;
    s.last_use = ++tick_;
    ++live_;
    if (placed != nullptr) *placed = s.tier;
    return Status();
  }
  return make_error(StatusCode::kOutOfMemory, "admit: unit ", unit, ": every tier is full (device ",
                    slots(Tier::kDevice).capacity(), ", host ", slots(Tier::kHost).capacity(),
                    ", disk ", slots(Tier::kDisk).capacity(), " units)");
}

Status ResidencyTable::share(UnitId unit) {
  QWEN3VL_RETURN_IF_ERROR(check_live(unit, "share"));
  ++units_[index(unit)].refcount;
  return Status();
}

Status ResidencyTable::release(UnitId unit) {
  QWEN3VL_RETURN_IF_ERROR(check_live(unit, "release"));
  UnitState& s = units_[index(unit)];
  if (s.refcount == 1 && (s.pins > 0 || s.in_flight))
    return make_error(StatusCode::kInvalidArgument, "release: unit ", unit, " (last reference) is ",
                      s.pins > 0 ? "pinned" : "in flight",
                      ": unpin it or finish / abort its move first");
  if (--s.refcount > 0) return Status();
  if (!pool(s.tier).release(s.slot))
    return make_error(StatusCode::kInternal, "release: unit ", unit, ": ", to_string(s.tier),
                      " slot ", s.slot, " was already free");
  if (s.disk_copy >= 0 && !pool(Tier::kDisk).release(s.disk_copy))
    return make_error(StatusCode::kInternal, "release: unit ", unit, ": disk copy slot ",
                      s.disk_copy, " was already free");
  s = UnitState{};
  --live_;
  return Status();
}

Status ResidencyTable::pin(UnitId unit) {
  QWEN3VL_RETURN_IF_ERROR(check_live(unit, "pin"));
  UnitState& s = units_[index(unit)];
  if (s.tier != Tier::kDevice || s.in_flight)
    return make_error(StatusCode::kInvalidArgument, "pin: unit ", unit, " is on the ",
                      to_string(s.tier), s.in_flight ? " and in flight" : "",
                      ": only a device-resident unit with no move in flight can be pinned");
  ++s.pins;
  s.last_use = ++tick_;
  return Status();
}

Status ResidencyTable::unpin(UnitId unit) {
  QWEN3VL_RETURN_IF_ERROR(check_live(unit, "unpin"));
  UnitState& s = units_[index(unit)];
  if (s.pins == 0)
    return make_error(StatusCode::kInvalidArgument, "unpin: unit ", unit,
                      " pin count = 0: unpin must follow a pin");
  --s.pins;
  return Status();
}

Status ResidencyTable::begin_move(const Move& move) {
  QWEN3VL_RETURN_IF_ERROR(check_live(move.unit, "begin_move"));
  UnitState& s = units_[index(move.unit)];
  if (s.in_flight)
    return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit,
                      " is already in flight to the ", to_string(s.to_tier));
  if (s.pins > 0)
    return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit,
                      " is pinned (pin count ", s.pins, "): pinned units never move");
  if (s.tier != move.from || s.slot != move.from_slot)
    return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit, " from ",
                      to_string(move.from), " slot ", move.from_slot, ": the unit is at ",
                      to_string(s.tier), " slot ", s.slot, " (a stale plan?)");
  if (static_cast<int>(move.to) >= kTierCount)
    return make_error(StatusCode::kInvalidArgument, "begin_move: to = ", static_cast<int>(move.to),
                      ": allowed device, host, disk");
  if (move.to == move.from)
    return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit, " to ",
                      to_string(move.to), ": must be a different tier than its own");
  // A unit with a disk copy goes to the disk only into that copy, so it never holds two.
  const bool into_copy = move.to == Tier::kDisk && s.disk_copy >= 0;
  if (into_copy && move.to_slot != s.disk_copy)
    return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit,
                      " to disk slot ", move.to_slot, ": the unit has a disk copy in slot ",
                      s.disk_copy, " and goes there");
  if (move.clean != into_copy)
    return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit,
                      " clean = ", move.clean, ": the unit ", into_copy ? "has" : "has no",
                      " disk copy to go to (a stale plan?)");
  if (move.reclaims) {
    if (into_copy || move.to != Tier::kDisk || !check_live(move.reclaimed, "reclaimed").ok() ||
        move.reclaimed == move.unit)
      return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit,
                        " reclaims the disk copy of ", move.reclaimed,
                        ": allowed only for a move to the disk, from another live unit");
    UnitState& owner = units_[index(move.reclaimed)];
    if (owner.disk_copy != move.to_slot || owner.in_flight)
      return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit,
                        " reclaims disk slot ", move.to_slot, " from ", move.reclaimed,
                        ", whose disk copy is slot ", owner.disk_copy,
                        owner.in_flight ? " and which is in flight" : "", " (a stale plan?)");
    owner.disk_copy = -1;  // the slot stays taken: it passes to this move
  } else if (!into_copy && !pool(move.to).take(move.to_slot))
    return make_error(StatusCode::kInvalidArgument, "begin_move: unit ", move.unit, " to ",
                      to_string(move.to), " slot ", move.to_slot,
                      slots(move.to).valid(move.to_slot) ? ": the slot is taken (finish the move "
                                                           "that vacates it first)"
                                                         : ": out of range",
                      " (", slots(move.to).capacity(), " slots)");
  s.in_flight = true;
  s.to_tier = move.to;
  s.to_slot = move.to_slot;
  return Status();
}

Status ResidencyTable::finish_move(UnitId unit) { return end_move(unit, true, "finish_move"); }

Status ResidencyTable::abort_move(UnitId unit) { return end_move(unit, false, "abort_move"); }

// A move in flight ends: finished, the unit moves to the destination and frees its source slot;
// aborted, it stays and frees the destination it claimed.
Status ResidencyTable::end_move(UnitId unit, bool finished, const char* what) {
  QWEN3VL_RETURN_IF_ERROR(check_live(unit, what));
  UnitState& s = units_[index(unit)];
  if (!s.in_flight)
    return make_error(StatusCode::kInvalidArgument, what, ": unit ", unit,
                      " has no move in flight");
  const bool into_copy = s.to_tier == Tier::kDisk && s.to_slot == s.disk_copy;
  // Finished: the source slot is freed, unless it is the disk and becomes the unit's copy.
  // Aborted: the destination is freed, unless it is the copy, which stays.
  const bool keep_source = finished && s.tier == Tier::kDisk && config_.keep_disk_copies;
  const Tier freed_tier = finished ? s.tier : s.to_tier;
  const int32_t freed_slot = finished ? s.slot : s.to_slot;
  if (!keep_source && !(into_copy && !finished) && !pool(freed_tier).release(freed_slot))
    return make_error(StatusCode::kInternal, what, ": unit ", unit, ": ", to_string(freed_tier),
                      " slot ", freed_slot, " was already free");
  if (finished) {
    if (into_copy) s.disk_copy = -1;
    if (keep_source) s.disk_copy = s.slot;
    s.tier = s.to_tier;
    s.slot = s.to_slot;
  }
  s.in_flight = false;
  s.to_slot = -1;
  return Status();
}

Status ResidencyTable::record_checksum(UnitId unit, uint64_t checksum, uint64_t version) {
  QWEN3VL_RETURN_IF_ERROR(check_live(unit, "record_checksum"));
  UnitState& s = units_[index(unit)];
  s.checksum = checksum;
  s.version = version;
  return Status();
}

Status ResidencyTable::mark_dirty(UnitId unit) {
  QWEN3VL_RETURN_IF_ERROR(check_live(unit, "mark_dirty"));
  UnitState& s = units_[index(unit)];
  if (s.in_flight)
    return make_error(StatusCode::kInvalidArgument, "mark_dirty: unit ", unit,
                      " is in flight: its bytes must not change mid-copy");
  if (s.disk_copy < 0) return Status();
  if (!pool(Tier::kDisk).release(s.disk_copy))
    return make_error(StatusCode::kInternal, "mark_dirty: unit ", unit, ": disk copy slot ",
                      s.disk_copy, " was already free");
  s.disk_copy = -1;
  return Status();
}

Status ResidencyTable::check_invariants() const {
  std::array<std::vector<char>, kTierCount> held;
  for (int t = 0; t < kTierCount; ++t)
    held[static_cast<size_t>(t)].assign(
        static_cast<size_t>(pools_[static_cast<size_t>(t)].capacity()), 0);
  int64_t live = 0;
  auto hold = [&](UnitId u, Tier tier, int32_t slot) -> Status {
    const SlotPool& p = slots(tier);
    if (!p.valid(slot))
      return make_error(StatusCode::kInternal, "unit ", u, " holds ", to_string(tier), " slot ",
                        slot, ": out of range");
    if (p.is_free(slot))
      return make_error(StatusCode::kInternal, "unit ", u, " holds ", to_string(tier), " slot ",
                        slot, ", which the pool lists as free");
    char& h = held[static_cast<size_t>(tier)][static_cast<size_t>(slot)];
    if (h)
      return make_error(StatusCode::kInternal, to_string(tier), " slot ", slot,
                        " is held twice (second holder ", u, ")");
    h = 1;
    return Status();
  };
  for (size_t i = 0; i < units_.size(); ++i) {
    const UnitState& s = units_[i];
    UnitId u = unit_at(i);
    if (!s.live) {
      if (s.refcount != 0 || s.pins != 0 || s.in_flight)
        return make_error(StatusCode::kInternal, "unit ", u, " is not live but has refcount ",
                          s.refcount, ", pins ", s.pins, ", in flight ", s.in_flight);
      continue;
    }
    ++live;
    if (s.refcount < 1 || s.pins < 0)
      return make_error(StatusCode::kInternal, "unit ", u, ": refcount ", s.refcount, ", pins ",
                        s.pins);
    if (s.pins > 0 && (s.tier != Tier::kDevice || s.in_flight))
      return make_error(StatusCode::kInternal, "unit ", u,
                        " is pinned off the device or in flight");
    QWEN3VL_RETURN_IF_ERROR(hold(u, s.tier, s.slot));
    if (s.disk_copy >= 0) {
      if (s.tier == Tier::kDisk)
        return make_error(StatusCode::kInternal, "unit ", u, " is on the disk with a disk copy");
      QWEN3VL_RETURN_IF_ERROR(hold(u, Tier::kDisk, s.disk_copy));
    }
    const bool into_copy = s.to_tier == Tier::kDisk && s.to_slot == s.disk_copy;
    if (s.in_flight && !into_copy) QWEN3VL_RETURN_IF_ERROR(hold(u, s.to_tier, s.to_slot));
  }
  if (live != live_)
    return make_error(StatusCode::kInternal, "live units counted ", live, ", recorded ", live_);
  for (int t = 0; t < kTierCount; ++t) {
    int64_t n = 0;
    for (char h : held[static_cast<size_t>(t)]) n += h;
    if (n != pools_[static_cast<size_t>(t)].used_count())
      return make_error(StatusCode::kInternal, to_string(static_cast<Tier>(t)), ": ", n,
                        " slots held by units, ", pools_[static_cast<size_t>(t)].used_count(),
                        " taken in the pool (a leaked slot)");
  }
  return Status();
}

}  // namespace lifecycle
}  // namespace qwen3vl
