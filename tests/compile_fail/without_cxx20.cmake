# Compiles a one-line file that includes each public header (the umbrella header and every
# include/concurrent/futures/*.hpp) with -std=c++17, and checks that the compiler's first error is
# the library's own "cfutures needs C++20 (-std=c++20 or later)" rather than one from deep inside
# <coroutine> or a requires-clause. Run with `cmake -P` by the compile_fail.without_cxx20 test.
#
#   CXX_COMPILER  the compiler of the suite
#   INCLUDE_DIR   cfutures' include/ directory
#   WORK_DIR      where the one-line files are written
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS CXX_COMPILER INCLUDE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "without_cxx20.cmake: ${var} is not set")
  endif()
endforeach()

file(GLOB headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/concurrent/futures/*.hpp")
list(PREPEND headers concurrent/futures.hpp)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(failures 0)
foreach(header IN LISTS headers)
  string(MAKE_C_IDENTIFIER "${header}" name)
  set(source "${WORK_DIR}/${name}.cpp")
  file(WRITE "${source}" "#include <${header}>\nint main() {}\n")
  execute_process(
    COMMAND "${CXX_COMPILER}" -std=c++17 -fsyntax-only -I "${INCLUDE_DIR}" "${source}"
    RESULT_VARIABLE result
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output)
  # The first diagnostic that is an error ("file:line:col: error: ..." for GCC and Clang alike;
  # "error" alone would also match a file name such as errors.hpp in an "included from" line).
  string(REGEX MATCH "[^\n]*: (fatal )?error: [^\n]*" first_error "${output}")
  if(result EQUAL 0)
    message(SEND_ERROR "<${header}> compiled with -std=c++17")
    math(EXPR failures "${failures} + 1")
  elseif(NOT first_error MATCHES "cfutures needs C\\+\\+20 \\(-std=c\\+\\+20 or later\\)")
    message(SEND_ERROR "<${header}> with -std=c++17: the first error is not cfutures' own:\n"
                       "${output}")
    math(EXPR failures "${failures} + 1")
  else()
    message(STATUS "<${header}>: ${first_error}")
  endif()
endforeach()

list(LENGTH headers count)
if(failures GREATER 0)
  message(FATAL_ERROR "${failures} of ${count} headers do not say first that they need C++20")
endif()
message(STATUS "all ${count} public headers: cfutures needs C++20, as the first error")
