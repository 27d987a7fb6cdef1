// expect-error: map over an input that never ends
//
// docs/reference.md §4 (map): without buffersize map reads all its input before it returns, so an
// input whose end is std::unreachable_sentinel (std::views::iota(0L), for one) would never return
// and grow memory without bound. Without MapOptions that is a compile error, on every executor.
#include <concurrent/futures.hpp>

#include "../infinite_range.hpp"

namespace cf = concurrent::futures;

long square(long x) { return x * x; }

void map_for_ever(cf::ThreadPoolExecutor& pool) {
  for (long n : pool.map(&square, cftest::Naturals{})) (void)n;
}
