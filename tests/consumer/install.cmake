# Installs a build tree into a fresh prefix (nothing left from an earlier install).
# cmake -DBUILD_DIR=<dir> -DPREFIX=<dir> -DCONFIG=<config> -P install.cmake
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                        --config "${CONFIG}"
                COMMAND_ERROR_IS_FATAL ANY)
