# Guards against another toolkit's headers shadowing the CUDA compiler's own. Some machines link
# a newer CUDA's headers into /usr/local/include, which the host compiler searches before
# /usr/include, where Debian's CUDA 11.8 keeps its headers: nvcc 11.8 would then compile against
# CUDA 13's cuda_runtime.h. When that happens, a directory of links to the toolkit's own headers
# goes first on the include path.

# The first directory of a list that holds cuda_runtime_api.h ("" if none).
function(_qwen3vl_runtime_header_dir out)
  set(_found "")
  foreach(_dir IN LISTS ARGN)
    if(EXISTS "${_dir}/cuda_runtime_api.h")
      set(_found "${_dir}")
      break()
    endif()
  endforeach()
  set(${out} "${_found}" PARENT_SCOPE)
endfunction()
_qwen3vl_runtime_header_dir(_toolkit_include ${CUDAToolkit_INCLUDE_DIRS})
_qwen3vl_runtime_header_dir(_seen_include ${CMAKE_CUDA_IMPLICIT_INCLUDE_DIRECTORIES})

if(_toolkit_include AND _seen_include)
  file(REAL_PATH "${_toolkit_include}" _toolkit_real)
  file(REAL_PATH "${_seen_include}" _seen_real)
  file(REAL_PATH "${_seen_include}/cuda_runtime_api.h" _seen_header)
  file(REAL_PATH "${_toolkit_include}/cuda_runtime_api.h" _toolkit_header)
  if(NOT _seen_header STREQUAL _toolkit_header)
    set(_shadow ${PROJECT_BINARY_DIR}/cuda-toolkit-include)
    file(REMOVE_RECURSE ${_shadow})
    file(MAKE_DIRECTORY ${_shadow})
    file(GLOB _entries RELATIVE ${_seen_include} ${_seen_include}/*)
    foreach(_entry IN LISTS _entries)
      if(EXISTS "${_toolkit_include}/${_entry}")
        file(CREATE_LINK "${_toolkit_include}/${_entry}" "${_shadow}/${_entry}" SYMBOLIC)
      endif()
    endforeach()
    # Host C++ that includes CUDA headers (e.g. cuBLAS callers) needs the same order.
    include_directories(BEFORE SYSTEM ${_shadow})
    message(STATUS "qwen3vl: ${_seen_include} holds another CUDA's headers (${_seen_header}); "
                   "CUDA code uses the toolkit's own from ${_toolkit_include} via ${_shadow}")
  endif()
endif()
