// The whole machine: the CPU (detected by the core library) and the CUDA devices (by the CUDA
// library when built, else none).
#include <sstream>

#include "qwen3vl/hardware/hardware_info.hpp"

namespace qwen3vl {

HardwareInfo HardwareInfo::detect() {
  HardwareInfo info;
  info.cpu = CpuInfo::detect();
  info.gpus = detect_gpus();
  return info;
}

const HardwareInfo& HardwareInfo::current() {
  static const HardwareInfo info = detect();
  return info;
}

std::string HardwareInfo::to_string() const {
  std::ostringstream os;
  os << cpu.to_string();
  if (gpus.empty()) os << "gpu: none\n";
  for (const GpuInfo& g : gpus)
    os << "gpu " << g.index << ": " << g.name << ", sm_" << g.sm_major << g.sm_minor << ", "
       << g.multiprocessors << " SMs, " << (g.global_memory_bytes >> 20) << " MiB, "
       << (g.shared_memory_per_block >> 10) << " KiB shared/block\n";
  return os.str();
}

}  // namespace qwen3vl
