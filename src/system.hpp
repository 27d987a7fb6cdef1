// Small system helpers shared by the compiled parts of the library.
#pragma once

#include <sched.h>

#include <cerrno>
#include <cstddef>
#include <system_error>
#include <thread>

namespace concurrent::futures::detail {

[[noreturn]] inline void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// The CPUs this process may run on (its affinity mask), as CPython's os.process_cpu_count().
inline std::size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<std::size_t>(CPU_COUNT(&set));
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

}  // namespace concurrent::futures::detail
