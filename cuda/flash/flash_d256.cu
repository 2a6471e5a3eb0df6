// Flash kernel instantiations for head_dim 256.
#include "flash_kernel.cuh"

QWEN3VL_FLASH_INSTANTIATE(256)
