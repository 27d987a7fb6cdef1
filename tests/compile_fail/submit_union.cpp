// expect-error: a union is not copied to a worker process bytewise
//
// docs/reference.md, "What may cross into a worker": which member of a union is active is not
// known, and one might be a pointer.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

union Slot {
  long number;
  const char* text;
};

long number_of(Slot s) { return s.number; }

cf::Future<long> send_a_union(cf::ProcessPoolExecutor& pool) {
  Slot s{};
  s.number = 7;
  return pool.submit(&number_of, s);
}
