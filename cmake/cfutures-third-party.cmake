# Finds the third-party libraries a program of ours includes, by reading its #include lines, so a
# new benchmark or demo file needs no CMake edit. Only for our own programs (bench/, demo/): the
# library itself depends on nothing but Threads (and cereal, when installed).
#
#   cfutures_included_libraries(<targets-var> <missing-var> <source>...)
#
# Sets <targets-var> to the imported targets to link for the libraries the sources include, and
# <missing-var> to the names of those that are not installed, so the caller can skip the program
# (bench) or fail (demo).
#
#   include            package     target
#   <benchmark/...>    benchmark   benchmark::benchmark (+ benchmark_main when no main() is defined)
#   <tbb/...>,<oneapi/tbb...>  TBB  TBB::tbb
#   <boost/...>        Boost       Boost::headers (header-only parts such as Asio)
#   <fmt/...>          fmt         fmt::fmt
#   <CLI/...>          CLI11       CLI11::CLI11
#   <cereal/...>       cereal      cereal::cereal
function(cfutures_included_libraries targets_var missing_var)
  set(included)
  set(defines_main FALSE)
  foreach(source IN LISTS ARGN)
    file(STRINGS "${source}" lines
      REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](benchmark|tbb|oneapi/tbb|boost|fmt|CLI|cereal)[/.]")
    foreach(line IN LISTS lines)
      string(REGEX MATCH "[<\"](benchmark|oneapi/tbb|tbb|boost|fmt|CLI|cereal)" match "${line}")
      string(SUBSTRING "${match}" 1 -1 library)
      list(APPEND included "${library}")
    endforeach()
    file(STRINGS "${source}" main_lines REGEX "(^|[ \t])(int[ \t]+main[ \t]*\\(|BENCHMARK_MAIN)")
    if(main_lines)
      set(defines_main TRUE)
    endif()
  endforeach()
  list(REMOVE_DUPLICATES included)

  set(link)
  set(missing)
  foreach(library IN LISTS included)
    if(library STREQUAL "benchmark")
      find_package(benchmark CONFIG QUIET)
      set(targets benchmark::benchmark)
      if(NOT defines_main)
        list(APPEND targets benchmark::benchmark_main)
      endif()
      set(package "Google Benchmark (libbenchmark-dev)")
    elseif(library MATCHES "tbb")
      find_package(TBB CONFIG QUIET)
      set(targets TBB::tbb)
      set(package "oneTBB (libtbb-dev)")
    elseif(library STREQUAL "boost")
      find_package(Boost CONFIG QUIET)
      set(targets Boost::headers)
      set(package "Boost headers (libboost-dev)")
    elseif(library STREQUAL "fmt")
      find_package(fmt CONFIG QUIET)
      set(targets fmt::fmt)
      set(package "{fmt} (libfmt-dev)")
    elseif(library STREQUAL "CLI")
      find_package(CLI11 CONFIG QUIET)
      set(targets CLI11::CLI11)
      set(package "CLI11 (libcli11-dev)")
    elseif(library STREQUAL "cereal")
      find_package(cereal CONFIG QUIET)
      set(targets cereal::cereal)
      set(package "cereal (libcereal-dev)")
    endif()
    foreach(imported IN LISTS targets)
      if(TARGET ${imported})
        list(APPEND link ${imported})
      else()
        list(APPEND missing "${package}")
        break()
      endif()
    endforeach()
  endforeach()
  set(${targets_var} "${link}" PARENT_SCOPE)
  set(${missing_var} "${missing}" PARENT_SCOPE)
endfunction()
