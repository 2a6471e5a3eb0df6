// FlashAttention-2: the fused forward pass (query blocks outside, K/V blocks streamed inside,
// online softmax), O(n) memory. The variant most prefill calls should run; it never returns the
// attention weights.
#pragma once

#include <memory>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

// CPU: oneTBB over (sequence, KV head, query block), heaviest blocks first under causal masks;
// per-ISA register-blocked micro-kernels (AVX2, AVX-512, scalar). The workspace is
// threads x one tile, independent of the sequence length. Fails (Status) if the requested ISA is
// not available on this CPU. Takes params.q_positions, and params.block_layout, whose listed key
// blocks are then the only ones visited (variants/block_sparse.hpp; the workspace adds the
// layout's longest list of column runs per thread).
Status create_flash2_cpu(const CpuOptions& options, std::unique_ptr<Attention>* out);

}  // namespace qwen3vl
