// Flash kernel instantiations for head_dim 64.
#include "flash_kernel.cuh"

QWEN3VL_FLASH_INSTANTIATE(64)
