// Portability macros shared by every public header (C++17, g++/clang/nvcc).
#pragma once

#if defined(__CUDACC__)
#define QWEN3VL_HOST_DEVICE __host__ __device__
#else
#define QWEN3VL_HOST_DEVICE
#endif

#define QWEN3VL_VERSION_MAJOR 0
#define QWEN3VL_VERSION_MINOR 1
#define QWEN3VL_VERSION_PATCH 0
