// CUDA decode kernels for f32 KV storage (every lane configuration, paged and contiguous).
#include "decode_kernel.cuh"

namespace qwen3vl::detail {
template Status launch_decode<float>(const DecodeArgs& args, cudaStream_t stream);
}  // namespace qwen3vl::detail
