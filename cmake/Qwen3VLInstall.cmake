# The CMake package: headers, libraries, qwen3vl_attentionTargets, a config and a version file.
include(CMakePackageConfigHelpers)
set(QWEN3VL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/qwen3vl_attention)

set(_targets qwen3vl_attention_core qwen3vl_attention_cpu qwen3vl_attention)
if(QWEN3VL_WITH_CUDA)
  list(APPEND _targets qwen3vl_attention_cuda)
endif()
install(TARGETS ${_targets} EXPORT qwen3vl_attentionTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/qwen3vl DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT qwen3vl_attentionTargets NAMESPACE qwen3vl:: DESTINATION ${QWEN3VL_CMAKE_DIR})
# The same names for builds that use this tree directly.
export(EXPORT qwen3vl_attentionTargets NAMESPACE qwen3vl::
       FILE ${PROJECT_BINARY_DIR}/qwen3vl_attentionTargets.cmake)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qwen3vl_attentionConfig.cmake.in
  ${PROJECT_BINARY_DIR}/qwen3vl_attentionConfig.cmake INSTALL_DESTINATION ${QWEN3VL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qwen3vl_attentionConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qwen3vl_attentionConfig.cmake
              ${PROJECT_BINARY_DIR}/qwen3vl_attentionConfigVersion.cmake
        DESTINATION ${QWEN3VL_CMAKE_DIR})
