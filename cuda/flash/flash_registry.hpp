// The compiled flash kernels, by tile configuration and head_dim (host side; no kernel code here).
// Fast paths exist for head_dim 64, 72, 80, 96, 128 and 256; every other head_dim <= 256 runs the
// run-time head_dim instantiation (D = 0).
#pragma once

#include <memory>

#include "../common/kernel_args.hpp"
#include "qwen3vl/cuda/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::detail::flash {

enum class TileConfig : int {
  kGeneric =
      0,  // sm_75+ with opt-in shared memory: 64x64 tiles, 8x4 scores / 8x8 outputs per thread
  kCompact = 1,  // sm_61: <= 48 KB shared memory per block so 2 blocks share an SM, 4x4 blocking
};

const char* to_string(TileConfig c);

struct KernelInfo {
  void (*kernel)(AttentionArgs) = nullptr;
  int threads = 0, block_m = 0, block_n = 0, smem_bytes = 0;
  int head_dim = 0;  // 0: any head_dim up to max_head_dim
  int max_head_dim = 0;
};

// Defined in flash_kernel.cuh, instantiated in flash_d<D>.cu.
template <TileConfig C, int D>
KernelInfo kernel_info();

constexpr int kFastHeadDims[] = {64, 72, 80, 96, 128, 256};

// The instantiation that runs `head_dim` in configuration `config`.
KernelInfo find_kernel(TileConfig config, int head_dim);

// The flash Attention object of `variant`: kFlash2, kSm61Tiled, or kBlockSparse (flash2's tiles,
// requires params.block_layout). All three walk a layout and take query positions.
Status create_flash_attention(Variant variant, const CudaOptions& options,
                              std::unique_ptr<Attention>* out);

// One launch of `flash` (a flash2 or sm61_tiled object from create_flash_attention) over every
// query head's gathered rows `g` against the keys of `p` (which passed flash.supports()): the
// mixture-of-heads path. No pointer queries, no allocation: capturable.
Status forward_gathered(const Attention& flash, const AttentionParams& p, const GatheredQueries& g,
                        void* stream);

}  // namespace qwen3vl::detail::flash
