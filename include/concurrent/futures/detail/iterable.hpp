// Minimal range traits built on std::begin/std::end. The library takes "any range" as input
// but does not use <ranges> concepts: Clang 14 cannot compile libstdc++ 12's, and both compilers
// must build cfutures.
#pragma once

#include <iterator>
#include <type_traits>
#include <utility>

namespace concurrent::futures::detail {

template <class R>
concept Iterable = requires(R& r) {
  std::begin(r) != std::end(r);
  *std::begin(r);
};

template <class R>
using iterator_of = decltype(std::begin(std::declval<R&>()));
template <class R>
using sentinel_of = decltype(std::end(std::declval<R&>()));
template <class R>
using reference_of = decltype(*std::declval<iterator_of<R>&>());
// What one element becomes when it is copied into a task.
template <class R>
using element_of = std::decay_t<reference_of<R>>;

// A range the type system knows never ends: its end is std::unreachable_sentinel
// (std::views::iota(n), for one). Adaptors over one (iota(n) | transform(f)) are not recognised.
template <class R>
inline constexpr bool known_infinite_v = false;
template <class R>
requires Iterable<R>
inline constexpr bool known_infinite_v<R> =
    std::is_same_v<std::remove_cvref_t<sentinel_of<std::remove_reference_t<R>>>,
                   std::unreachable_sentinel_t>;

// map without MapOptions over ranges that all never end: a compile error (it would never return).
template <class... Ranges>
constexpr void require_finite() {
  static_assert(!(known_infinite_v<Ranges> && ...),
                "cfutures: map over an input that never ends (its end is "
                "std::unreachable_sentinel) would read it for ever: pass a MapOptions with "
                "buffersize, e.g. cf::MapOptions{.buffersize = 64}, to read it as results are "
                "consumed");
}

// Walks a range once. Keeps a reference to an lvalue range (which must outlive it) and takes
// ownership of an rvalue one. Not movable: the iterators may point into the owned range.
template <class R>
class Cursor {
 public:
  explicit Cursor(R&& r)
      : range_(std::forward<R>(r)), it_(std::begin(range_)), end_(std::end(range_)) {}
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  bool at_end() const { return !(it_ != end_); }
  reference_of<R> current() const { return *it_; }
  void next() { ++it_; }

 private:
  using Held = std::conditional_t<std::is_lvalue_reference_v<R>, R, std::remove_cvref_t<R>>;
  Held range_;
  iterator_of<std::remove_reference_t<Held>> it_;
  sentinel_of<std::remove_reference_t<Held>> end_;
};

}  // namespace concurrent::futures::detail
