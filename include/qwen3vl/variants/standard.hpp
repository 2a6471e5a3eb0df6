// Standard attention: scores materialised per (sequence, head), softmax, then P V. The only variant
// that can return the attention weights; the baseline the fused kernels are measured against.
#pragma once

#include <memory>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

// CPU: Eigen GEMMs per (sequence, query head), oneTBB over (sequence, head). Fails (Status) if the
// requested ISA is not available on this CPU.
Status create_standard_cpu(const CpuOptions& options, std::unique_ptr<Attention>* out);

}  // namespace qwen3vl
