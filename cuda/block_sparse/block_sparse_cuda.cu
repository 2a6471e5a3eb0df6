// Block-sparse attention on CUDA: the flash kernel with a BSR layout. The same kernels as flash2
// (no other instantiation): their K/V loop walks the layout's column blocks (flash/key_walk.cuh),
// so the time falls with the density; token-level masks still apply inside visited blocks.
#include "cuda/flash/flash_registry.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"

namespace qwen3vl {

Status create_block_sparse_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out) {
  return detail::flash::create_flash_attention(Variant::kBlockSparse, options, out);
}

}  // namespace qwen3vl
