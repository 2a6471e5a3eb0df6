// Flash kernel instantiations for head_dim given at run time (any <= 256).
#include "flash_kernel.cuh"

QWEN3VL_FLASH_INSTANTIATE(0)
