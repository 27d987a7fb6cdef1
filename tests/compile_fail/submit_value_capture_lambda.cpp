// expect-error: cfutures: this callable cannot run in a worker process.*cf::partial
//
// docs/reference.md, "What may cross into a worker": even a lambda capturing an int by value is
// refused (nothing tells it from a capture by reference); the message points to passing the
// values as arguments or binding them with cf::partial.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

cf::Future<int> send_a_value_capture(cf::ProcessPoolExecutor& pool, int n) {
  return pool.submit([n](int x) { return n * x; }, 2);
}
