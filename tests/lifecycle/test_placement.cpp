// The placement plan: tier sizes and the step prediction from a model shape and budgets, typed
// errors naming the field, and the disk probe measured once then read from its cache.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "qwen3vl/lifecycle/placement.hpp"

namespace qwen3vl::lifecycle {
namespace {

MachineProbe disk_at(double read_mib_s) {
  MachineProbe m;
  m.disk_read_mib_s = read_mib_s;
  return m;
}

PlacementRequest qwen3vl_8b(int64_t context, int64_t device_gib, int64_t host_gib) {
  PlacementRequest r;
  r.layers = 36;
  r.kv_heads = 8;
  r.head_dim = 128;
  r.context = context;
  r.device_budget_bytes = device_gib << 30;
  r.host_budget_bytes = host_gib << 30;
  r.host_copy_gib_s = 16;
  return r;
}

TEST(Placement, SplitsTheKvOverTheTiersAndPredictsTheStep) {
  // 128k tokens: 144 KiB a token, 18 GiB; 4 GiB arena, 6 GiB host, 8 GiB on disk.
  PlacementPlan p;
  ASSERT_TRUE(plan_placement(qwen3vl_8b(131072, 4, 6), disk_at(2048), &p).ok());
  EXPECT_EQ(p.unit_bytes, 64 * 1024);
  EXPECT_EQ(p.units, 36 * 8192);
  EXPECT_DOUBLE_EQ(p.total_gib, 18.0);
  EXPECT_DOUBLE_EQ(p.device_gib, 4.0);
  EXPECT_DOUBLE_EQ(p.host_gib, 6.0);
  EXPECT_DOUBLE_EQ(p.disk_gib, 8.0);
  EXPECT_TRUE(p.fits);
  // 6 GiB at 16 GiB/s + 8 GiB at 2 GiB/s.
  EXPECT_NEAR(p.predicted_transfer_ms, 375.0 + 4000.0, 1e-6);
  EXPECT_EQ(p.config.arena_blocks, p.device_units);
  EXPECT_EQ(p.config.host_blocks, p.host_units);
  EXPECT_EQ(p.config.disk_blocks, p.units);
  EXPECT_NE(p.to_string().find("18.00 GiB"), std::string::npos) << p.to_string();

  // Everything in the arena: nothing moves, no disk needed (not even a probe).
  ASSERT_TRUE(plan_placement(qwen3vl_8b(8192, 4, 0), MachineProbe{}, &p).ok());
  EXPECT_EQ(p.disk_units, 0);
  EXPECT_EQ(p.config.disk_blocks, 0);
  EXPECT_EQ(p.predicted_transfer_ms, 0.0);
}

TEST(Placement, AnArenaSmallerThanOneLayerDoesNotFit) {
  PlacementPlan p;
  PlacementRequest r = qwen3vl_8b(131072, 0, 64);
  r.device_budget_bytes = 100 << 20;  // one layer reads 512 MiB
  ASSERT_TRUE(plan_placement(r, disk_at(1000), &p).ok());
  EXPECT_FALSE(p.fits);
  EXPECT_NE(p.why_not.find("8192 blocks"), std::string::npos) << p.why_not;
}

TEST(Placement, BadRequestsNameTheField) {
  PlacementPlan p;
  PlacementRequest r = qwen3vl_8b(0, 4, 0);
  Status st = plan_placement(r, disk_at(1000), &p);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("context = 0"), std::string::npos) << st.to_string();
  r = qwen3vl_8b(1024, 4, 0);
  r.host_budget_bytes = -1;
  st = plan_placement(r, disk_at(1000), &p);
  EXPECT_NE(st.message().find("host_budget_bytes = -1"), std::string::npos) << st.to_string();
  r = qwen3vl_8b(131072, 1, 0);  // needs the disk, which was never probed
  st = plan_placement(r, MachineProbe{}, &p);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("disk_read_mib_s"), std::string::npos) << st.to_string();
  EXPECT_EQ(plan_placement(r, disk_at(1), nullptr).code(), StatusCode::kNullPointer);
}

TEST(Placement, TheDiskProbeIsMeasuredOnceThenCached) {
  const std::string dir = std::string(QWEN3VL_TEST_DISK_DIR) + "/placement_probe";
  std::filesystem::remove_all(dir);
  MachineProbe first, second;
  ASSERT_TRUE(probe_machine(dir, false, &first).ok());
  EXPECT_FALSE(first.from_cache);
  EXPECT_GT(first.disk_read_mib_s, 0);
  EXPECT_GT(first.disk_write_mib_s, 0);
  EXPECT_GT(first.disk_alignment, 0u);
  EXPECT_GT(first.ram_total_bytes, 0);
  ASSERT_TRUE(probe_machine(dir, false, &second).ok());
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.disk_alignment, first.disk_alignment);
  EXPECT_NEAR(second.disk_read_mib_s, first.disk_read_mib_s, 1e-3 * first.disk_read_mib_s);
  EXPECT_EQ(second.disk_engine, first.disk_engine);
  EXPECT_FALSE(std::filesystem::exists(dir + "/qwen3vl-disk-probe.slots"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qwen3vl::lifecycle
