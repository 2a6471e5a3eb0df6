// The machine probe and the placement plan (include/qwen3vl/lifecycle/placement.hpp).
#include "qwen3vl/lifecycle/placement.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "qwen3vl/lifecycle/block_store.hpp"

namespace qwen3vl::lifecycle {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;
constexpr const char* kCacheName = "qwen3vl-disk-probe.txt";
constexpr int64_t kProbeSlotBytes = 64 * 1024;  // the tiered store's unit at 16 x 8 x 128 f16
constexpr int64_t kProbeSlots = 1024;           // 64 MiB

int64_t meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  int64_t kib = 0;
  std::string unit;
  while (in >> name >> kib) {
    std::getline(in, unit);
    if (name == key + ":") return kib * 1024;
  }
  return 0;
}

// The disk figures: (alignment, engine, read, write) from the cache, or measured and cached.
Status probe_disk(const std::string& dir, bool remeasure, MachineProbe* m) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string cache = dir + "/" + kCacheName;
  if (!remeasure) {
    std::ifstream in(cache);
    MachineProbe c;
    if (in >> c.disk_alignment >> c.disk_read_mib_s >> c.disk_write_mib_s &&
        std::getline(in >> std::ws, c.disk_engine) && c.disk_read_mib_s > 0) {
      m->disk_alignment = c.disk_alignment;
      m->disk_read_mib_s = c.disk_read_mib_s;
      m->disk_write_mib_s = c.disk_write_mib_s;
      m->disk_engine = c.disk_engine;
      m->from_cache = true;
      return Status();
    }
  }
  const std::string path = dir + "/qwen3vl-disk-probe.slots";
  std::unique_ptr<FileStore> store;
  QWEN3VL_RETURN_IF_ERROR(
      FileStore::create(path, kProbeSlotBytes, kProbeSlots, FileStoreOptions{}, &store));
  std::vector<unsigned char> buffer(static_cast<size_t>(kProbeSlotBytes * kProbeSlots), 0x5a);
  std::vector<IoRequest> requests(static_cast<size_t>(kProbeSlots));
  double rate[2] = {0, 0};
  for (IoOp op : {IoOp::kWrite, IoOp::kRead}) {
    for (int64_t i = 0; i < kProbeSlots; ++i) {
      IoRequest& r = requests[static_cast<size_t>(i)];
      r = IoRequest{};
      r.op = op;
      r.slot = i;
      r.buffer = buffer.data() + static_cast<size_t>(i * kProbeSlotBytes);
    }
    const auto t0 = std::chrono::steady_clock::now();
    QWEN3VL_RETURN_IF_ERROR(store->submit(requests.data(), requests.size()));
    QWEN3VL_RETURN_IF_ERROR(store->wait());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rate[op == IoOp::kRead] = static_cast<double>(kProbeSlotBytes * kProbeSlots) / kMiB / s;
  }
  m->disk_alignment = store->alignment();
  m->disk_engine = store->engine() == IoEngine::kIoUring ? "io_uring" : "thread pool";
  if (store->direct_io()) m->disk_engine += " + O_DIRECT";
  m->disk_write_mib_s = rate[0];
  m->disk_read_mib_s = rate[1];
  store.reset();
  std::filesystem::remove(path, ec);
  std::ofstream out(cache);
  out << m->disk_alignment << ' ' << m->disk_read_mib_s << ' ' << m->disk_write_mib_s << ' '
      << m->disk_engine << '\n';
  return Status();
}

}  // namespace

Status probe_machine(const std::string& disk_dir, bool remeasure, MachineProbe* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  MachineProbe m;
  m.ram_total_bytes = meminfo_bytes("MemTotal");
  m.ram_available_bytes = meminfo_bytes("MemAvailable");
  m.disk_dir = disk_dir;
  if (!disk_dir.empty()) QWEN3VL_RETURN_IF_ERROR(probe_disk(disk_dir, remeasure, &m));
  *out = m;
  return Status();
}

std::string MachineProbe::to_string() const {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  os << "RAM " << ram_total_bytes / kGiB << " GiB (" << ram_available_bytes / kGiB
     << " available); GPU "
     << (gpu_total_bytes ? std::to_string(gpu_total_bytes >> 20) + " MiB" : std::string("none"));
  if (!disk_dir.empty())
    os << "; disk at " << disk_dir << ": " << disk_engine << ", " << disk_alignment
       << " B alignment, read " << disk_read_mib_s << " MiB/s, write " << disk_write_mib_s
       << " MiB/s (64 KiB slots, qd 16" << (from_cache ? ", cached probe" : ", measured now")
       << ")";
  return os.str();
}

Status plan_placement(const PlacementRequest& r, const MachineProbe& machine, PlacementPlan* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  const std::pair<const char*, int64_t> sizes[] = {
      {"layers", r.layers},         {"kv_heads", r.kv_heads}, {"head_dim", r.head_dim},
      {"block_size", r.block_size}, {"batch", r.batch},       {"context", r.context}};
  for (const auto& [name, v] : sizes)
    if (v < 1 || v > (int64_t{1} << 31))
      return make_error(StatusCode::kInvalidArgument, "placement request: ", name, " = ", v,
                        ": allowed 1..2^31");
  if (!is_floating(r.dtype))
    return make_error(StatusCode::kInvalidArgument,
                      "placement request: dtype = ", qwen3vl::to_string(r.dtype),
                      ": allowed f32, f16, bf16");
  if (r.device_budget_bytes < 0 || r.host_budget_bytes < 0)
    return make_error(StatusCode::kInvalidArgument,
                      "placement request: device_budget_bytes = ", r.device_budget_bytes,
                      ", host_budget_bytes = ", r.host_budget_bytes, ": must be >= 0");
  if (r.host_copy_gib_s < 0)
    return make_error(StatusCode::kInvalidArgument,
                      "placement request: host_copy_gib_s = ", r.host_copy_gib_s,
                      ": must be >= 0 (0: the default)");
  PlacementPlan p;
  p.unit_bytes =
      2 * r.block_size * r.kv_heads * r.head_dim * static_cast<int64_t>(size_of(r.dtype));
  const int64_t blocks_per_seq = (r.context + r.block_size - 1) / r.block_size;
  const int64_t layer_units = blocks_per_seq * r.batch;
  p.units = layer_units * r.layers;
  p.device_units = std::min(p.units, r.device_budget_bytes / p.unit_bytes);
  p.host_units = std::min(p.units - p.device_units, r.host_budget_bytes / p.unit_bytes);
  p.disk_units = p.units - p.device_units - p.host_units;
  const auto gib = [&](int64_t units) { return static_cast<double>(units * p.unit_bytes) / kGiB; };
  p.total_gib = gib(p.units);
  p.device_gib = gib(p.device_units);
  p.host_gib = gib(p.host_units);
  p.disk_gib = gib(p.disk_units);
  p.fits = p.device_units >= layer_units;
  if (!p.fits)
    p.why_not = detail::concat("one layer reads ", layer_units, " blocks (", gib(layer_units),
                               " GiB) but the device budget holds ", p.device_units,
                               ": raise it to at least ", layer_units * p.unit_bytes, " bytes");
  // On a cyclic schedule the arena keeps device_units for good (schedule-driven eviction never
  // evicts a unit needed sooner than the one fetched), so each step reads the rest: the host
  // store's units from memory and the disk's from the disk.
  p.step_host_gib = p.host_gib;
  p.step_disk_gib = p.disk_gib;
  const double host_rate = r.host_copy_gib_s > 0 ? r.host_copy_gib_s : 12.0;
  if (p.disk_units > 0 && machine.disk_read_mib_s <= 0)
    return make_error(StatusCode::kInvalidArgument,
                      "machine.disk_read_mib_s = ", machine.disk_read_mib_s, ": the plan puts ",
                      p.disk_units,
                      " blocks on the disk; probe it first (probe_machine with a disk_dir)");
  p.predicted_transfer_ms =
      1e3 * (p.step_host_gib / host_rate +
             (p.disk_units > 0 ? p.step_disk_gib * 1024.0 / machine.disk_read_mib_s : 0.0));
  TieredKvConfig& c = p.config;
  c.layers = static_cast<int32_t>(r.layers);
  c.kv_heads = r.kv_heads;
  c.head_dim = r.head_dim;
  c.dtype = r.dtype;
  c.arena_blocks = p.device_units;
  c.host_blocks = p.host_units;
  // Every unit may land on the disk: an eviction needs a free slot below before its arena slot
  // frees, and clean copies keep the disk slots of blocks read up.
  c.disk_blocks = p.disk_units > 0 ? p.units : 0;
  *out = p;
  return Status();
}

std::string PlacementPlan::to_string() const {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << "KV " << total_gib << " GiB in " << units << " blocks of " << unit_bytes / 1024
     << " KiB: arena " << device_gib << " GiB (" << device_units << "), host " << host_gib
     << " GiB (" << host_units << "), disk " << disk_gib << " GiB (" << disk_units
     << "); a decode step reads " << step_host_gib << " GiB from the host and " << step_disk_gib
     << " GiB from the disk: predicted transfer " << predicted_transfer_ms << " ms a step";
  if (!fits) os << "; does not fit: " << why_not;
  return os.str();
}

}  // namespace qwen3vl::lifecycle
