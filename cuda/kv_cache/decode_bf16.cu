// CUDA decode kernels for bf16 KV storage (every lane configuration, paged and contiguous).
#include "decode_kernel.cuh"
#include "decode_mma.cuh"

namespace qwen3vl::detail {
template Status launch_decode<qwen3vl::bfloat16>(const DecodeArgs& args, cudaStream_t stream);
template Status launch_decode_mma<qwen3vl::bfloat16>(const DecodeArgs& args, cudaStream_t stream);
template bool decode_mma_compiled<qwen3vl::bfloat16>();
}  // namespace qwen3vl::detail
