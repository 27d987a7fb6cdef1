// expect-error: map over an input that never ends
//
// docs/reference.md §4 (map): without buffersize map reads all its input before it returns, so an
// input whose end is std::unreachable_sentinel (std::views::iota(0L), for one) would never return
// and grow memory without bound. Without MapOptions that is a compile error, on every executor.
#include <cstddef>
#include <iterator>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

struct Naturals {
  struct iterator {
    using difference_type = std::ptrdiff_t;
    using value_type = long;
    long n = 0;
    long operator*() const { return n; }
    iterator& operator++() {
      ++n;
      return *this;
    }
    void operator++(int) { ++n; }
  };
  iterator begin() const { return {}; }
  std::unreachable_sentinel_t end() const { return {}; }
};

long square(long x) { return x * x; }

void map_for_ever(cf::ThreadPoolExecutor& pool) {
  for (long n : pool.map(&square, Naturals{})) (void)n;
}
