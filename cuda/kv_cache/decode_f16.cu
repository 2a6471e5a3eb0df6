// CUDA decode kernels for f16 KV storage (every lane configuration, paged and contiguous).
#include "decode_kernel.cuh"
#include "decode_mma.cuh"

namespace qwen3vl::detail {
template Status launch_decode<qwen3vl::half>(const DecodeArgs& args, cudaStream_t stream);
template Status launch_decode_mma<qwen3vl::half>(const DecodeArgs& args, cudaStream_t stream);
template bool decode_mma_compiled<qwen3vl::half>();
}  // namespace qwen3vl::detail
