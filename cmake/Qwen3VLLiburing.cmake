# liburing for the file block store's io_uring engine (src/lifecycle), found with pkg-config.
# QWEN3VL_LIBURING=AUTO uses it when found, ON requires it, OFF leaves the thread-pool engine
# alone. Sets QWEN3VL_WITH_LIBURING and, when on, the imported target PkgConfig::QWEN3VL_URING
# (the package config recreates it for consumers, since the static core library links it).
set(QWEN3VL_WITH_LIBURING OFF)
if(NOT QWEN3VL_LIBURING STREQUAL "OFF")
  find_package(PkgConfig)
  if(PkgConfig_FOUND)
    pkg_check_modules(QWEN3VL_URING IMPORTED_TARGET liburing)
  endif()
  if(QWEN3VL_URING_FOUND)
    set(QWEN3VL_WITH_LIBURING ON)
    message(STATUS "qwen3vl: io_uring engine on (liburing ${QWEN3VL_URING_VERSION})")
  elseif(QWEN3VL_LIBURING STREQUAL "ON")
    message(FATAL_ERROR "QWEN3VL_LIBURING=ON but pkg-config finds no liburing "
                        "(Debian: liburing-dev, see scripts/install-deps.sh)")
  else()
    message(STATUS "qwen3vl: io_uring engine off (no liburing); the file store uses threads")
  endif()
endif()
