// qwen3vl-attn-bench plan: the placement plan for a model's KV at a context and memory budgets on
// this machine (probe_machine + plan_placement): which tier holds what and the predicted transfer
// time of a decode step.
#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"
#include "qwen3vl/lifecycle/placement.hpp"

namespace qwen3vl::bench {
namespace {

// "6GiB", "512MiB", "1.5G", "4096" (bytes): the size in bytes, or -1.
int64_t parse_size(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return -1;
  }
  std::string unit = text.substr(used);
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  double scale = 1;
  if (unit == "k" || unit == "kib")
    scale = 1024.0;
  else if (unit == "m" || unit == "mib")
    scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "b")
    return -1;
  if (!(v >= 0) || v * scale > 9.0e18) return -1;
  return static_cast<int64_t>(v * scale);
}

}  // namespace

int plan_routine(const std::vector<std::string>& args) {
  lifecycle::PlacementRequest r;
  r.layers = 36;
  r.kv_heads = 8;
  r.head_dim = 128;
  r.context = 131072;
  r.device_budget_bytes = int64_t{6} << 30;
  std::string disk_dir = "tiered-store";
  bool remeasure = false;
  ArgParser parser("plan",
                   R"(Where a model's KV would live at a context and budgets on this machine:
the compute arena (--gpu-budget: GPU memory, or RAM on a CPU build), the host store
(--host-budget), the rest on the disk under --disk-dir; and the predicted transfer time of a
decode step. The disk is probed once (64 MiB through the FileStore) and the figures cached in
--disk-dir. Sizes take B, KiB, MiB, GiB, TiB (or K, M, G, T).)");
  parser.add_int("--layers", &r.layers, 1, 4096, "layers");
  parser.add_int("--kv-heads", &r.kv_heads, 1, 1024, "KV heads");
  parser.add_int("--head-dim", &r.head_dim, 1, 1024, "head dim");
  parser.add_int("--context", &r.context, 1, int64_t(1) << 31, "tokens per sequence");
  parser.add_int("--batch", &r.batch, 1, 1 << 20, "sequences");
  parser.add_int("--block", &r.block_size, 16, 4096, "tokens per block");
  parser.add_dtype("--dtype", &r.dtype, {DType::kF32, DType::kF16, DType::kBF16}, "KV dtype");
  const auto size_flag = [](int64_t* target) {
    return [target](const std::string& flag, const std::string& value) {
      const int64_t v = parse_size(value);
      if (v < 0)
        return make_error(StatusCode::kInvalidArgument, flag, " = '", value,
                          "': expected a size such as 6GiB, 512MiB or 4096");
      *target = v;
      return Status();
    };
  };
  parser.add_custom("--gpu-budget", "SIZE", "the compute arena budget (default 6GiB)",
                    size_flag(&r.device_budget_bytes));
  parser.add_custom("--host-budget", "SIZE", "the host store budget (default 0)",
                    size_flag(&r.host_budget_bytes));
  parser.add_number("--host-gib-s", &r.host_copy_gib_s, 0, 1e4,
                    "host-to-arena copy rate for the prediction (0: 12 GiB/s)");
  parser.add_string("--disk-dir", &disk_dir, "DIR", "where the slot file would go");
  parser.add_switch("--remeasure", &remeasure, "probe the disk again instead of the cache");
  return run_routine(parser, args, [&](Report& report) {
    lifecycle::MachineProbe machine;
    throw_if_error(lifecycle::probe_machine(disk_dir, remeasure, &machine));
    const HardwareInfo& hw = HardwareInfo::current();
    if (!hw.gpus.empty()) machine.gpu_total_bytes = hw.gpus.front().global_memory_bytes;
    lifecycle::PlacementPlan p;
    throw_if_error(lifecycle::plan_placement(r, machine, &p));
    std::printf("machine: %s\nplan: %s\n", machine.to_string().c_str(), p.to_string().c_str());
    if (p.fits)
      std::printf(
          "run it: qwen3vl-attn-bench tiered --layers %lld --kv-heads %lld --head-dim %lld "
          "--context %lld --arena-mib %.0f --host-mib %.0f --disk-dir %s\n",
          static_cast<long long>(r.layers), static_cast<long long>(r.kv_heads),
          static_cast<long long>(r.head_dim), static_cast<long long>(r.context),
          p.device_gib * 1024, p.host_gib * 1024, disk_dir.c_str());
    report.add({{"layers", r.layers},
                {"context", r.context},
                {"total_gib", p.total_gib},
                {"arena_gib", p.device_gib},
                {"host_gib", p.host_gib},
                {"disk_gib", p.disk_gib},
                {"step_disk_gib", p.step_disk_gib},
                {"predicted_transfer_ms", p.predicted_transfer_ms},
                {"fits", p.fits ? 1 : 0},
                {"disk_read_mib_s", machine.disk_read_mib_s},
                {"machine", machine.to_string()}});
    return p.fits ? 0 : 1;
  });
}

}  // namespace qwen3vl::bench
