// expect-error: std::string_view holds an address of this process
//
// docs/reference.md, "What may cross into a worker": results follow the same rule as arguments;
// a std::string_view result would point into the worker's memory.
#include <string_view>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

std::string_view name() { return "worker"; }

cf::Future<std::string_view> receive_a_view(cf::ProcessPoolExecutor& pool) {
  return pool.submit(&name);
}
