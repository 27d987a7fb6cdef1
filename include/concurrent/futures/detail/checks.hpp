// The compile-time checks of the executors whose work runs in other processes: each refused
// type gets a static_assert whose message says why, fired in an instantiation that names the type
// (the innermost culprit: `Job` in a std::vector<std::tuple<Job>>, the pointer field in a struct).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "concurrent/futures/detail/bytewise.hpp"
#include "concurrent/futures/detail/codec.hpp"
#include "concurrent/futures/detail/entry.hpp"
#include "concurrent/futures/transportable.hpp"

namespace concurrent::futures::detail::checks {

template <class T>
void report_value();

// The first of Ts that cannot be sent, reported.
template <class... Ts>
void report_first_value() {
  [[maybe_unused]] bool found = false;
  ((found = found ||
            (!codec::serializable_v<Ts> ? (report_value<std::remove_cv_t<Ts>>(), true) : false)),
   ...);
}

// The std containers cfutures encodes: what they hold is the culprit.
template <class T>
struct Container : std::false_type {};
template <class T, class A>
struct Container<std::vector<T, A>> : std::true_type {
  static void report() { report_first_value<T>(); }
};
template <class T, std::size_t N>
struct Container<std::array<T, N>> : std::true_type {
  static void report() { report_first_value<T>(); }
};
template <class A, class B>
struct Container<std::pair<A, B>> : std::true_type {
  static void report() { report_first_value<A, B>(); }
};
template <class... Ts>
struct Container<std::tuple<Ts...>> : std::true_type {
  static void report() { report_first_value<Ts...>(); }
};
template <class T>
struct Container<std::optional<T>> : std::true_type {
  static void report() { report_first_value<T>(); }
};
template <class... Ts>
struct Container<std::variant<Ts...>> : std::true_type {
  static void report() { report_first_value<Ts...>(); }
};
template <class K, class V, class C, class A>
struct Container<std::map<K, V, C, A>> : std::true_type {
  static void report() { report_first_value<K, V>(); }
};
template <class K, class V, class H, class E, class A>
struct Container<std::unordered_map<K, V, H, E, A>> : std::true_type {
  static void report() { report_first_value<K, V>(); }
};
template <class K, class C, class A>
struct Container<std::set<K, C, A>> : std::true_type {
  static void report() { report_first_value<K>(); }
};
template <class K, class H, class E, class A>
struct Container<std::unordered_set<K, H, E, A>> : std::true_type {
  static void report() { report_first_value<K>(); }
};
template <class F, class... Bound>
struct Container<Partial<F, Bound...>> : std::true_type {
  static void report();
};

template <class T>
void report_value() {
  if constexpr (codec::serializable_v<T>) {
    return;
  } else if constexpr (Container<T>::value) {
    Container<T>::report();
  } else if constexpr (bytewise::why<T>() != bytewise::Why::ok) {
    bytewise::report<T>();
  } else {
    static_assert(bytewise::always_false_v<T>,
                  "cfutures: this type must be default-constructible to be rebuilt in a worker "
                  "process, or have cereal functions (load_and_construct). See docs/reference.md, "
                  "\"What may cross into a worker\"");
  }
}

template <class F>
void report_callable() {
  using Fn = std::decay_t<F>;
  if constexpr (Transportable<Fn>) {
    return;
  } else if constexpr (Container<Fn>::value) {
    Container<Fn>::report();  // cf::partial
  } else if constexpr (std::is_class_v<Fn> && !std::is_aggregate_v<Fn> && !codec::CerealType<Fn>) {
    static_assert(bytewise::always_false_v<Fn>,
                  "cfutures: this callable cannot run in a worker process: the library cannot see "
                  "its members (a lambda with captures, or a class with private members or "
                  "constructors), so it cannot check that they hold no address of this process. "
                  "Pass the captured values as arguments (submit(fn, x, y)), bind them with "
                  "cf::partial(fn, x, y), or use an aggregate struct whose members can be sent. "
                  "See docs/reference.md, \"What may cross into a worker\"");
  } else {
    report_value<Fn>();
  }
}

template <class F, class... Bound>
void Container<Partial<F, Bound...>>::report() {
  report_callable<F>();
  report_first_value<Bound...>();
  static_assert(std::is_default_constructible_v<F> && std::is_move_assignable_v<F>,
                "cfutures: cf::partial sends its callable only if the callable can be rebuilt in "
                "the worker: default-constructible and move-assignable (a function pointer, a "
                "lambda without captures, an aggregate function object). See docs/reference.md, "
                "\"What may cross into a worker\"");
}

template <class A>
void report_argument() {
  if constexpr (!sendable_argument_v<A>) report_value<A>();
}

template <class R>
void report_result() {
  if constexpr (!std::is_void_v<R> && !codec::serializable_v<R>) report_value<R>();
}

// A call of F with Args returning R, sent to a worker: every refused type reported.
template <class R, class F, class... Args>
void require_remotable() {
  report_callable<F>();
  (report_argument<Args>(), ...);
  report_result<R>();
}

// map's items (tuples of the zipped ranges' elements) and starmap's, sent to a worker in chunks.
template <class R, class F, class Item>
void require_remotable_map() {
  report_callable<F>();
  report_value<Item>();
  report_result<R>();
}

}  // namespace concurrent::futures::detail::checks
