// expect-error: std::string_view holds an address of this process
//
// docs/reference.md, "What may cross into a worker": a std::string_view argument would be copied
// bytewise, and the worker would read the parent's address (26 blank characters with
// forkserver, SIGSEGV with spawn, before this check). It is a compile error that names
// std::string_view and says to send std::string.
#include <string>
#include <string_view>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

std::size_t length(std::string_view text) { return text.size(); }

cf::Future<std::size_t> send_a_view(cf::ProcessPoolExecutor& pool, const std::string& local) {
  return pool.submit(&length, std::string_view(local));
}
