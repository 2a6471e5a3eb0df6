// GPU detection for builds without CUDA: there is nothing to see.
#include "qwen3vl/hardware/hardware_info.hpp"

namespace qwen3vl {
std::vector<GpuInfo> detect_gpus() { return {}; }
}  // namespace qwen3vl
