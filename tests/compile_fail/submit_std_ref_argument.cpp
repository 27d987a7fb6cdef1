// expect-error: std::reference_wrapper \(std::ref, std::cref\) holds an address of this process
//
// docs/reference.md, "What may cross into a worker": std::ref works on a thread pool; a worker
// process cannot share this process's objects, so on a process pool it is refused by name.
#include <functional>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

int increment(int& counter) { return ++counter; }

cf::Future<int> send_a_ref(cf::ProcessPoolExecutor& pool, int& counter) {
  return pool.submit(&increment, std::ref(counter));
}
