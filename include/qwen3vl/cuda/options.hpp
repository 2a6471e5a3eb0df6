// Options shared by the CUDA variants. Plain declarations: no CUDA header needed to include it.
#pragma once

namespace qwen3vl {

// CUDA decode's tensor-core kernel (sm_80+, f16 / bf16 with D % 16 == 0 <= 128). The defaults are
// the fastest measured; the others exist to compare against them.
struct CudaDecodeOptions {
  bool tensor_cores = true;  // false: the CUDA-core kernel everywhere
  int mma_warps = 8;         // warps a block: 8, or 4 (two blocks a multiprocessor)
  int mma_kv_heads = 1;      // at most this many KV heads a block: 1..mma_warps
};

struct CudaOptions {
  int device = -1;  // CUDA device ordinal; -1: the device current when the variant is created
  CudaDecodeOptions decode;  // read by create_decode_cuda only
};

}  // namespace qwen3vl
