// A range that never ends, and says so in its type: its end is std::unreachable_sentinel (as
// std::views::iota(0L)'s is, without <ranges>, which Clang 14 cannot compile with libstdc++ 12).
#pragma once

#include <cstddef>
#include <iterator>

namespace cftest {

// 0, 1, 2, ... for ever.
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

}  // namespace cftest
