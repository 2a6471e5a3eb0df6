# Builds and runs the API example (api_example.cpp) the way a Makefile user would, against the
# installed package's qwen3vl-attention.pc: one compiler call with
# `pkg-config --cflags --libs qwen3vl-attention`, nothing from CMake's package.
# cmake -DPKG_CONFIG=<pkg-config> -DPREFIX=<install prefix> -DLIBDIR=<lib dir, relative>
#       -DCXX=<compiler> -DSOURCE=<api_example.cpp> -DBINARY=<dir> [-DEXTRA=<a|b|...>]
#       -P pkg_config.cmake
cmake_minimum_required(VERSION 3.25)
string(REPLACE "|" ";" _extra "${EXTRA}")
set(_pc_dir "${PREFIX}/${LIBDIR}/pkgconfig")
if(NOT EXISTS "${_pc_dir}/qwen3vl-attention.pc")
  message(FATAL_ERROR "${_pc_dir}/qwen3vl-attention.pc was not installed")
endif()
# The installed file only: the prefix's pkgconfig dir ahead of the system's (oneTBB, liburing).
set(ENV{PKG_CONFIG_PATH} "${_pc_dir}")
execute_process(COMMAND "${PKG_CONFIG}" --validate qwen3vl-attention
                RESULT_VARIABLE _rc ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --validate qwen3vl-attention failed (${_rc}): ${_err}")
endif()
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs qwen3vl-attention
                OUTPUT_VARIABLE _flags ERROR_VARIABLE _err RESULT_VARIABLE _rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs qwen3vl-attention failed (${_rc}): ${_err}")
endif()
message(STATUS "pkg-config --cflags --libs qwen3vl-attention: ${_flags}")
foreach(_lib qwen3vl_attention qwen3vl_attention_cpu qwen3vl_attention_core)
  if(NOT " ${_flags} " MATCHES " -l${_lib} ")
    message(FATAL_ERROR "the flags do not link ${_lib}")
  endif()
endforeach()
separate_arguments(_flags UNIX_COMMAND "${_flags}")

file(REMOVE_RECURSE "${BINARY}")
file(MAKE_DIRECTORY "${BINARY}")
set(_program "${BINARY}/api_example")
execute_process(COMMAND "${CXX}" -std=c++17 -O1 ${_extra} "${SOURCE}" -o "${_program}" ${_flags}
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "compiling and linking with the pkg-config flags failed (${_rc}):\n${_out}")
endif()
execute_process(COMMAND "${_program}" RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
message("${_out}")
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "the API example built through pkg-config failed (${_rc})")
endif()
