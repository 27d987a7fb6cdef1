// The machinery behind Future<T>::then (docs/reference.md §5): which form fn takes, what the
// returned future holds, and how fn's outcome completes it. Future<T>::then(fn) is defined in
// future.hpp with these; then(executor, fn), which also needs the executor, in executor.hpp.
//
// Everything here is a template over the future type, which is only declared: future.hpp includes
// this header before it defines Future<T>, and nothing here is instantiated before then() is.
#pragma once

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "concurrent/futures/detail/access.hpp"
#include "concurrent/futures/detail/state.hpp"
#include "concurrent/futures/errors.hpp"

namespace concurrent::futures {

template <class T>
class Future;

namespace detail {

// Fails `out` unless it is already done (its owner cancelled it, or completed it by hand): the
// first outcome stands, as for every future.
template <class Handle>
void fail_if_pending(const Handle& out, std::exception_ptr error) {
  try {
    out.set_exception(std::move(error));
  } catch (const InvalidStateError&) {
  }
}

// fn takes the value (const T&, or nothing for Future<void>): the "value form". Otherwise it
// must take the Future<T>. A callable that accepts both (a generic lambda) gets the value.
template <class T, class Fn>
struct ThenByValue : std::is_invocable<Fn&, const T&> {};
template <class Fn>
struct ThenByValue<void, Fn> : std::is_invocable<Fn&> {};

template <class T, class Fn>
inline constexpr bool then_by_value_v = ThenByValue<T, Fn>::value;
// std::disjunction, not ||: asking a generic lambda whether it takes a Future<T> would
// instantiate its body with one, a hard error when it was meant for the value.
template <class T, class Fn>
inline constexpr bool then_callable_v =
    std::disjunction<ThenByValue<T, Fn>, std::is_invocable<Fn&, Future<T>>>::value;

template <class T, class Fn, bool ByValue = then_by_value_v<T, Fn>,
          bool Callable = then_callable_v<T, Fn>>
struct ThenResult {
  using type = void;  // not callable: then() reports it with a static_assert
};
template <class T, class Fn>
struct ThenResult<T, Fn, false, true> {
  using type = std::invoke_result_t<Fn&, Future<T>>;
};
template <class T, class Fn>
struct ThenResult<T, Fn, true, true> {
  using type = std::invoke_result_t<Fn&, const T&>;
};
template <class Fn>
struct ThenResult<void, Fn, true, true> {
  using type = std::invoke_result_t<Fn&>;
};
// A fn returning a reference gives a future of the referred-to value (a copy).
template <class T, class Fn>
using then_result_t = std::remove_cvref_t<typename ThenResult<T, Fn>::type>;

template <class T, class Fn>
constexpr void check_then() {
  static_assert(then_callable_v<T, Fn>,
                "then(fn): fn must take the value (const T&; nothing for Future<void>) or the "
                "Future<T>");
  static_assert(!std::is_array_v<then_result_t<T, Fn>>, "then(fn): fn may not return an array");
}

template <class T, class Fn>
decltype(auto) invoke_then(const Future<T>& f, Fn& fn) {
  if constexpr (!then_by_value_v<T, Fn>) {
    return std::invoke(fn, f);
  } else if constexpr (std::is_void_v<T>) {
    return std::invoke(fn);
  } else {
    return std::invoke(fn, f.result());
  }
}

// With the value form, a failed or cancelled `f` decides `next` without running fn. Returns
// true when it did.
template <class T, class U, class Fn>
bool then_short_circuit(const Future<T>& f, const Future<U>& next) {
  if constexpr (then_by_value_v<T, Fn>) {
    if (f.cancelled()) {
      next.cancel();  // false if next was completed by hand meanwhile: that outcome stands
      return true;
    }
    if (std::exception_ptr error = Access::state(f)->error()) {
      fail_if_pending(next, std::move(error));
      return true;
    }
  }
  return false;
}

// Runs fn for the done future `f` and completes `next` with its outcome. `next` goes pending ->
// running just before fn starts: a cancel() of `next` that came first makes this return without
// running fn, and one that comes later returns false (as for any running future).
template <class T, class U, class Fn>
void run_then(const Future<T>& f, const Future<U>& next, Fn& fn) {
  if (then_short_circuit<T, U, Fn>(f, next)) return;
  try {
    if (!next.set_running_or_notify_cancel()) return;
  } catch (const InvalidStateError&) {
    return;  // completed by hand before fn started
  }
  try {
    if constexpr (std::is_void_v<U>) {
      invoke_then(f, fn);
      next.set_result();
    } else {
      next.set_result(invoke_then(f, fn));
    }
  } catch (...) {
    fail_if_pending(next, std::current_exception());
  }
}

}  // namespace detail
}  // namespace concurrent::futures
