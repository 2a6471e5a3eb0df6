// Placement for the tiered KV store: what the machine offers (a probe of memory and of the disk
// the slot file would live on, measured once and cached beside it) and a PlacementPlan that splits
// a model's KV over the compute arena, the host store and the disk for a context and budgets, and
// predicts what each decode step moves and how long the compute waits for it.
#pragma once

#include <cstdint>
#include <string>

#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/lifecycle/tiered_kv.hpp"

namespace qwen3vl::lifecycle {

struct MachineProbe {
  int64_t ram_total_bytes = 0, ram_available_bytes = 0;  // /proc/meminfo
  // The first CUDA device's memory; probe_machine leaves it 0 (this library part has no CUDA):
  // fill it from HardwareInfo::current().gpus.
  int64_t gpu_total_bytes = 0;
  std::string disk_dir;       // where the probe ran
  size_t disk_alignment = 0;  // the file system's direct-I/O alignment (0: not probed)
  std::string disk_engine;    // the FileStore engine the probe ran
  double disk_read_mib_s = 0, disk_write_mib_s = 0;  // 64 KiB slots, queue depth 16
  bool from_cache = false;  // the disk figures were read from the cache file, not measured now
  std::string to_string() const;
};

// RAM from the OS; with disk_dir, the disk's direct-I/O alignment and a ~64 MiB
// write and read probe through a FileStore there, cached in disk_dir/qwen3vl-disk-probe.txt
// (remeasure drops the cache). Errors: kIoError where disk_dir cannot hold the probe file.
[[nodiscard]] Status probe_machine(const std::string& disk_dir, bool remeasure, MachineProbe* out);

struct PlacementRequest {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  DType dtype = DType::kF16;
  int64_t block_size = 16;
  int64_t batch = 1;
  int64_t context = 0;              // tokens per sequence
  int64_t device_budget_bytes = 0;  // the compute arena (GPU memory, or RAM on a CPU build)
  int64_t host_budget_bytes = 0;    // the host store
  // Host-to-arena copy rate for the prediction (GiB/s): PCIe on a GPU machine, memcpy on a CPU
  // one. 0: 12 GiB/s (a PCIe 3 x16 link's measured rate; memcpy is faster).
  double host_copy_gib_s = 0;
};

struct PlacementPlan {
  int64_t unit_bytes = 0;  // one layer's K and V of one block
  int64_t units = 0;       // layers x blocks
  int64_t device_units = 0, host_units = 0, disk_units = 0;
  double total_gib = 0, device_gib = 0, host_gib = 0, disk_gib = 0;
  // A decode step reads every unit once, layer by layer: a cyclic schedule, so the arena keeps a
  // fixed share (schedule-driven eviction) and the rest comes from the host store, then the disk.
  // Clean disk copies make the evictions free, so the disk is read only.
  double step_host_gib = 0, step_disk_gib = 0;
  double predicted_transfer_ms = 0;  // host / host_copy_gib_s + disk / disk_read_mib_s
  bool fits = false;                 // one layer's blocks fit in the arena (admission)
  std::string why_not;               // when !fits
  TieredKvConfig config;             // layers, geometry and the three capacities
  std::string to_string() const;
};

// Errors: kInvalidArgument naming the field (sizes < 1, a negative budget, a zero disk rate when
// the plan needs the disk).
[[nodiscard]] Status plan_placement(const PlacementRequest& request, const MachineProbe& machine,
                                    PlacementPlan* out);

}  // namespace qwen3vl::lifecycle
