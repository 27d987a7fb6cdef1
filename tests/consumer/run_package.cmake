# Makes the Debian packages of the built tree with CPack, extracts them into a scratch root with
# `dpkg-deb -x` (nothing is installed into the system, no root needed), then builds and runs the
# program in tests/consumer/package/ twice against that root: found with find_package
# (CMAKE_PREFIX_PATH in the root) and compiled with the flags of `pkg-config --cflags --libs`.
# With WITH_MPI, the MPI package too, and consumer_mpi both ways, run under mpiexec -n 2.
# Run with `cmake -P` by the consumer_package test. The consumers use the same compiler, flags and
# build type as cfutures itself.
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS CPACK CPACK_CONFIG CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER DPKG_DEB
                     PKG_CONFIG)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_package.cmake: ${var} is not set")
  endif()
endforeach()
if(WITH_MPI AND NOT MPIEXEC)
  message(FATAL_ERROR "run_package.cmake: WITH_MPI needs MPIEXEC")
endif()

function(run_checked)
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "consumer package: command failed (${result}): ${command}")
  endif()
endfunction()

# The installed files each way of consuming needs, by name, wherever the libdir is.
function(require_files)
  file(GLOB_RECURSE installed LIST_DIRECTORIES false RELATIVE "${root}" "${root}/*")
  foreach(name IN LISTS ARGN)
    string(REGEX REPLACE "([][+.*()^$?|\\])" "\\\\\\1" pattern "${name}")
    set(found "${installed}")
    list(FILTER found INCLUDE REGEX "/${pattern}$")
    if(NOT found)
      message(FATAL_ERROR "consumer package: no ${name} in the packages (extracted in ${root})")
    endif()
  endforeach()
endfunction()

set(packages_dir "${WORK_DIR}/packages")
set(root "${WORK_DIR}/root")
file(REMOVE_RECURSE "${packages_dir}" "${root}")
file(MAKE_DIRECTORY "${root}")

set(config_args)
if(BUILD_TYPE)
  set(config_args -C "${BUILD_TYPE}")
endif()
set(ENV{DESTDIR} "")
run_checked("${CPACK}" -G DEB --config "${CPACK_CONFIG}" -B "${packages_dir}" ${config_args})

set(expected_packages libcfutures-dev)
if(WITH_MPI)
  list(APPEND expected_packages libcfutures-mpi-dev)
endif()
foreach(package IN LISTS expected_packages)
  file(GLOB deb "${packages_dir}/${package}_*.deb")
  if(NOT deb)
    message(FATAL_ERROR "consumer package: cpack made no ${package}_*.deb in ${packages_dir}")
  endif()
  run_checked("${DPKG_DEB}" -x "${deb}" "${root}")
endforeach()

require_files(concurrent/futures.hpp libcfutures.a cfutures-config.cmake cfutures-targets.cmake
              cfutures.pc)
if(WITH_MPI)
  require_files(concurrent/futures/mpi.hpp libcfutures_mpi.a cfutures-mpi-targets.cmake
                cfutures-mpi.pc)
endif()

function(run_program program)
  if(program MATCHES "_mpi$")
    separate_arguments(mpiexec_flags UNIX_COMMAND "${MPIEXEC_FLAGS}")
    run_checked("${MPIEXEC}" ${mpiexec_flags} -n 2 "${program}")
  else()
    run_checked("${program}")
  endif()
endfunction()

# 1. find_package, with the root's /usr as the prefix to search.
set(build_dir "${WORK_DIR}/find_package")
set(configure_args
  -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_PREFIX_PATH=${root}/usr"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  "-DWITH_MPI=${WITH_MPI}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
endif()
run_checked("${CMAKE_COMMAND}" --fresh -S "${CONSUMER_SOURCE_DIR}" -B "${build_dir}"
            ${configure_args})
# The package must come from the root just extracted, not from anywhere else on the system.
file(STRINGS "${build_dir}/CMakeCache.txt" found_dir REGEX "^cfutures_DIR:")
string(REGEX REPLACE "^cfutures_DIR:[A-Z]+=" "" found_dir "${found_dir}")
file(REAL_PATH "${found_dir}" found_dir)
file(REAL_PATH "${root}" real_root)
string(FIND "${found_dir}" "${real_root}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "consumer package: cfutures was found in '${found_dir}', "
                      "not in the extracted packages under '${real_root}'")
endif()
set(build_args)
if(BUILD_TYPE)
  set(build_args --config "${BUILD_TYPE}")
endif()
run_checked("${CMAKE_COMMAND}" --build "${build_dir}" ${build_args})
set(programs consumer)
if(WITH_MPI)
  list(APPEND programs consumer_mpi)
endif()
foreach(name IN LISTS programs)
  set(program "${build_dir}/${name}")
  if(NOT EXISTS "${program}" AND BUILD_TYPE)
    set(program "${build_dir}/${BUILD_TYPE}/${name}")
  endif()
  run_program("${program}")
endforeach()

# 2. pkg-config. The .pc files name the packages' prefix, /usr; copies that name the root's /usr
# instead stand for the packages installed there. Only that line changes, so the paths built from
# it (libdir, includedir) are checked against where the files really are.
set(pc_dir "${WORK_DIR}/pkgconfig")
file(REMOVE_RECURSE "${pc_dir}")
file(GLOB_RECURSE pc_files LIST_DIRECTORIES false "${root}/*.pc")
list(FILTER pc_files INCLUDE REGEX "/pkgconfig/cfutures[^/]*\\.pc$")
foreach(pc IN LISTS pc_files)
  file(READ "${pc}" content)
  if(NOT content MATCHES "^prefix=/usr\n")
    message(FATAL_ERROR "consumer package: ${pc} does not start with prefix=/usr:\n${content}")
  endif()
  string(REGEX REPLACE "^prefix=/usr\n" "prefix=${root}/usr\n" content "${content}")
  get_filename_component(pc_name "${pc}" NAME)
  file(WRITE "${pc_dir}/${pc_name}" "${content}")
endforeach()
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")

set(build_dir "${WORK_DIR}/pkg_config")
file(MAKE_DIRECTORY "${build_dir}")
# The flags of the build type, as CMake would add them, then what pkg-config says.
set(cxx_flags ${CXX_FLAGS} ${CXX_FLAGS_BUILD_TYPE})
separate_arguments(cxx_flags UNIX_COMMAND "${cxx_flags}")
foreach(name IN LISTS programs)
  if(name STREQUAL "consumer_mpi")
    set(module cfutures-mpi)
    set(source "${CONSUMER_SOURCE_DIR}/mpi_main.cpp")
  else()
    set(module cfutures)
    set(source "${CONSUMER_SOURCE_DIR}/main.cpp")
  endif()
  execute_process(COMMAND "${PKG_CONFIG}" --cflags "${module}" OUTPUT_VARIABLE cflags
                  RESULT_VARIABLE result OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND "${PKG_CONFIG}" --libs "${module}" OUTPUT_VARIABLE libs
                  RESULT_VARIABLE libs_result OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT result EQUAL 0 OR NOT libs_result EQUAL 0)
    message(FATAL_ERROR "consumer package: pkg-config does not know ${module}")
  endif()
  message(STATUS "pkg-config ${module}: ${cflags} ${libs}")
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  separate_arguments(libs UNIX_COMMAND "${libs}")
  if(NOT "-I${root}/usr/include" IN_LIST cflags)
    message(FATAL_ERROR "consumer package: `pkg-config --cflags ${module}` does not name the "
                        "packages' include directory ${root}/usr/include")
  endif()
  run_checked("${CXX_COMPILER}" ${cxx_flags} -std=c++20 ${cflags} "${source}"
              -o "${build_dir}/${name}" ${libs})
  run_program("${build_dir}/${name}")
endforeach()
message(STATUS "consumer package: built and ran ${programs} with find_package and pkg-config")
