# Optional CUDA backend. QWEN3VL_CUDA=AUTO builds it when a CUDA compiler is found, ON requires it,
# OFF skips it. Sets QWEN3VL_WITH_CUDA. Default architectures: 75;80;90 (SASS) plus compute_90 PTX;
# with CUDA <= 12, Pascal's 60;61 (SASS) plus compute_60 PTX (the P100, sm_60, cannot run
# compute_61 PTX), 75 and 80. Pascal needs CUDA <= 12: CUDA 13 dropped offline compilation below
# sm_75.
set(QWEN3VL_WITH_CUDA OFF)
if(QWEN3VL_CUDA STREQUAL "OFF")
  return()
endif()
if(NOT QWEN3VL_CUDA MATCHES "^(AUTO|ON)$")
  message(FATAL_ERROR "QWEN3VL_CUDA = '${QWEN3VL_CUDA}': allowed AUTO, ON, OFF")
endif()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(QWEN3VL_CUDA STREQUAL "ON")
    message(FATAL_ERROR "QWEN3VL_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
  message(STATUS "qwen3vl: no CUDA compiler found; building the CPU backend only")
  return()
endif()

# The toolkit version comes from the compiler that will be used, before enable_language.
execute_process(COMMAND ${CMAKE_CUDA_COMPILER} --version OUTPUT_VARIABLE _nvcc_version)
string(REGEX MATCH "release ([0-9]+)\\.([0-9]+)" _ "${_nvcc_version}")
set(_cuda_major ${CMAKE_MATCH_1})

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  if(_cuda_major GREATER_EQUAL 13)
    set(CMAKE_CUDA_ARCHITECTURES "75-real;80-real;90-real;90-virtual")
  else()
    set(CMAKE_CUDA_ARCHITECTURES "60-real;61-real;60-virtual;75-real;80-real")
  endif()
endif()
foreach(_arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
  string(REGEX MATCH "^[0-9]+" _num "${_arch}")
  if(_num AND _num LESS 75 AND _cuda_major GREATER_EQUAL 13)
    message(FATAL_ERROR
      "CMAKE_CUDA_ARCHITECTURES contains ${_arch}, but CUDA ${_cuda_major} cannot compile below sm_75. "
      "Build Pascal (sm_60, sm_61) with CUDA <= 12, for example Debian's CUDA 11.8 (nvidia-cuda-toolkit): "
      "see the 'sm61' preset and scripts/build-sm61.sh.")
  endif()
endforeach()

enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
include(Qwen3VLCudaHeaders)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(QWEN3VL_WITH_CUDA ON)
message(STATUS "qwen3vl: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
