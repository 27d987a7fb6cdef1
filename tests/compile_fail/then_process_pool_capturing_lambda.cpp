// expect-error: cfutures: this callable cannot run in a worker process
//
// docs/reference.md §4.2 and §5: f.then(pool, fn) on the concrete ProcessPoolExecutor with a fn
// that cannot run in a worker (here a lambda capturing a std::string, which is not trivially
// copyable) is a compile-time error, as pool.submit(fn) is. Through cf::Executor& the same call
// compiles and the returned future fails with SerializationError (test_compose_process.cpp).
#include <string>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

cf::Future<std::string> then_with_a_capturing_lambda(cf::ProcessPoolExecutor& pool,
                                                     const cf::Future<int>& f) {
  const std::string suffix = "!";
  return f.then(pool, [suffix](int x) { return std::to_string(x) + suffix; });
}
