// The CUDA variants (built when the library has its CUDA backend, target qwen3vl::attention_cuda).
// Every object is bound to one device; forward() launches on the caller's stream, allocates nothing
// and never synchronises, so it can be captured in a CUDA graph. All tensors (cu_seqlens and
// key_lengths too) must be device memory of that device; the workspace too (see workspace_size()).
#pragma once

#include <memory>

#include "qwen3vl/cuda/options.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "qwen3vl/variants/sm61_tiled.hpp"
#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl {

// Standard attention on CUDA: scores materialised (in `weights` when given, else in the workspace),
// a row softmax, then P V. The only CUDA variant that returns the attention weights.
Status create_standard_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out);

// FlashAttention-2 style fused forward in fp32 arithmetic with the generic tile configuration; on
// a device whose shared memory per block is too small for it (e.g. sm_61, sm_75) it falls back to
// the compact (sm61) tiles and says so in describe().
Status create_flash2_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out);

// Block-sparse attention (variants/block_sparse.hpp) on CUDA: the flash2 kernels walking
// params.block_layout (required, device memory), whose K/V loop visits only the listed key blocks.
// flash2 and sm61_tiled run the same kernels, so they take q_positions and a layout too.
Status create_block_sparse_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out);

// Linear attention (variants/linear.hpp) on CUDA: elu+1 or Performer features, the chunked form
// (chunk 64 only) in four launches; the workspace holds phi(Q), phi(K) and one F x (D + 1) state
// per (sequence, KV head, chunk) (O(L F D / 64)). D <= 256; Performer F <= 4096.
Status create_linear_cuda(const CudaOptions& options, const LinearConfig& config,
                          std::unique_ptr<LinearAttention>* out);
Status create_linear_cuda(const CudaOptions& options, const LinearConfig& config,
                          std::unique_ptr<Attention>* out);

// Mixture-of-heads (variants/mixture_of_heads.hpp) on CUDA: routing, gather and scatter kernels
// around the CUDA flash2 object, called once per query head on its gathered rows, side by side on 8
// internal streams forked from and joined to the caller's (max_seqlen_q is bounded by the token
// count: the host never reads the counts). One forward at a time per object. Routing tensors are
// device memory; their values are not checked there (a head listed twice counts once, an index out
// of range is ignored).
Status create_mixture_of_heads_cuda(const CudaOptions& options, const MoHConfig& config,
                                    std::unique_ptr<MixtureOfHeadsAttention>* out);
Status create_mixture_of_heads_cuda(const CudaOptions& options, const MoHConfig& config,
                                    std::unique_ptr<Attention>* out);

// Dynamic sparse prefill (variants/dynamic_sparse.hpp) on CUDA. Block top-k and vertical-slash:
// kernels writing one layout per (sequence, KV head) into the device workspace (no host sync, no
// q_positions), then the block-sparse object. Exact top-k: the standard variant's probabilities
// (workspace O(B Hq Lq Lk); fixed-length batches only) thresholded per row, then P V over the kept
// keys. last_density() is -1 (it would need a host sync).
Status create_dynamic_sparse_cuda(const CudaOptions& options, const DynamicSparseConfig& config,
                                  std::unique_ptr<DynamicSparseAttention>* out);
Status create_dynamic_sparse_cuda(const CudaOptions& options, const DynamicSparseConfig& config,
                                  std::unique_ptr<Attention>* out);

// Static sparse patterns (variants/static_sparse.hpp) on CUDA, over the block-sparse object: the
// layout of each (device, max_q, max_k, Hkv) is built on the host and copied to the device once, by
// the first call for that shape (cudaMalloc and a synchronous copy: that call syncs the host);
// later calls allocate nothing and copy nothing. Up to 8 shapes are kept; an evicted copy is freed
// when no call uses it (cudaFree waits for the device). describe() gives block counts, not density.
Status create_static_sparse_cuda(const CudaOptions& options, const StaticSparseConfig& config,
                                 std::unique_ptr<Attention>* out);

// The compute capability (major, minor) of a device; (-1: the current one). kDeviceError when no
// CUDA device can be used.
Status cuda_compute_capability(int device, int* major, int* minor);

}  // namespace qwen3vl
