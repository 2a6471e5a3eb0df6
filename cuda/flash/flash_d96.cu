// Flash kernel instantiations for head_dim 96.
#include "flash_kernel.cuh"

QWEN3VL_FLASH_INSTANTIATE(96)
