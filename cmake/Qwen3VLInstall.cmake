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
