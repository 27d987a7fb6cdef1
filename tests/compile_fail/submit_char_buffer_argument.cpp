// expect-error: a pointer cannot be sent to a worker process
//
// docs/reference.md, "What may cross into a worker": only a const char* (a string literal,
// typically) is sent as the string it points to; a char* is a buffer the function may write, and
// the worker cannot write the parent's memory, so it is refused.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

void fill(char* out) { out[0] = 'x'; }

cf::Future<void> send_a_buffer(cf::ProcessPoolExecutor& pool) {
  static char buffer[16];
  return pool.submit(&fill, buffer);
}
