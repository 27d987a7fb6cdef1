// expect-error: a pointer cannot be sent to a worker process
//
// docs/reference.md, "What may cross into a worker": a raw pointer argument means nothing in the
// worker's memory.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

int read_through(const int* p) { return *p; }

cf::Future<int> send_a_pointer(cf::ProcessPoolExecutor& pool, const int& local) {
  return pool.submit(&read_through, &local);
}
