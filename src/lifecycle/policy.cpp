// The placement planner (ResidencyTable::plan) and the policies' ranking. plan() works on a copy
// of the free lists (SimPool) so that it can chain moves: an eviction vacates a device slot and
// the fetch that reuses it names the eviction in Move::after.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "qwen3vl/lifecycle/policy.hpp"
#include "qwen3vl/lifecycle/residency.hpp"

namespace qwen3vl {
namespace lifecycle {

EvictionRank eviction_rank(EvictionPolicy policy, int64_t next_use, int64_t last_use) {
  switch (policy) {
    case EvictionPolicy::kLru: return EvictionRank{-last_use, 0};
    case EvictionPolicy::kScheduleDriven: return EvictionRank{next_use, -last_use};
  }
  return EvictionRank{};
}

namespace {

// One tier's slots as they will be once the planned moves finish: slots free now, slots a planned
// move vacates (usable only after that move), and (the disk) other units' clean copies, given up
// last: the copies there are now, then those this plan's reads from the disk leave (usable after
// that read). `used` counts the copies.
struct SimPool {
  struct Copy {
    int32_t slot;
    size_t unit;
    int32_t after;  // the move that makes it a copy, or -1
  };
  std::vector<int32_t> free;                         // taken from the back, as SlotPool does
  std::vector<std::pair<int32_t, int32_t>> vacated;  // (slot, index of the move vacating it)
  std::vector<Copy> copies, new_copies;
  int64_t used = 0;
  int64_t capacity = 0;

  explicit SimPool(const SlotPool& p)
      : free(p.free_slots()), used(p.used_count()), capacity(p.capacity()) {}
  // Copies of units the plan moves are not given up (the unit may be going into its copy).
  void drop_planned_copies(const std::vector<char>& planned) {
    while (!copies.empty() && planned[copies.back().unit]) copies.pop_back();
  }
  bool has_room(const std::vector<char>& planned) {
    drop_planned_copies(planned);
    return !free.empty() || !vacated.empty() || !copies.empty() || !new_copies.empty();
  }
  // Free slots first, so that moves wait on one another only when they must; a copy given up
  // last. Returns the unit whose copy was taken, or -1.
  int64_t take(int32_t* slot, int32_t* after, const std::vector<char>& planned) {
    drop_planned_copies(planned);
    int64_t owner = -1;
    *after = -1;
    if (!free.empty()) {
      *slot = free.back();
      free.pop_back();
    } else if (!vacated.empty()) {
      *slot = vacated.back().first;
      *after = vacated.back().second;
      vacated.pop_back();
    } else {
      std::vector<Copy>& from = copies.empty() ? new_copies : copies;
      *slot = from.back().slot;
      *after = from.back().after;
      owner = static_cast<int64_t>(from.back().unit);
      from.pop_back();
      --used;  // the copy's slot changes hands
    }
    ++used;
    return owner;
  }
  void vacate(int32_t slot, int32_t move_index) {
    vacated.emplace_back(slot, move_index);
    --used;
  }
};

int64_t units_at(double fraction, int64_t capacity) {
  return static_cast<int64_t>(std::floor(fraction * static_cast<double>(capacity)));
}

// Eviction candidates of one tier, best victim first, consumed in order. Candidates needed no
// later than entry j are passed over for good: the planner asks with j never decreasing. A heap,
// not a sort: a plan takes a few victims out of every unit on the tier.
class VictimQueue {
 public:
  VictimQueue(std::vector<size_t> units, const std::vector<int64_t>& next_use,
              const std::vector<EvictionRank>& rank)
      : units_(std::move(units)), next_use_(next_use), worse_(Worse{&rank}) {
    std::make_heap(units_.begin(), units_.end(), worse_);
  }
  // The next candidate not yet planned whose next use is after entry j; -1 if none. With
  // never_used_only, -1 also when that candidate is read by some entry (it stays queued).
  int64_t next(int64_t j, const std::vector<char>& planned, bool never_used_only = false) {
    while (!units_.empty()) {
      const size_t u = units_.front();
      if (!planned[u] && next_use_[u] > j) {
        if (never_used_only && next_use_[u] != kNeverUsed) return -1;
        pop();
        return static_cast<int64_t>(u);
      }
      pop();
    }
    return -1;
  }

 private:
  // Heap order: the best victim (highest rank, then the lower unit index) on top.
  struct Worse {
    const std::vector<EvictionRank>* rank;
    bool operator()(size_t a, size_t b) const {
      const EvictionRank& ra = (*rank)[a];
      const EvictionRank& rb = (*rank)[b];
      if (ra < rb) return true;
      if (rb < ra) return false;
      return a > b;
    }
  };
  void pop() {
    std::pop_heap(units_.begin(), units_.end(), worse_);
    units_.pop_back();
  }
  std::vector<size_t> units_;
  const std::vector<int64_t>& next_use_;
  Worse worse_;
};

}  // namespace

Status ResidencyTable::plan(const AccessPlan& access, MovePlan* out) const {
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer, "plan: out = null: must point to a MovePlan");
  if (units_.empty())
    return make_error(StatusCode::kInvalidArgument, "plan: residency table not created");
  if (access.prefetch_entries < 0)
    return make_error(StatusCode::kInvalidArgument,
                      "plan: prefetch_entries = ", access.prefetch_entries, ": must be >= 0");
  if (access.max_prefetch_units < -1)
    return make_error(StatusCode::kInvalidArgument,
                      "plan: max_prefetch_units = ", access.max_prefetch_units,
                      ": allowed -1 (no limit) or >= 0");
  const size_t n = units_.size();
  std::vector<int64_t> next_use(n, kNeverUsed);
  for (size_t j = 0; j < access.entries.size(); ++j) {
    const AccessEntry& e = access.entries[j];
    if (e.layer < 0 || e.layer >= config_.layers)
      return make_error(StatusCode::kInvalidArgument, "plan: entries[", j, "].layer = ", e.layer,
                        ": allowed 0..", config_.layers - 1);
    for (int32_t b : e.blocks) {
      UnitId u{e.layer, b};
      if (b < 0 || b >= config_.blocks)
        return make_error(StatusCode::kInvalidArgument, "plan: entries[", j, "] (layer ", e.layer,
                          ") block = ", b, ": allowed 0..", config_.blocks - 1);
      if (!units_[index(u)].live)
        return make_error(StatusCode::kInvalidArgument, "plan: entries[", j, "] reads unit ", u,
                          ", which is not admitted");
      int64_t& nu = next_use[index(u)];
      if (nu == kNeverUsed) nu = static_cast<int64_t>(j);
    }
  }
  MovePlan plan;
  if (access.entries.empty()) {
    *out = std::move(plan);
    return Status();
  }

  // Admission: entry 0's units must fit on the device together, beside the device slots that
  // other units' pins and moves in flight hold. Refusing here, rather than evicting entry 0's own
  // units to fetch others, is what keeps a too-large step from thrashing.
  std::vector<size_t> need;
  std::vector<char> listed(n, 0);
  for (int32_t b : access.entries[0].blocks) {
    size_t i = index(UnitId{access.entries[0].layer, b});
    if (!listed[i]) need.push_back(i);
    listed[i] = 1;
  }
  const int64_t device_capacity = slots(Tier::kDevice).capacity();
  int64_t held = 0;
  for (size_t i = 0; i < n; ++i) {
    const UnitState& s = units_[i];
    if (!s.live || next_use[i] == 0 || (s.pins == 0 && !s.in_flight)) continue;
    held += (s.tier == Tier::kDevice) + (s.in_flight && s.to_tier == Tier::kDevice);
  }
  if (static_cast<int64_t>(need.size()) > device_capacity - held)
    return make_error(StatusCode::kOutOfMemory, "plan: entries[0] (layer ", access.entries[0].layer,
                      ") needs ", need.size(),
                      " units on the device at once: device capacity = ", device_capacity,
                      " units, ", held, " of them held by other units pinned or in flight");

  std::array<SimPool, kTierCount> sim{SimPool(slots(Tier::kDevice)), SimPool(slots(Tier::kHost)),
                                      SimPool(slots(Tier::kDisk))};
  SimPool& dev = sim[static_cast<size_t>(Tier::kDevice)];
  SimPool& host = sim[static_cast<size_t>(Tier::kHost)];
  SimPool& disk = sim[static_cast<size_t>(Tier::kDisk)];
  const int64_t device_high = units_at(config_.device_high, dev.capacity);
  const int64_t device_low = units_at(config_.device_low, dev.capacity);
  const int64_t host_high = units_at(config_.host_high, host.capacity);
  const int64_t host_low = units_at(config_.host_low, host.capacity);

  std::vector<EvictionRank> rank(n);
  std::vector<size_t> on_device, on_host;
  std::vector<char> copy_gone(n, 0);  // a move of this plan takes the unit's disk copy
  for (size_t i = 0; i < n; ++i) {
    const UnitState& s = units_[i];
    if (s.live && !s.in_flight && s.disk_copy >= 0) disk.copies.push_back({s.disk_copy, i, -1});
    if (!s.live || s.in_flight || s.pins > 0) continue;
    rank[i] = eviction_rank(config_.policy, next_use[i], s.last_use);
    if (s.tier == Tier::kDevice) on_device.push_back(i);
    if (s.tier == Tier::kHost) on_host.push_back(i);
  }
  VictimQueue device_victims(std::move(on_device), next_use, rank);
  VictimQueue host_victims(std::move(on_host), next_use, rank);
  std::vector<char> planned(n, 0);
  // Copies given up last: the reverse of the order they are taken from the back.
  std::reverse(disk.copies.begin(), disk.copies.end());
  auto has_copy = [&](size_t i) { return units_[i].disk_copy >= 0 && !copy_gone[i]; };
  auto disk_room = [&](size_t i) { return has_copy(i) || disk.has_room(planned); };

  auto add = [&](size_t i, Tier to, MoveReason why) {
    const UnitState& s = units_[i];
    Move m;
    m.unit = unit_at(i);
    m.from = s.tier;
    m.from_slot = s.slot;
    m.to = to;
    m.why = why;
    planned[i] = 1;
    if (to == Tier::kDisk && has_copy(i)) {
      m.to_slot = s.disk_copy;  // its bytes are there: nothing to write
      m.clean = true;
    } else {
      const int64_t owner = sim[static_cast<size_t>(to)].take(&m.to_slot, &m.after, planned);
      if (owner >= 0) {
        m.reclaims = true;
        m.reclaimed = unit_at(static_cast<size_t>(owner));
        copy_gone[static_cast<size_t>(owner)] = 1;
      }
    }
    // A unit read up from the disk keeps its slot there as its copy (which a full disk may take
    // back once the read is done).
    const auto index_of_move = static_cast<int32_t>(plan.moves.size());
    if (s.tier == Tier::kDisk && config_.keep_disk_copies)
      disk.new_copies.push_back({s.slot, i, index_of_move});
    else
      sim[static_cast<size_t>(s.tier)].vacate(s.slot, index_of_move);
    plan.moves.push_back(m);
    (why == MoveReason::kFetch      ? plan.fetches
     : why == MoveReason::kPrefetch ? plan.prefetches
                                    : plan.evictions)++;
  };
  // A device victim goes to the host while the host stays under its high watermark, else to
  // disk; to a host above its watermark only when the disk is full.
  auto evict_from_device = [&](size_t i) -> bool {
    if (host.has_room(planned) && host.used < host_high)
      add(i, Tier::kHost, MoveReason::kEvict);
    else if (disk_room(i))
      add(i, Tier::kDisk, MoveReason::kEvict);
    else if (host.has_room(planned))
      add(i, Tier::kHost, MoveReason::kEvict);
    else
      return false;
    return true;
  };

  // Fetch: entry 0's units onto the device, evicting any unit entry 0 does not read.
  for (size_t i : need) {
    const UnitState& s = units_[i];
    if (s.in_flight) {
      plan.waiting.push_back(unit_at(i));
      continue;
    }
    if (s.tier == Tier::kDevice) continue;
    if (!dev.has_room(planned)) {
      int64_t v = device_victims.next(0, planned);
      if (v < 0)
        return make_error(StatusCode::kOutOfMemory, "plan: no device unit can be evicted to fetch ",
                          unit_at(i),
                          ": every device unit is read by entries[0], pinned or in "
                          "flight");
      if (!evict_from_device(static_cast<size_t>(v)))
        return make_error(StatusCode::kOutOfMemory, "plan: no room to evict ",
                          unit_at(static_cast<size_t>(v)), " from the device: host ", host.used,
                          "/", host.capacity, ", disk ", disk.used, "/", disk.capacity,
                          " units used");
    }
    add(i, Tier::kDevice, MoveReason::kFetch);
  }

  // Prefetch: later entries' units in schedule order, up to the device's high watermark, then
  // only in exchange for a unit needed later than the one fetched. The first unit that cannot be
  // placed ends prefetching: every later one would need a victim needed later still.
  int64_t budget = access.max_prefetch_units < 0 ? kNeverUsed : access.max_prefetch_units;
  const int64_t last =
      std::min<int64_t>(static_cast<int64_t>(access.entries.size()) - 1, access.prefetch_entries);
  int64_t window = 0;
  bool stop = false;
  for (int64_t j = 1; j <= last && !stop; ++j) {
    window = j;
    const AccessEntry& e = access.entries[static_cast<size_t>(j)];
    for (int32_t b : e.blocks) {
      size_t i = index(UnitId{e.layer, b});
      const UnitState& s = units_[i];
      if (planned[i] || s.in_flight || s.tier == Tier::kDevice) continue;
      if (budget == 0) {
        stop = true;
        break;
      }
      if (!(dev.has_room(planned) && dev.used < device_high)) {
        int64_t v = device_victims.next(j, planned, !access.prefetch_evicts_scheduled);
        if (v < 0 || !evict_from_device(static_cast<size_t>(v))) {
          stop = true;
          break;
        }
      }
      add(i, Tier::kDevice, MoveReason::kPrefetch);
      --budget;
    }
  }

  // Watermarks: units outside the prefetch window leave a device above its high mark, and a host
  // above its high mark spills to disk, each down to its low mark.
  if (dev.used > device_high) {
    while (dev.used > device_low) {
      int64_t v = device_victims.next(window, planned);
      if (v < 0 || !evict_from_device(static_cast<size_t>(v))) break;
    }
  }
  if (host.used > host_high) {
    while (host.used > host_low) {
      int64_t v = host_victims.next(window, planned);
      if (v < 0 || !disk_room(static_cast<size_t>(v))) break;
      add(static_cast<size_t>(v), Tier::kDisk, MoveReason::kEvict);
    }
  }
  *out = std::move(plan);
  return Status();
}

}  // namespace lifecycle
}  // namespace qwen3vl
