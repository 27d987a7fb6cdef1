// expect-error: cf::SharedArray<T>: T must be a non-const type that may be copied bytewise
//
// docs/reference.md, "Large values and cf::SharedArray": the elements are read by other
// processes, so an element that holds an address is refused.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

std::size_t count(cf::SharedArray<int*> a) { return a.size(); }

cf::Future<std::size_t> send_pointers(cf::ProcessPoolExecutor& pool) {
  return pool.submit(&count, cf::SharedArray<int*>(4));
}
