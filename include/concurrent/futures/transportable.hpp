/// @file
/// What may cross into a worker process, and the two tools a user has to widen it:
/// `cf::bytewise_transportable<T>` and `cf::partial(fn, values...)`.
///
/// The rule: **nothing that holds an address of this process is ever sent.** A worker process
/// has its own memory, so a pointer, a reference, a `std::string_view` or a `std::span` would
/// point at nothing there (or at something else). The library checks every argument, result and
/// callable at compile time when they go to a ProcessPoolExecutor, and names the type it refuses:
///
/// - **Values** (arguments, results, map items) cross when they are arithmetic or enum types, one
///   of the std types cfutures encodes (`std::string`, `std::vector`, `std::array`, `std::pair`,
///   `std::tuple`, `std::optional`, `std::variant`, `std::map`, `std::unordered_map`,
///   `std::set`, `std::unordered_set`, `std::chrono::duration`, `std::complex`), nested freely,
///   or a type with cereal `serialize`/`save`/`load` functions (those win over everything else).
///   A `cf::SharedArray<T>` (shared_array.hpp) crosses as its memfd, not a copy of its elements
///   (ProcessPoolExecutor only).
///   A trivially copyable struct is copied bytewise only when the library can see that it holds
///   no address: it is an aggregate (public members, no constructors) whose every member, checked
///   one by one down to the last nested field, is itself copyable bytewise. Other trivially
///   copyable types (private members, constructors, unions) cross only when declared with
///   `bytewise_transportable` or given cereal functions.
/// - **Refused, by name**: pointers (but see string literals below), references,
///   `std::string_view`, `std::span`, `std::reference_wrapper` (`std::ref`), member pointers,
///   and any struct or container holding one. Send `std::string` for text, `std::vector` for
///   arrays, and the value itself for a reference.
/// - **String literals**: a `const char*` argument of submit is sent as the string it points to;
///   the function in the worker gets a `const char*` to its own copy. Anywhere else (results,
///   map items, values bound by cf::partial) a `const char*` is a pointer, and refused.
/// - **Callables**: function pointers; lambdas without captures (and other empty function
///   objects); aggregate function objects whose fields may all be copied bytewise (the struct
///   rule above); function objects with cereal functions; and `cf::partial(fn, values...)`, whose
///   bound values may be any of the values above. **A lambda with captures
///   is refused**: the library cannot see what it captured, and a capture by reference (`[&x]`)
///   would read this process's address in the worker. Pass the values as arguments instead
///   (`submit(fn, x, y)`), or bind them with `cf::partial`, which works with map too.
///
/// Through `cf::Executor&` the same things give a future failing with SerializationError instead
/// of a compile error. The reference: docs/reference.md, "What may cross into a worker".
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace concurrent::futures {

/// Declares that a type the library cannot see into may be copied bytewise into worker
/// processes: the user vouches that it holds no pointer or reference. Specialize it for your type:
/// @code
/// template <> struct cf::bytewise_transportable<Money> : std::true_type {};
/// @endcode
/// The type must be trivially copyable (checked); a const or volatile qualified T is looked up
/// without its qualifiers.
template <class T>
struct bytewise_transportable : std::false_type {};

/// `fn` with its first arguments bound to copies of `values`, Python's functools.partial:
/// `partial(fn, a, b)(x, y)` calls `fn(a, b, x, y)`. On a ProcessPoolExecutor it is how values
/// travel with a callable (a lambda's captures cannot): the bound values are serialized with the
/// callable, so they follow the value rules above.
/// @code
/// auto scaled = ex.map(cf::partial([](double k, double x) { return k * x; }, 2.5), xs);
/// @endcode
template <class F, class... Bound>
class Partial {
 public:
  Partial() = default;
  template <class G, class... B>
  explicit Partial(std::in_place_t /*unused*/, G&& fn, B&&... bound)
      : fn_(std::forward<G>(fn)), bound_(std::forward<B>(bound)...) {}

  template <class... Rest>
  requires std::is_invocable_v<const F&, const Bound&..., Rest...>
  decltype(auto) operator()(Rest&&... rest) const {
    return std::apply(
        [&](const Bound&... bound) -> decltype(auto) {
          return std::invoke(fn_, bound..., std::forward<Rest>(rest)...);
        },
        bound_);
  }

  /// The callable and the bound values, for the library's encoding.
  ///@{
  const F& function() const noexcept { return fn_; }
  F& function() noexcept { return fn_; }
  const std::tuple<Bound...>& bound() const noexcept { return bound_; }
  std::tuple<Bound...>& bound() noexcept { return bound_; }
  ///@}

 private:
  F fn_{};
  std::tuple<Bound...> bound_{};
};

/// Binds `values` (decay-copied, as std::bind_front does) as the first arguments of `fn`.
template <class F, class... Values>
Partial<std::decay_t<F>, std::decay_t<Values>...> partial(F&& fn, Values&&... values) {
  return Partial<std::decay_t<F>, std::decay_t<Values>...>(std::in_place, std::forward<F>(fn),
                                                           std::forward<Values>(values)...);
}

}  // namespace concurrent::futures
