# The CMake package: headers, libraries, a config and a version file, and one export set per part,
# so that a consumer loads (and finds the dependencies of) only the components it asks for:
#   qwen3vl_attention_coreTargets  qwen3vl::attention_core  (no dependencies)
#   qwen3vl_attention_cpuTargets   qwen3vl::attention_cpu   (oneTBB)           component cpu
#   qwen3vl_attention_cudaTargets  qwen3vl::attention_cuda  (the CUDA toolkit) component cuda
#   qwen3vl_attentionTargets       qwen3vl::attention, the umbrella over every backend built
include(CMakePackageConfigHelpers)
set(QWEN3VL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/qwen3vl_attention)

# qwen3vl_install_targets(<export set> <target>)
function(qwen3vl_install_targets export target)
  install(TARGETS ${target} EXPORT ${export}
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT ${export} NAMESPACE qwen3vl:: DESTINATION ${QWEN3VL_CMAKE_DIR})
  # The same names for builds that use this tree directly.
  export(EXPORT ${export} NAMESPACE qwen3vl:: FILE ${PROJECT_BINARY_DIR}/${export}.cmake)
endfunction()

qwen3vl_install_targets(qwen3vl_attention_coreTargets qwen3vl_attention_core)
qwen3vl_install_targets(qwen3vl_attention_cpuTargets qwen3vl_attention_cpu)
if(QWEN3VL_WITH_CUDA)
  qwen3vl_install_targets(qwen3vl_attention_cudaTargets qwen3vl_attention_cuda)
endif()
qwen3vl_install_targets(qwen3vl_attentionTargets qwen3vl_attention)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/qwen3vl DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qwen3vl_attentionConfig.cmake.in
  ${PROJECT_BINARY_DIR}/qwen3vl_attentionConfig.cmake INSTALL_DESTINATION ${QWEN3VL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qwen3vl_attentionConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qwen3vl_attentionConfig.cmake
              ${PROJECT_BINARY_DIR}/qwen3vl_attentionConfigVersion.cmake
        DESTINATION ${QWEN3VL_CMAKE_DIR})

# pkg-config: lib/pkgconfig/qwen3vl-attention.pc, relocatable (its prefix is found from the file's
# own place, so `cmake --install --prefix` anywhere works). The libraries are static, so their
# private links go into Libs / Requires, not the .private fields a plain `--libs` leaves out.
set(QWEN3VL_PC_PREFIX ${CMAKE_INSTALL_PREFIX})
if(NOT IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(QWEN3VL_PC_PREFIX "\${pcfiledir}")  # up from <libdir>/pkgconfig to the prefix
  string(REPLACE "/" ";" _qwen3vl_parts "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  foreach(_qwen3vl_part IN LISTS _qwen3vl_parts)
    string(APPEND QWEN3VL_PC_PREFIX "/..")
  endforeach()
endif()
foreach(_qwen3vl_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_qwen3vl_dir}}")
    set(QWEN3VL_PC_${_qwen3vl_dir} "${CMAKE_INSTALL_${_qwen3vl_dir}}")
  else()
    set(QWEN3VL_PC_${_qwen3vl_dir} "\${prefix}/${CMAKE_INSTALL_${_qwen3vl_dir}}")
  endif()
endforeach()
set(QWEN3VL_PC_CFLAGS "")
set(QWEN3VL_PC_REQUIRES "")
set(QWEN3VL_PC_DEPS "oneTBB, threads")
set(QWEN3VL_PC_LIBS "-lqwen3vl_attention")
if(QWEN3VL_WITH_CUDA)
  string(APPEND QWEN3VL_PC_LIBS " -lqwen3vl_attention_cuda")
endif()
string(APPEND QWEN3VL_PC_LIBS " -lqwen3vl_attention_cpu -lqwen3vl_attention_core")
# oneTBB through its own .pc where pkg-config knows it, else the library CMake found.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(QWEN3VL_PC_TBB QUIET tbb)
endif()
if(QWEN3VL_PC_TBB_FOUND)
  list(APPEND QWEN3VL_PC_REQUIRES tbb)
else()
  get_target_property(_qwen3vl_tbb TBB::tbb LOCATION)
  get_filename_component(_qwen3vl_tbb_dir "${_qwen3vl_tbb}" DIRECTORY)
  string(APPEND QWEN3VL_PC_LIBS " -L${_qwen3vl_tbb_dir} -ltbb")
endif()
if(QWEN3VL_WITH_LIBURING)  # found through pkg-config (cmake/Qwen3VLLiburing.cmake)
  list(APPEND QWEN3VL_PC_REQUIRES liburing)
  string(APPEND QWEN3VL_PC_DEPS ", liburing")
endif()
string(APPEND QWEN3VL_PC_LIBS " -pthread")
if(QWEN3VL_WITH_CUDA)  # the umbrella's public definition; the CUDA runtime and cuBLAS (shared)
  string(APPEND QWEN3VL_PC_CFLAGS " -DQWEN3VL_WITH_CUDA=1")
  string(APPEND QWEN3VL_PC_LIBS " -L${CUDAToolkit_LIBRARY_DIR} -Wl,-rpath,${CUDAToolkit_LIBRARY_DIR}"
                                " -lcublas -lcudart")
  string(APPEND QWEN3VL_PC_DEPS ", the CUDA runtime and cuBLAS")
endif()
list(JOIN QWEN3VL_PC_REQUIRES ", " QWEN3VL_PC_REQUIRES)
configure_file(${PROJECT_SOURCE_DIR}/cmake/qwen3vl-attention.pc.in
               ${PROJECT_BINARY_DIR}/qwen3vl-attention.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/qwen3vl-attention.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
