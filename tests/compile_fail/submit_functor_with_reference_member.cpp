// expect-error: this struct has a reference or const member
//
// docs/reference.md, "What may cross into a worker": a function object is sent only if its
// members can be; a reference member would refer to this process's memory.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

struct Counter {
  int& total;
  int operator()(int x) const { return total + x; }
};

cf::Future<int> send_a_reference_member(cf::ProcessPoolExecutor& pool, int& total) {
  return pool.submit(Counter{total}, 1);
}
