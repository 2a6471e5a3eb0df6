// The SM61-tiled variant: the fused flash kernel with tiles chosen for Pascal (sm_61: at most 48 KB
// of shared memory per block so that two blocks share an SM, 4x4 register-blocked outputs per
// thread, warp-shuffle row reductions, exp2 with log2(e) folded into the scale, fp32 arithmetic).
// The same kernel template as flash2, with another tile configuration; it runs on every CUDA device
// built.
#pragma once

#include <memory>

#include "qwen3vl/cuda/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

// Fails (Status) when this build has no CUDA backend or the device cannot be used.
Status create_sm61_tiled_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out);

}  // namespace qwen3vl
