// expect-error: std::string_view holds an address of this process
//
// docs/reference.md, "What may cross into a worker": cf::partial's bound values follow the value
// rule, so binding a std::string_view is refused as passing one is.
#include <string>
#include <string_view>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

std::string joined(std::string_view prefix, int x) {
  return std::string(prefix) + std::to_string(x);
}

cf::Future<std::string> send_a_bound_view(cf::ProcessPoolExecutor& pool, const std::string& p) {
  return pool.submit(cf::partial(&joined, std::string_view(p)), 1);
}
