# Debian packages of the installed library, made by CPack (`make package`, or `cpack` in a build
# tree): one per install component.
#   libcfutures-dev      the headers, libcfutures.a, the CMake package, cfutures.pc
#   libcfutures-mpi-dev  <concurrent/futures/mpi.hpp>, libcfutures_mpi.a, its CMake targets,
#                        cfutures-mpi.pc; only when MPI was found. Depends on libcfutures-dev of
#                        the same version and on the MPI implementation it was built against.
# They install under /usr whatever CMAKE_INSTALL_PREFIX is; configured with
# CMAKE_INSTALL_PREFIX=/usr (the `package` preset), the libraries and the CMake and pkg-config
# files go to Debian's multiarch directory, /usr/lib/<triplet>.

set(CFUTURES_PACKAGE_CONTACT "cfutures maintainers <maintainers@cfutures.invalid>"
  CACHE STRING "Maintainer field of the Debian packages")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cfutures)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "${CFUTURES_PACKAGE_CONTACT}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES OFF)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL dev)
if(CFUTURES_HAVE_MPI)
  list(APPEND CPACK_COMPONENTS_ALL mpi)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
# Depends of each component package on the packages of the components it DEPENDS on.
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libcfutures-dev)
# The public headers include cereal's; -pthread and libdl come with libc6-dev.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libcereal-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "cmake, pkg-config")
if(BUILD_SHARED_LIBS)
  set(cfutures_library_kind shared)
else()
  set(cfutures_library_kind static)
endif()
# CPack puts the project's description first, as the synopsis of both packages; these follow it.
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "Futures, wait, as_completed and executors with CPython's semantics: a thread pool, and a process
pool that runs C++ functions in worker processes. The ${cfutures_library_kind} library, the headers,
the CMake package (find_package(cfutures)) and a pkg-config file (cfutures).")

if(CFUTURES_HAVE_MPI)
  # The Debian package that holds the mpi.h the component was built against, e.g. libopenmpi-dev.
  set(cfutures_mpi_deb mpi-default-dev)
  find_file(cfutures_mpi_header mpi.h PATHS ${MPI_CXX_INCLUDE_DIRS} NO_DEFAULT_PATH NO_CACHE)
  find_program(cfutures_dpkg_query dpkg-query NO_CACHE)
  if(cfutures_mpi_header AND cfutures_dpkg_query)
    file(REAL_PATH "${cfutures_mpi_header}" cfutures_mpi_header)
    execute_process(COMMAND "${cfutures_dpkg_query}" --search "${cfutures_mpi_header}"
      OUTPUT_VARIABLE cfutures_mpi_owner RESULT_VARIABLE cfutures_dpkg_result ERROR_QUIET)
    if(cfutures_dpkg_result EQUAL 0 AND cfutures_mpi_owner MATCHES "^([^:, ]+)")
      set(cfutures_mpi_deb "${CMAKE_MATCH_1}")
    endif()
  endif()
  set(CPACK_DEBIAN_MPI_PACKAGE_NAME libcfutures-mpi-dev)
  set(CPACK_DEBIAN_MPI_PACKAGE_DEPENDS "${cfutures_mpi_deb}")
  set(CPACK_COMPONENT_MPI_DEPENDS dev)
  set(CPACK_DEBIAN_MPI_DESCRIPTION
    "MPIPoolExecutor and MPICommExecutor, mpi4py.futures' executors, over MPI ranks: the
${cfutures_library_kind} library cfutures::mpi (find_package(cfutures COMPONENTS mpi)), its header and a pkg-config file
(cfutures-mpi).")
endif()

include(CPack)
