// ResidencyTable: typed errors for bad arguments, the mover protocol, plan()'s admission control,
// policy choices and watermarks on small hand-made cases, and seeded random operation sequences
// against a plain reference model. After every random step: no tier above its capacity, no slot
// held twice or leaked, every live unit in exactly one tier (two slots only while in flight),
// refcounts and pins as the model says, and no plan moves a pinned or in-flight unit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "qwen3vl/lifecycle/residency.hpp"

namespace qwen3vl {
namespace lifecycle {
namespace {

ResidencyConfig small_config(int64_t device, int64_t host, int64_t disk = 0) {
  ResidencyConfig c;
  c.layers = 2;
  c.blocks = 8;
  c.capacity = {device, host, disk};
  c.device_high = c.device_low = c.host_high = c.host_low = 1.0;
  return c;
}

ResidencyTable make(const ResidencyConfig& c) {
  ResidencyTable t;
  Status st = ResidencyTable::create(c, &t);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return t;
}

void expect_error(const Status& st, StatusCode code, const std::string& needle) {
  EXPECT_EQ(st.code(), code) << st.to_string();
  EXPECT_NE(st.message().find(needle), std::string::npos)
      << "message '" << st.message() << "' lacks '" << needle << "'";
}

AccessEntry entry(int32_t layer, std::vector<int32_t> blocks) { return AccessEntry{layer, blocks}; }

// Carries out a plan in order, each move begun and finished.
void execute(ResidencyTable& t, const MovePlan& plan) {
  for (const Move& m : plan.moves) {
    ASSERT_TRUE(t.begin_move(m).ok()) << m.unit;
    ASSERT_TRUE(t.finish_move(m.unit).ok()) << m.unit;
  }
}

TEST(Residency, CreateRejectsBadConfigsNamingTheField) {
  ResidencyTable t;
  ResidencyConfig c = small_config(4, 4);
  c.layers = 0;
  expect_error(ResidencyTable::create(c, &t), StatusCode::kInvalidArgument, "layers = 0");
  c = small_config(4, 4);
  c.blocks = -1;
  expect_error(ResidencyTable::create(c, &t), StatusCode::kInvalidArgument, "blocks = -1");
  c = small_config(0, 4);
  expect_error(ResidencyTable::create(c, &t), StatusCode::kInvalidArgument, "capacity[device] = 0");
  c = small_config(4, -2);
  expect_error(ResidencyTable::create(c, &t), StatusCode::kInvalidArgument, "capacity[host] = -2");
  c = small_config(4, 4);
  c.device_low = 0.9;
  c.device_high = 0.5;
  expect_error(ResidencyTable::create(c, &t), StatusCode::kInvalidArgument, "device_low = 0.9");
  c = small_config(4, 4);
  c.host_high = 1.5;
  expect_error(ResidencyTable::create(c, &t), StatusCode::kInvalidArgument, "host_high = 1.5");
  c = small_config(4, 4);
  c.layers = 1 << 16;
  c.blocks = 1 << 16;
  expect_error(ResidencyTable::create(c, &t), StatusCode::kInvalidArgument, "layers * blocks");
  expect_error(ResidencyTable::create(small_config(4, 4), nullptr), StatusCode::kNullPointer,
               "out = null");
}

TEST(Residency, BadUnitsAndCallsAreTypedErrorsThatChangeNothing) {
  ResidencyTable t = make(small_config(4, 4));
  expect_error(t.pin({5, 0}), StatusCode::kInvalidArgument, "pin: unit (layer 5, block 0)");
  expect_error(t.admit({0, 8}), StatusCode::kInvalidArgument, "allowed layer 0..1, block 0..7");
  expect_error(t.release({0, 1}), StatusCode::kInvalidArgument, "not admitted");
  ASSERT_TRUE(t.admit({0, 1}).ok());
  expect_error(t.admit({0, 1}), StatusCode::kInvalidArgument, "already admitted");
  expect_error(t.unpin({0, 1}), StatusCode::kInvalidArgument, "pin count = 0");
  expect_error(t.finish_move({0, 1}), StatusCode::kInvalidArgument, "no move in flight");
  expect_error(t.abort_move({0, 1}), StatusCode::kInvalidArgument, "no move in flight");
  ASSERT_TRUE(t.pin({0, 1}).ok());
  expect_error(t.release({0, 1}), StatusCode::kInvalidArgument, "pinned");
  ASSERT_TRUE(t.share({0, 1}).ok());
  ASSERT_TRUE(t.release({0, 1}).ok());  // not the last reference: allowed while pinned
  EXPECT_EQ(t.state({0, 1})->refcount, 1);
  ASSERT_TRUE(t.unpin({0, 1}).ok());
  ASSERT_TRUE(t.release({0, 1}).ok());
  EXPECT_EQ(t.slots(Tier::kDevice).free_count(), 4);
  MovePlan plan;
  AccessPlan bad;
  bad.entries = {entry(2, {0})};
  expect_error(t.plan(bad, &plan), StatusCode::kInvalidArgument, "entries[0].layer = 2");
  bad.entries = {entry(0, {3})};
  expect_error(t.plan(bad, &plan), StatusCode::kInvalidArgument, "not admitted");
  bad.entries = {entry(0, {9})};
  expect_error(t.plan(bad, &plan), StatusCode::kInvalidArgument, "block = 9");
  EXPECT_TRUE(t.check_invariants().ok());
}

TEST(Residency, AdmitsDeviceFirstThenHostThenDisk) {
  ResidencyTable t = make(small_config(2, 1, 1));
  Tier placed;
  for (Tier want : {Tier::kDevice, Tier::kDevice, Tier::kHost, Tier::kDisk}) {
    static int32_t b = 0;
    ASSERT_TRUE(t.admit({0, b++}, &placed).ok());
    EXPECT_EQ(placed, want);
  }
  expect_error(t.admit({1, 0}), StatusCode::kOutOfMemory, "every tier is full");
}

TEST(Residency, MoveProtocolHoldsBothSlotsInFlightAndChecksStalePlans) {
  ResidencyTable t = make(small_config(1, 2));
  ASSERT_TRUE(t.admit({0, 0}).ok());  // device slot 0
  ASSERT_TRUE(t.admit({0, 1}).ok());  // host
  AccessPlan access;
  access.entries = {entry(0, {1})};
  MovePlan plan;
  ASSERT_TRUE(t.plan(access, &plan).ok());
  ASSERT_EQ(plan.moves.size(), 2u);
  const Move evict = plan.moves[0], fetch = plan.moves[1];
  EXPECT_EQ(evict.why, MoveReason::kEvict);
  EXPECT_EQ(evict.unit, (UnitId{0, 0}));
  EXPECT_EQ(fetch.why, MoveReason::kFetch);
  EXPECT_EQ(fetch.after, 0);  // reuses the slot the eviction vacates
  // The fetch cannot start before the eviction has finished: its slot is still taken.
  ASSERT_TRUE(t.begin_move(evict).ok());
  expect_error(t.begin_move(fetch), StatusCode::kInvalidArgument, "the slot is taken");
  EXPECT_EQ(t.slots(Tier::kHost).used_count(), 2);  // in flight: both slots held
  expect_error(t.pin({0, 0}), StatusCode::kInvalidArgument, "in flight");
  ASSERT_TRUE(t.abort_move({0, 0}).ok());
  EXPECT_EQ(t.state({0, 0})->tier, Tier::kDevice);
  EXPECT_EQ(t.slots(Tier::kHost).used_count(), 1);
  execute(t, plan);
  EXPECT_EQ(t.state({0, 1})->tier, Tier::kDevice);
  EXPECT_EQ(t.state({0, 0})->tier, Tier::kHost);
  // The same plan again is stale: the units are no longer where it says.
  expect_error(t.begin_move(evict), StatusCode::kInvalidArgument, "stale plan");
  // Checksums travel with the unit.
  ASSERT_TRUE(t.record_checksum({0, 0}, 0xabcdu, 7).ok());
  EXPECT_EQ(t.state({0, 0})->checksum, 0xabcdu);
  EXPECT_EQ(t.state({0, 0})->version, 7u);
  EXPECT_TRUE(t.check_invariants().ok());
}

TEST(Residency, PlanRefusesAnEntryThatCannotFitTheDevice) {
  ResidencyTable t = make(small_config(4, 8));
  for (int32_t b = 0; b < 6; ++b) ASSERT_TRUE(t.admit({0, b}).ok());
  ASSERT_TRUE(t.admit({1, 0}).ok());  // host
  AccessPlan access;
  MovePlan plan;
  access.entries = {entry(0, {0, 1, 2, 3, 4})};
  expect_error(t.plan(access, &plan), StatusCode::kOutOfMemory,
               "needs 5 units on the device at once: device capacity = 4 units, 0 of them held");
  // A pinned unit of another entry shrinks the room: 4 units no longer fit beside it.
  ASSERT_TRUE(t.pin({0, 0}).ok());
  access.entries = {entry(0, {1, 2, 3, 4})};
  expect_error(t.plan(access, &plan), StatusCode::kOutOfMemory, "1 of them held");
  // Pinned units never move, even when they are the best victims.
  access.entries = {entry(0, {4, 5, 1})};
  ASSERT_TRUE(t.plan(access, &plan).ok());
  for (const Move& m : plan.moves) EXPECT_NE(m.unit, (UnitId{0, 0}));
}

TEST(Residency, PoliciesPickDifferentVictims) {
  for (EvictionPolicy policy : {EvictionPolicy::kLru, EvictionPolicy::kScheduleDriven}) {
    ResidencyConfig c = small_config(2, 4);
    c.policy = policy;
    ResidencyTable t = make(c);
    ASSERT_TRUE(t.admit({0, 0}).ok());  // A, device
    ASSERT_TRUE(t.admit({0, 1}).ok());  // B, device
    ASSERT_TRUE(t.admit({0, 2}).ok());  // C, host
    // A used longest ago; B is never used again.
    ASSERT_TRUE(t.pin({0, 1}).ok());
    ASSERT_TRUE(t.unpin({0, 1}).ok());
    ASSERT_TRUE(t.pin({0, 0}).ok());
    ASSERT_TRUE(t.unpin({0, 0}).ok());
    ASSERT_TRUE(t.pin({0, 1}).ok());
    ASSERT_TRUE(t.unpin({0, 1}).ok());
    AccessPlan access;
    access.entries = {entry(0, {2}), entry(0, {0})};
    MovePlan plan;
    ASSERT_TRUE(t.plan(access, &plan).ok());
    ASSERT_GE(plan.moves.size(), 2u);
    EXPECT_EQ(plan.moves[0].why, MoveReason::kEvict);
    UnitId want = policy == EvictionPolicy::kLru ? UnitId{0, 0} : UnitId{0, 1};
    EXPECT_EQ(plan.moves[0].unit, want) << to_string(policy);
  }
}

TEST(Residency, PrefetchNeverEvictsAUnitNeededSooner) {
  ResidencyTable t = make(small_config(2, 4));
  ASSERT_TRUE(t.admit({0, 0}).ok());  // A, device
  ASSERT_TRUE(t.admit({0, 1}).ok());  // B, device
  ASSERT_TRUE(t.admit({0, 2}).ok());  // C, host
  AccessPlan access;
  MovePlan plan;
  access.entries = {entry(0, {0}), entry(0, {1}), entry(0, {2})};
  ASSERT_TRUE(t.plan(access, &plan).ok());
  EXPECT_TRUE(plan.moves.empty());  // C would displace B, needed before it
  access.entries = {entry(0, {0}), entry(0, {2}), entry(0, {1})};
  ASSERT_TRUE(t.plan(access, &plan).ok());
  ASSERT_EQ(plan.moves.size(), 2u);  // B (entry 2) makes room for C (entry 1)
  EXPECT_EQ(plan.moves[0].unit, (UnitId{0, 1}));
  EXPECT_EQ(plan.moves[1].why, MoveReason::kPrefetch);
  access.max_prefetch_units = 0;
  ASSERT_TRUE(t.plan(access, &plan).ok());
  EXPECT_TRUE(plan.moves.empty());
  access.max_prefetch_units = -1;
  access.prefetch_entries = 0;
  ASSERT_TRUE(t.plan(access, &plan).ok());
  EXPECT_TRUE(plan.moves.empty());
}

TEST(Residency, WatermarksEvictDownToTheLowMarkAndSpillToDisk) {
  ResidencyConfig c = small_config(10, 4, 16);
  c.device_high = 0.8;
  c.device_low = 0.5;
  c.host_high = 0.5;
  c.host_low = 0.25;
  ResidencyTable t = make(c);
  for (int32_t b = 0; b < 8; ++b) ASSERT_TRUE(t.admit({0, b}).ok());
  for (int32_t b = 0; b < 2; ++b) ASSERT_TRUE(t.admit({1, b}).ok());  // device full: 10 / 10
  AccessPlan access;
  access.entries = {entry(0, {0})};
  MovePlan plan;
  ASSERT_TRUE(t.plan(access, &plan).ok());
  EXPECT_EQ(plan.evictions, 5);  // 10 -> 5
  int to_host = 0, to_disk = 0;
  for (const Move& m : plan.moves) {
    EXPECT_NE(m.unit, (UnitId{0, 0}));  // entry 0 stays
    (m.to == Tier::kHost ? to_host : to_disk)++;
  }
  EXPECT_EQ(to_host, 2);  // the host takes units up to its high mark (2 of 4), the disk the rest
  EXPECT_EQ(to_disk, 3);
  execute(t, plan);
  EXPECT_EQ(t.slots(Tier::kDevice).used_count(), 5);
  EXPECT_TRUE(t.check_invariants().ok());
}

// A unit read up from the disk keeps its slot there as a clean copy: its eviction back is a clean
// move into that slot, a write drops the copy, and a full disk gives copies up to other units.
TEST(Residency, DiskCopiesMakeCleanEvictionsAndAreReclaimedWhenTheDiskIsFull) {
  ResidencyTable t = make(small_config(1, 0, 2));
  Tier placed;
  ASSERT_TRUE(t.admit({0, 0}, &placed).ok());
  ASSERT_TRUE(t.admit({0, 1}, &placed).ok());
  EXPECT_EQ(placed, Tier::kDisk);
  AccessPlan a;
  a.entries = {entry(0, {1})};
  MovePlan p;
  ASSERT_TRUE(t.plan(a, &p).ok());  // (0,0) out to disk (a write), (0,1) in
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_FALSE(p.moves[0].clean);
  execute(t, p);
  const int32_t copy = t.state({0, 1})->disk_copy;
  EXPECT_GE(copy, 0) << "the disk slot it came from stays as its copy";
  EXPECT_EQ(t.slots(Tier::kDisk).used_count(), 2);

  a.entries = {entry(0, {0})};  // (0,1) back out: into its copy, no bytes
  ASSERT_TRUE(t.plan(a, &p).ok());
  ASSERT_EQ(p.moves.size(), 2u);
  EXPECT_TRUE(p.moves[0].clean);
  EXPECT_EQ(p.moves[0].to_slot, copy);
  execute(t, p);
  EXPECT_EQ(t.state({0, 1})->tier, Tier::kDisk);
  EXPECT_EQ(t.state({0, 1})->disk_copy, -1);
  EXPECT_GE(t.state({0, 0})->disk_copy, 0);
  EXPECT_TRUE(t.check_invariants().ok());

  // A write drops (0,0)'s copy; its next eviction writes into a free slot.
  ASSERT_TRUE(t.mark_dirty({0, 0}).ok());
  EXPECT_EQ(t.state({0, 0})->disk_copy, -1);
  EXPECT_EQ(t.slots(Tier::kDisk).used_count(), 1);
  a.entries = {entry(0, {1})};
  ASSERT_TRUE(t.plan(a, &p).ok());
  EXPECT_FALSE(p.moves[0].clean);
  execute(t, p);

  // A copy holds its disk slot: with (0,1)'s copy and (1,0) there, admission finds no room until
  // mark_dirty drops the copy; then an eviction with no copy and no free slot is refused.
  ASSERT_TRUE(t.release({0, 0}).ok());  // frees its disk slot
  ASSERT_TRUE(t.admit({1, 0}, &placed).ok());
  EXPECT_EQ(placed, Tier::kDisk);  // disk: (1,0) and (0,1)'s copy; device: (0,1)
  ASSERT_TRUE(t.admit({1, 1}, &placed).code() == StatusCode::kOutOfMemory);
  ASSERT_TRUE(t.mark_dirty({0, 1}).ok());  // its copy is stale: the slot is free again
  ASSERT_TRUE(t.admit({1, 1}, &placed).ok());
  EXPECT_EQ(placed, Tier::kDisk);
  a.entries = {entry(1, {0})};  // (0,1) out (disk full, no copy): refused, nothing changes
  EXPECT_EQ(t.plan(a, &p).code(), StatusCode::kOutOfMemory);
  EXPECT_TRUE(t.check_invariants().ok());

  // Reclaim: device {0, 1}, disk {2, 3} and one free slot; reading 2 and 3 evicts 0 into the free
  // slot, and 1 into the copy that reading 2 leaves (once that read is done).
  ResidencyTable r = make(small_config(2, 0, 3));
  for (int32_t b = 0; b < 4; ++b) ASSERT_TRUE(r.admit({0, b}, &placed).ok());
  ASSERT_TRUE(r.mark_dirty({0, 0}).ok());
  a.entries = {entry(0, {2, 3})};
  ASSERT_TRUE(r.plan(a, &p).ok());
  int64_t reclaims = 0;
  for (const Move& m : p.moves) {
    if (!m.reclaims) continue;
    ++reclaims;
    EXPECT_EQ(m.unit, (UnitId{0, 1}));
    EXPECT_EQ(m.reclaimed, (UnitId{0, 2}));
    ASSERT_GE(m.after, 0);
    EXPECT_EQ(p.moves[static_cast<size_t>(m.after)].unit, (UnitId{0, 2}));
  }
  EXPECT_EQ(reclaims, 1);
  execute(r, p);
  EXPECT_TRUE(r.check_invariants().ok()) << r.check_invariants().to_string();
  EXPECT_EQ(r.state({0, 2})->disk_copy, -1);
  EXPECT_GE(r.state({0, 3})->disk_copy, 0);
  EXPECT_EQ(r.state({0, 1})->tier, Tier::kDisk);
  EXPECT_EQ(r.slots(Tier::kDisk).used_count(), 3);
}

// --- the random sequences against a reference model ---------------------------------------------

struct RefUnit {
  Tier tier;
  int32_t slot;
  bool in_flight = false;
  Tier to_tier = Tier::kDevice;
  int32_t to_slot = -1;
  int32_t pins = 0;
  int32_t refcount = 1;
  int32_t disk_copy = -1;
};

struct Model {
  ResidencyConfig config;
  std::map<std::pair<int32_t, int32_t>, RefUnit> units;
  std::array<std::set<int32_t>, kTierCount> used;

  std::set<int32_t>& used_in(Tier t) { return used[static_cast<size_t>(t)]; }
  int64_t capacity(Tier t) const { return config.capacity[static_cast<size_t>(t)]; }
  RefUnit* find(UnitId u) {
    auto it = units.find({u.layer, u.block});
    return it == units.end() ? nullptr : &it->second;
  }
};

void compare(const ResidencyTable& t, Model& m) {
  ASSERT_TRUE(t.check_invariants().ok()) << t.check_invariants().to_string();
  for (int i = 0; i < kTierCount; ++i) {
    Tier tier = static_cast<Tier>(i);
    ASSERT_LE(t.slots(tier).used_count(), m.capacity(tier));
    ASSERT_EQ(t.slots(tier).used_count(), static_cast<int64_t>(m.used_in(tier).size()));
  }
  ASSERT_EQ(t.live_units(), static_cast<int64_t>(m.units.size()));
  for (int32_t l = 0; l < m.config.layers; ++l) {
    for (int32_t b = 0; b < m.config.blocks; ++b) {
      const UnitState* s = t.state({l, b});
      RefUnit* r = m.find({l, b});
      ASSERT_EQ(s->live, r != nullptr) << UnitId{l, b};
      if (r == nullptr) continue;
      ASSERT_EQ(s->tier, r->tier);
      ASSERT_EQ(s->slot, r->slot);
      ASSERT_EQ(s->in_flight, r->in_flight);
      if (r->in_flight) {
        ASSERT_EQ(s->to_tier, r->to_tier);
        ASSERT_EQ(s->to_slot, r->to_slot);
      }
      ASSERT_EQ(s->pins, r->pins);
      ASSERT_EQ(s->refcount, r->refcount);
      ASSERT_EQ(s->disk_copy, r->disk_copy) << UnitId{l, b};
    }
  }
}

// What the sequences exercised, so that a generator change cannot make them vacuous.
struct Coverage {
  int64_t plans_ok = 0, admission_errors = 0, moves_begun = 0, stale_moves = 0, fetches = 0,
          prefetches = 0, evictions = 0, clean = 0, reclaims = 0, dirtied = 0;
};

void random_sequence(uint32_t seed, EvictionPolicy policy, Coverage& cov) {
  SCOPED_TRACE("seed " + std::to_string(seed) + ", policy " + to_string(policy));
  std::mt19937 rng(seed);
  auto pick = [&](int32_t n) { return static_cast<int32_t>(rng() % static_cast<uint32_t>(n)); };
  Model m;
  m.config.layers = 1 + pick(4);
  m.config.blocks = 1 + pick(12);
  // A small disk half the time, so that clean copies fill it and get reclaimed.
  m.config.capacity = {1 + pick(12), pick(16), pick(3) == 0 ? 0 : pick(2) ? pick(40) : pick(10)};
  m.config.device_high = 0.5 + 0.5 * (pick(11) / 10.0);
  m.config.device_low = m.config.device_high * (0.5 + 0.5 * (pick(11) / 10.0));
  m.config.host_high = 0.5 + 0.5 * (pick(11) / 10.0);
  m.config.host_low = m.config.host_high * (0.5 + 0.5 * (pick(11) / 10.0));
  m.config.policy = policy;
  m.config.keep_disk_copies = pick(3) != 0;
  ResidencyTable t;
  ASSERT_TRUE(ResidencyTable::create(m.config, &t).ok());
  std::vector<Move> pending;  // moves of the latest plans, not yet begun

  auto random_unit = [&] { return UnitId{pick(m.config.layers), pick(m.config.blocks)}; };
  auto random_access = [&] {
    AccessPlan a;
    int32_t entries = pick(5);
    std::vector<UnitId> live;
    for (auto& [k, r] : m.units) live.push_back({k.first, k.second});
    for (int32_t e = 0; e < entries; ++e) {
      AccessEntry en;
      en.layer = pick(m.config.layers);
      int32_t reads = pick(m.config.blocks + 1);
      for (int32_t i = 0; i < reads; ++i) {
        int32_t b = pick(m.config.blocks);
        if (m.find({en.layer, b}) != nullptr || pick(20) == 0) en.blocks.push_back(b);
      }
      a.entries.push_back(en);
    }
    if (pick(3) == 0) a.max_prefetch_units = pick(4);
    if (pick(4) == 0) a.prefetch_entries = pick(3);
    return a;
  };
  // The reference model's view of plan()'s admission rule and of a move's validity.
  auto check_plan = [&](const AccessPlan& a, const Status& st, const MovePlan& p) -> bool {
    bool unknown = false;
    for (const AccessEntry& e : a.entries)
      for (int32_t b : e.blocks) unknown |= m.find({e.layer, b}) == nullptr;
    if (unknown) {
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
      return false;
    }
    if (a.entries.empty()) {
      EXPECT_TRUE(st.ok());
      return true;
    }
    std::set<int32_t> need(a.entries[0].blocks.begin(), a.entries[0].blocks.end());
    int64_t held = 0;
    for (auto& [k, r] : m.units) {
      if (k.first == a.entries[0].layer && need.count(k.second)) continue;
      if (r.pins == 0 && !r.in_flight) continue;
      held += (r.tier == Tier::kDevice) + (r.in_flight && r.to_tier == Tier::kDevice);
    }
    bool too_big = static_cast<int64_t>(need.size()) > m.capacity(Tier::kDevice) - held;
    if (too_big) {
      EXPECT_EQ(st.code(), StatusCode::kOutOfMemory) << st.to_string();
      EXPECT_NE(st.message().find("needs " + std::to_string(need.size())), std::string::npos);
      ++cov.admission_errors;
      return false;
    }
    if (!st.ok()) {  // only when no tier has room for an eviction
      EXPECT_EQ(st.code(), StatusCode::kOutOfMemory) << st.to_string();
      EXPECT_NE(st.message().find("evict"), std::string::npos) << st.to_string();
      return false;
    }
    ++cov.plans_ok;
    cov.fetches += p.fetches;
    cov.prefetches += p.prefetches;
    cov.evictions += p.evictions;
    std::set<std::pair<int32_t, int32_t>> moved;
    for (size_t i = 0; i < p.moves.size(); ++i) {
      const Move& mv = p.moves[i];
      RefUnit* r = m.find(mv.unit);
      EXPECT_NE(r, nullptr);
      if (r == nullptr) continue;
      EXPECT_EQ(r->pins, 0) << "pinned unit planned to move: " << mv.unit;
      EXPECT_FALSE(r->in_flight) << "unit in flight planned to move: " << mv.unit;
      EXPECT_EQ(mv.from, r->tier);
      EXPECT_EQ(mv.from_slot, r->slot);
      EXPECT_NE(mv.from, mv.to);
      EXPECT_LT(mv.after, static_cast<int32_t>(i));
      if (mv.clean) {
        EXPECT_EQ(mv.to, Tier::kDisk);
        EXPECT_EQ(mv.to_slot, r->disk_copy) << "a clean move goes into the unit's own copy";
        EXPECT_FALSE(mv.reclaims);
      }
      if (mv.reclaims) {  // a copy there now, or one an earlier read of this plan leaves
        RefUnit* owner = m.find(mv.reclaimed);
        const bool now = owner != nullptr && owner->disk_copy == mv.to_slot && mv.after == -1;
        const bool later = mv.after >= 0 &&
                           p.moves[static_cast<size_t>(mv.after)].unit == mv.reclaimed &&
                           p.moves[static_cast<size_t>(mv.after)].from == Tier::kDisk &&
                           p.moves[static_cast<size_t>(mv.after)].from_slot == mv.to_slot;
        EXPECT_TRUE((now || later) && owner != r) << mv.unit << " reclaims " << mv.reclaimed;
      }
      EXPECT_TRUE(moved.insert({mv.unit.layer, mv.unit.block}).second) << "moved twice";
      if (mv.why != MoveReason::kEvict) {
        EXPECT_EQ(mv.to, Tier::kDevice);
      }
      if (mv.why == MoveReason::kFetch) {
        EXPECT_EQ(mv.unit.layer, a.entries[0].layer);
      }
      if (mv.why == MoveReason::kEvict) {
        EXPECT_FALSE(mv.unit.layer == a.entries[0].layer && need.count(mv.unit.block))
            << "evicted a unit entry 0 reads";
      }
    }
    return true;
  };
  auto apply_begin = [&](const Move& mv) {
    Status st = t.begin_move(mv);
    RefUnit* r = m.find(mv.unit);
    const bool into_copy = r != nullptr && mv.to == Tier::kDisk && r->disk_copy >= 0;
    RefUnit* owner = mv.reclaims ? m.find(mv.reclaimed) : nullptr;
    bool slot_ok = false;
    if (into_copy)
      slot_ok = mv.clean && !mv.reclaims && mv.to_slot == r->disk_copy;
    else if (mv.reclaims)
      slot_ok = !mv.clean && mv.to == Tier::kDisk && owner != nullptr && owner != r &&
                owner->disk_copy == mv.to_slot && !owner->in_flight;
    else
      slot_ok = !mv.clean && mv.to_slot >= 0 && mv.to_slot < m.capacity(mv.to) &&
                !m.used_in(mv.to).count(mv.to_slot);
    bool valid = r != nullptr && !r->in_flight && r->pins == 0 && r->tier == mv.from &&
                 r->slot == mv.from_slot && mv.to != mv.from && slot_ok;
    ASSERT_EQ(st.ok(), valid) << st.to_string() << " " << mv.unit;
    (valid ? cov.moves_begun : cov.stale_moves)++;
    if (!valid) return;
    r->in_flight = true;
    r->to_tier = mv.to;
    r->to_slot = mv.to_slot;
    if (mv.reclaims) {
      owner->disk_copy = -1;  // its slot passes to this move
      ++cov.reclaims;
    } else if (into_copy) {
      ++cov.clean;
    } else {
      m.used_in(mv.to).insert(mv.to_slot);
    }
  };
  auto apply_end = [&](UnitId u, bool finish) {
    Status st = finish ? t.finish_move(u) : t.abort_move(u);
    RefUnit* r = m.find(u);
    bool valid = r != nullptr && r->in_flight;
    ASSERT_EQ(st.ok(), valid) << st.to_string();
    if (!valid) return;
    r->in_flight = false;
    const bool into_copy = r->to_tier == Tier::kDisk && r->to_slot == r->disk_copy;
    if (finish) {
      const bool keep = r->tier == Tier::kDisk && m.config.keep_disk_copies;
      if (!keep) m.used_in(r->tier).erase(r->slot);
      if (into_copy) r->disk_copy = -1;
      if (keep) r->disk_copy = r->slot;
      r->tier = r->to_tier;
      r->slot = r->to_slot;
    } else if (!into_copy) {
      m.used_in(r->to_tier).erase(r->to_slot);
    }
  };

  for (int step = 0; step < 600; ++step) {
    int op = pick(100);
    UnitId u = random_unit();
    RefUnit* r = m.find(u);
    if (op < 18) {  // admit
      Tier placed = Tier::kDevice;
      Status st = t.admit(u, &placed);
      if (r != nullptr) {
        ASSERT_EQ(st.code(), StatusCode::kInvalidArgument);
      } else {
        Tier want = Tier::kDevice;
        bool room = false;
        for (int i = 0; i < kTierCount && !room; ++i) {
          want = static_cast<Tier>(i);
          room = static_cast<int64_t>(m.used_in(want).size()) < m.capacity(want);
        }
        ASSERT_EQ(st.ok(), room) << st.to_string();
        if (room) {
          ASSERT_EQ(placed, want);
          int32_t slot = t.state(u)->slot;
          ASSERT_FALSE(m.used_in(want).count(slot)) << "slot handed out twice";
          m.used_in(want).insert(slot);
          m.units[{u.layer, u.block}] = RefUnit{want, slot};
        } else {
          ASSERT_EQ(st.code(), StatusCode::kOutOfMemory);
        }
      }
    } else if (op < 24) {  // share
      Status st = t.share(u);
      ASSERT_EQ(st.ok(), r != nullptr);
      if (r) ++r->refcount;
    } else if (op < 36) {  // release
      Status st = t.release(u);
      bool valid = r != nullptr && !(r->refcount == 1 && (r->pins > 0 || r->in_flight));
      ASSERT_EQ(st.ok(), valid) << st.to_string();
      if (valid && --r->refcount == 0) {
        m.used_in(r->tier).erase(r->slot);
        if (r->disk_copy >= 0) m.used_in(Tier::kDisk).erase(r->disk_copy);
        m.units.erase({u.layer, u.block});
      }
    } else if (op < 46) {  // pin
      Status st = t.pin(u);
      bool valid = r != nullptr && r->tier == Tier::kDevice && !r->in_flight;
      ASSERT_EQ(st.ok(), valid) << st.to_string();
      if (valid) ++r->pins;
    } else if (op < 56) {  // unpin (below zero included)
      Status st = t.unpin(u);
      bool valid = r != nullptr && r->pins > 0;
      ASSERT_EQ(st.ok(), valid) << st.to_string();
      if (valid) --r->pins;
    } else if (op < 66) {  // plan, keep its moves to begin later (they may go stale)
      AccessPlan a = random_access();
      MovePlan p;
      Status st = t.plan(a, &p);
      if (check_plan(a, st, p)) pending = p.moves;
    } else if (op < 74) {  // plan and carry it out at once: entry 0 ends on the device
      AccessPlan a = random_access();
      MovePlan p;
      Status st = t.plan(a, &p);
      if (check_plan(a, st, p)) {
        for (const Move& mv : p.moves) {
          apply_begin(mv);
          apply_end(mv.unit, true);
        }
        if (!a.entries.empty()) {
          for (int32_t b : a.entries[0].blocks) {
            UnitId want{a.entries[0].layer, b};
            bool waiting = std::find(p.waiting.begin(), p.waiting.end(), want) != p.waiting.end();
            if (!waiting) {
              ASSERT_EQ(t.state(want)->tier, Tier::kDevice) << want;
            }
          }
        }
      }
    } else if (op < 86) {  // begin a pending move (perhaps stale)
      if (!pending.empty()) {
        apply_begin(pending.front());
        pending.erase(pending.begin());
      }
    } else if (op < 89) {             // the unit's bytes change: its disk copy goes
      for (auto& [k, ref] : m.units)  // a unit with a copy, where there is one
        if (ref.disk_copy >= 0 && pick(2) == 0) {
          u = UnitId{k.first, k.second};
          r = &ref;
          break;
        }
      Status st = t.mark_dirty(u);
      bool valid = r != nullptr && !r->in_flight;
      ASSERT_EQ(st.ok(), valid) << st.to_string();
      if (valid && r->disk_copy >= 0) {
        m.used_in(Tier::kDisk).erase(r->disk_copy);
        r->disk_copy = -1;
        ++cov.dirtied;
      }
    } else {  // finish or abort a move (or a unit with none in flight)
      apply_end(u, op < 96);
    }
    compare(t, m);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // Drain: everything finishes, unpins and is released; every slot is free again.
  for (auto& [k, ref] : m.units) {
    UnitId id{k.first, k.second};
    if (ref.in_flight) {
      ASSERT_TRUE(t.finish_move(id).ok());
    }
    for (; ref.pins > 0; --ref.pins) ASSERT_TRUE(t.unpin(id).ok());
    for (; ref.refcount > 0; --ref.refcount) ASSERT_TRUE(t.release(id).ok());
  }
  for (int i = 0; i < kTierCount; ++i)
    ASSERT_EQ(t.slots(static_cast<Tier>(i)).used_count(), 0) << "leaked slots";
  ASSERT_EQ(t.live_units(), 0);
}

TEST(Residency, RandomSequencesMatchTheReferenceModel) {
  Coverage cov;
  for (uint32_t seed = 1; seed <= 150; ++seed) {
    random_sequence(seed, seed % 2 ? EvictionPolicy::kLru : EvictionPolicy::kScheduleDriven, cov);
    if (HasFatalFailure()) return;
  }
  std::printf(
      "plans %lld (admission errors %lld), moves begun %lld (stale %lld); planned fetches "
      "%lld, prefetches %lld, evictions %lld; clean %lld, reclaims %lld, dirtied copies %lld\n",
      static_cast<long long>(cov.plans_ok), static_cast<long long>(cov.admission_errors),
      static_cast<long long>(cov.moves_begun), static_cast<long long>(cov.stale_moves),
      static_cast<long long>(cov.fetches), static_cast<long long>(cov.prefetches),
      static_cast<long long>(cov.evictions), static_cast<long long>(cov.clean),
      static_cast<long long>(cov.reclaims), static_cast<long long>(cov.dirtied));
  EXPECT_GT(cov.admission_errors, 0);
  EXPECT_GT(cov.stale_moves, 0);
  EXPECT_GT(cov.fetches, 100);
  EXPECT_GT(cov.prefetches, 100);
  EXPECT_GT(cov.evictions, 100);
  EXPECT_GT(cov.clean, 10);
  EXPECT_GT(cov.reclaims, 10);
  EXPECT_GT(cov.dirtied, 10);
}

}  // namespace
}  // namespace lifecycle
}  // namespace qwen3vl
