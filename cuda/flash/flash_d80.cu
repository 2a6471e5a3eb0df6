// Flash kernel instantiations for head_dim 80.
#include "flash_kernel.cuh"

QWEN3VL_FLASH_INSTANTIATE(80)
