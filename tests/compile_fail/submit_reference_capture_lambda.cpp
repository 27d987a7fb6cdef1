// expect-error: cfutures: this callable cannot run in a worker process
//
// docs/reference.md, "What may cross into a worker": a lambda capturing by reference is
// trivially copyable, so it used to be sent bytewise and the worker read the parent's address (1
// where the parent had set 42). The library cannot tell captures by reference from captures by
// value, so a lambda with captures is refused, with what to do instead.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

cf::Future<int> send_a_reference_capture(cf::ProcessPoolExecutor& pool) {
  static int counter = 42;
  int& alias = counter;
  return pool.submit([&alias] { return alias; });
}
