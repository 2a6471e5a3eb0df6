// Block-sparse attention: the flash kernels with a BSR layout (params.block_layout, see
// core/block_layout.hpp). Their K/V loop walks the layout's column blocks instead of every key
// block, so the time falls with the density; token-level masks still apply inside visited blocks.
// Static patterns (variants/static_sparse.hpp) and dynamic routing (variants/dynamic_sparse.hpp)
// produce layouts and run through these objects.
#pragma once

#include <memory>
#include <string>

#include "qwen3vl/core/block_layout.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

// Fraction of the (query block, key block) pairs of layout l that the layout lists, over the
// NBq x NBk grid of a max_q x max_k problem (host-resident layouts only).
double block_layout_density(const BlockLayout& layout, int64_t max_q, int64_t max_k);

// CPU: forward() requires params.block_layout (host memory); everything else as flash2.
Status create_block_sparse_cpu(const CpuOptions& options, std::unique_ptr<Attention>* out);

}  // namespace qwen3vl
