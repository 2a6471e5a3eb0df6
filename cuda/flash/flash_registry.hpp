// The compiled flash kernels, by tile configuration and head_dim (host side; no kernel code here).
// Fast paths exist for the head_dims of QWEN3VL_FLASH_HEAD_DIMS (cuda/CMakeLists.txt); every other
// head_dim <= 256 runs the run-time head_dim instantiation (D = 0).
#pragma once

#include <cstddef>
#include <memory>

#include "cuda/common/kernel_args.hpp"
#include "flash_head_dims.hpp"
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

// Defined in flash_kernel.cuh, instantiated in the generated flash_d<D>.cu.
template <TileConfig C, int D>
KernelInfo kernel_info();

constexpr int kFastHeadDims[] = {QWEN3VL_FLASH_HEAD_DIMS};
constexpr int kFastHeadDimCount = static_cast<int>(sizeof(kFastHeadDims) / sizeof(int));
// Kernel slots of an object: one per fast head_dim, then the run-time head_dim one.
constexpr int kHeadDimSlots = kFastHeadDimCount + 1;

// The slot of `head_dim`: its fast path's index, else the last slot (any head_dim <= 256).
inline int slot_of(int head_dim) {
  for (int i = 0; i < kFastHeadDimCount; ++i)
    if (kFastHeadDims[i] == head_dim) return i;
  return kFastHeadDimCount;
}
// The head_dim the kernel of `slot` is compiled for (0: any).
inline int slot_head_dim(int slot) { return slot < kFastHeadDimCount ? kFastHeadDims[slot] : 0; }

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
