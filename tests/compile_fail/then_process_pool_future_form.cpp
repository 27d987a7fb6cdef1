// expect-error: ProcessPoolExecutor: then.executor, fn. runs fn in a worker process
//
// docs/reference.md §5: on a ProcessPoolExecutor, then(pool, fn) sends fn to a worker with f's
// value; a fn that takes the Future<T> itself cannot run there, so on the concrete pool type it is
// a compile-time error. Through cf::Executor& the same call compiles and the returned future fails
// with SerializationError (test_compose_process.cpp).
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

cf::Future<bool> then_with_the_future_form(cf::ProcessPoolExecutor& pool,
                                           const cf::Future<int>& f) {
  return f.then(pool, [](const cf::Future<int>& done) { return done.done(); });
}
