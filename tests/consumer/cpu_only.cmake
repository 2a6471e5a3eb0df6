# Builds and runs the CPU-only consumer (cpu_only/) against the installed package with the CUDA
# toolkit and Eigen hidden from find_package, then checks the consumer's link line: it must link
# the CPU library and name no CUDA library (cudart, cublas, cublasLt, libcuda), also when the
# package was built with CUDA.
# cmake -DSOURCE=<cpu_only dir> -DBINARY=<dir> -DPREFIX=<install prefix> -DGENERATOR=<generator>
#       -DMAKE_PROGRAM=<path> -DCONFIG=<config> -DCXX=<compiler> [-DOPTIONS=<a|b|...>] -P cpu_only.cmake
cmake_minimum_required(VERSION 3.25)
string(REPLACE "|" ";" _options "${OPTIONS}")
file(REMOVE_RECURSE "${BINARY}")  # a fresh tree, so the build below links (and prints the link)

execute_process(
  COMMAND "${CMAKE_COMMAND}" --no-warn-unused-cli -S "${SOURCE}" -B "${BINARY}" -G "${GENERATOR}"
          "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}" "-DCMAKE_BUILD_TYPE=${CONFIG}"
          "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_PREFIX_PATH=${PREFIX}"
          -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
          -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON -DCMAKE_DISABLE_FIND_PACKAGE_CUDA=ON
          -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON ${_options}
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "configuring the CPU-only consumer failed (${_rc})")
endif()

execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BINARY}" --config "${CONFIG}" --verbose
                OUTPUT_VARIABLE _out ERROR_VARIABLE _out RESULT_VARIABLE _rc)
message("${_out}")
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "building the CPU-only consumer failed (${_rc})")
endif()

# The link command: the one that names the CPU library.
string(REPLACE "\n" ";" _lines "${_out}")
set(_link "")
foreach(_line IN LISTS _lines)
  if(_line MATCHES "qwen3vl_attention_cpu\\.(a|lib)")
    set(_link "${_line}")
  endif()
endforeach()
if(_link STREQUAL "")
  message(FATAL_ERROR "no link line naming libqwen3vl_attention_cpu in the build output")
endif()
if(_out MATCHES "(cudart|cublas|libcuda\\.|[-/]lcuda( |$))")
  message(FATAL_ERROR "the CPU-only consumer's build names a CUDA library (${CMAKE_MATCH_1})")
endif()
message(STATUS "link line without CUDA: ${_link}")

set(_program "${BINARY}/consumer")
if(EXISTS "${BINARY}/${CONFIG}/consumer")  # multi-config generators
  set(_program "${BINARY}/${CONFIG}/consumer")
endif()
execute_process(COMMAND "${_program}" RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "the CPU-only consumer failed (${_rc})")
endif()
