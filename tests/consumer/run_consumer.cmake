# Configures, builds and runs one consumer project; run with `cmake -P` by the consumer_* tests.
#   MODE=add_subdirectory  the consumer adds the cfutures source tree to its own build.
#   MODE=find_package      the already built cfutures tree is installed into a fresh prefix under
#                          WORK_DIR, and the consumer finds it there with find_package(CONFIG).
# The consumer is configured with the same compiler, flags and build type as cfutures itself.
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS MODE CFUTURES_SOURCE_DIR CFUTURES_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR
                     GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()

function(run_checked)
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "consumer ${MODE}: command failed (${result}): ${command}")
  endif()
endfunction()

set(build_dir "${WORK_DIR}/build")
set(config_args)
if(BUILD_TYPE)
  set(config_args --config "${BUILD_TYPE}")
endif()

set(configure_args
  -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
endif()

if(MODE STREQUAL "add_subdirectory")
  list(APPEND configure_args "-DCFUTURES_SOURCE_DIR=${CFUTURES_SOURCE_DIR}")
elseif(MODE STREQUAL "find_package")
  set(prefix "${WORK_DIR}/prefix")
  file(REMOVE_RECURSE "${prefix}")
  set(ENV{DESTDIR} "")
  run_checked("${CMAKE_COMMAND}" --install "${CFUTURES_BINARY_DIR}" --prefix "${prefix}"
              ${config_args})
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix}")
else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

# --fresh drops the previous cache (compiler or flags may have changed) but keeps the objects, so
# a rerun only recompiles what changed.
run_checked("${CMAKE_COMMAND}" --fresh -S "${CONSUMER_SOURCE_DIR}" -B "${build_dir}"
            ${configure_args})

if(MODE STREQUAL "find_package")
  # The package must come from the prefix just installed, not from anywhere else on the system.
  file(STRINGS "${build_dir}/CMakeCache.txt" found_dir REGEX "^cfutures_DIR:")
  string(REGEX REPLACE "^cfutures_DIR:[A-Z]+=" "" found_dir "${found_dir}")
  file(REAL_PATH "${found_dir}" found_dir)
  file(REAL_PATH "${prefix}" real_prefix)
  string(FIND "${found_dir}" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "consumer find_package: cfutures was found in '${found_dir}', "
                        "not under the test prefix '${real_prefix}'")
  endif()
endif()

run_checked("${CMAKE_COMMAND}" --build "${build_dir}" ${config_args})

set(program "${build_dir}/consumer")
if(NOT EXISTS "${program}" AND BUILD_TYPE)
  set(program "${build_dir}/${BUILD_TYPE}/consumer")
endif()
run_checked("${program}")
message(STATUS "consumer ${MODE}: built and ran ${program}")
