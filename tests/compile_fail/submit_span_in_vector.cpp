// expect-error: std::span holds an address of this process
//
// docs/reference.md, "What may cross into a worker": a std::span inside a container is refused as
// a span on its own is, naming std::span and saying to send std::vector.
#include <span>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

std::size_t count(const std::vector<std::span<const int>>& parts) { return parts.size(); }

cf::Future<std::size_t> send_spans(cf::ProcessPoolExecutor& pool, const std::vector<int>& data) {
  return pool.submit(&count, std::vector<std::span<const int>>{std::span<const int>(data)});
}
