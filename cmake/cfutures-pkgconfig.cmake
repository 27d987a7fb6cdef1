# pkg-config files for builds without CMake, installed into <libdir>/pkgconfig: cfutures.pc with
# the library (component dev), and cfutures-mpi.pc with cfutures::mpi (component mpi).
#   c++ -std=c++20 app.cpp $(pkg-config --cflags --libs cfutures)
#
# A .pc file names its prefix, and that is the one it is installed under, which
# `cmake --install --prefix`, DESTDIR and CPack (/usr in the Debian packages) decide only at install
# time. So each file is configured twice: at configure time with everything but the prefix, which
# stays @CMAKE_INSTALL_PREFIX@, then by the install script, where CMAKE_INSTALL_PREFIX is the
# prefix of that installation.
#
# The library is static unless BUILD_SHARED_LIBS is on. Static, everything linking it needs goes in
# Libs, which `pkg-config --libs` prints; shared, what only the library itself needs (libdl) goes in
# Libs.private. -pthread is in both Cflags and Libs: the headers start and join threads.

function(cfutures_pc_path var path)
  if(IS_ABSOLUTE "${path}")
    set(${var} "${path}" PARENT_SCOPE)
  else()
    set(${var} "\${prefix}/${path}" PARENT_SCOPE)
  endif()
endfunction()

# cfutures_install_pkgconfig(<name> <component>): cmake/<name>.pc.in to <libdir>/pkgconfig/<name>.pc
function(cfutures_install_pkgconfig name component)
  set(cfutures_pc_prefix "@CMAKE_INSTALL_PREFIX@")
  set(template "${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc.in")
  configure_file("${PROJECT_SOURCE_DIR}/cmake/${name}.pc.in" "${template}" @ONLY)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(destination "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  else()
    set(destination "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  endif()
  install(CODE "
    set(pc_file \"\$ENV{DESTDIR}${destination}/${name}.pc\")
    message(STATUS \"Installing: \${pc_file}\")
    configure_file(\"${template}\" \"\${pc_file}\" @ONLY)
    list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${pc_file}\")"
    COMPONENT ${component})
endfunction()

cfutures_pc_path(cfutures_pc_libdir "${CMAKE_INSTALL_LIBDIR}")
cfutures_pc_path(cfutures_pc_includedir "${CMAKE_INSTALL_INCLUDEDIR}")

# cereal is header-only; Debian's is in /usr/include, which needs no -I.
set(cfutures_pc_cflags "-I\${includedir}")
get_target_property(cereal_include_dirs cereal::cereal INTERFACE_INCLUDE_DIRECTORIES)
foreach(dir IN LISTS cereal_include_dirs)
  if(dir AND NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    string(APPEND cfutures_pc_cflags " -I${dir}")
  endif()
endforeach()
string(APPEND cfutures_pc_cflags " -pthread")

set(cfutures_pc_private_libs)
foreach(library IN LISTS CMAKE_DL_LIBS)
  string(APPEND cfutures_pc_private_libs " -l${library}")
endforeach()
set(cfutures_pc_libs "Libs: -L\${libdir} -lcfutures -pthread")
if(BUILD_SHARED_LIBS)
  if(cfutures_pc_private_libs)
    string(APPEND cfutures_pc_libs "\nLibs.private:${cfutures_pc_private_libs}")
  endif()
else()
  string(APPEND cfutures_pc_libs "${cfutures_pc_private_libs}")
endif()
cfutures_install_pkgconfig(cfutures dev)

# The .pc file of the MPI implementation it was built with, for its compile and link flags: the
# C++ one, as for MPI::MPI_CXX, since Open MPI's mpi.h brings its C++ bindings along in C++.
if(CFUTURES_HAVE_MPI)
  if(MPI_CXX_INCLUDE_DIRS MATCHES "openmpi")
    set(cfutures_pc_mpi_requires ompi-cxx)
  elseif(MPI_CXX_INCLUDE_DIRS MATCHES "mpich")
    set(cfutures_pc_mpi_requires mpich)
  else()
    set(cfutures_pc_mpi_requires mpi-cxx)  # Debian's alternative: the default implementation
  endif()
  cfutures_install_pkgconfig(cfutures-mpi mpi)
endif()
