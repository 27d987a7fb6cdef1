/// @file
/// Composing futures without blocking a thread (API.md §5): Future<T>::then, cf::when_all and
/// cf::when_any.
///
/// Everything here is built on add_done_callback: a combinator registers a callback with each
/// input and completes its own future from the callback that sees the last (when_all) or the
/// first (when_any) input finish. No thread ever waits, so combinators may be nested freely and
/// used from inside pool tasks.
///
/// Which thread does the work:
/// - `f.then(fn)`: fn runs in the thread that completes f (the pool worker that ran f's task, or
///   whoever called set_result/set_exception/cancel), or at once in the calling thread if f is
///   already done. Keep fn short, as any done callback, or use the executor form.
/// - `f.then(executor, fn)`: fn is submitted to `executor` when f finishes and runs there. If the
///   executor refuses it (shut down, broken) or drops it before it runs
///   (shutdown(cancel_futures=true)), the returned future fails with that error (or is
///   cancelled); so it does if the executor is gone by then (ShutdownError).
///   fn is a closure, so this is for executors that run tasks in this process
///   (ThreadPoolExecutor); with a process pool the returned future fails with
///   SerializationError.
/// - `when_all` / `when_any`: the returned future completes in the thread that completes the
///   input that decides it (or in the calling thread if that input is already done), so its own
///   callbacks run there too.
///
/// Cancelling a future returned by any of these never cancels the inputs: it only means its
/// owner no longer wants the result (for then: fn will not run if it has not started).
///
/// A fn that itself returns a Future<V> gives a Future<Future<V>>: there is no implicit
/// unwrapping (co_await, in coroutine.hpp, is the way to chain asynchronous steps).
///
/// This header is included at the end of future.hpp; it needs no executor definition until
/// then(executor, fn) is instantiated, which happens only where an Executor is at hand.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concurrent/futures/detail/iterable.hpp"
#include "concurrent/futures/errors.hpp"
#include "concurrent/futures/future.hpp"

namespace concurrent::futures {

class Executor;

namespace detail {

// --- shared helpers -------------------------------------------------------------------------

// The error a done future ended with: its exception, a fresh CancelledError if it was
// cancelled, nullptr if it succeeded. Call only once `f` is done.
inline std::exception_ptr outcome_error(const FutureHandle& f) {
  if (f.cancelled()) return std::make_exception_ptr(CancelledError());
  return f.shared_state()->error();
}

// Fails `out` unless it is already done (its owner cancelled it, or completed it by hand): the
// first outcome stands, as for every future.
inline void fail_if_pending(const FutureHandle& out, std::exception_ptr error) {
  try {
    out.set_exception(std::move(error));
  } catch (const InvalidStateError&) {
  }
}

template <class T>
inline constexpr bool is_composable_future_v = false;
template <class T>
inline constexpr bool is_composable_future_v<Future<T>> = true;
template <>
inline constexpr bool is_composable_future_v<AnyFuture> = true;

template <class F>
concept ComposableFuture = is_composable_future_v<std::remove_cvref_t<F>>;

template <class R>
concept ComposableFutureRange =
    Iterable<R> && is_composable_future_v<std::remove_cvref_t<reference_of<R>>>;

// What when_all gives for one input: the value, std::monostate for void, and the (done) input
// itself for an AnyFuture, whose value type is not known.
template <class F>
struct AllValue;
template <class T>
struct AllValue<Future<T>> {
  using type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  static type of(const Future<T>& f) {
    if constexpr (std::is_void_v<T>) {
      return {};
    } else {
      static_assert(std::is_copy_constructible_v<T>,
                    "when_all copies each value out of its future: T must be copyable");
      return f.result();
    }
  }
};
template <>
struct AllValue<AnyFuture> {
  using type = AnyFuture;
  static type of(const AnyFuture& f) { return f; }
};
template <class F>
using all_value_t = typename AllValue<std::remove_cvref_t<F>>::type;

// --- then -----------------------------------------------------------------------------------

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
    if (std::exception_ptr error = f.shared_state()->error()) {
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

// then(executor, fn) once `f` is done. Ex is a template parameter so that Executor need only be
// complete here, where it is instantiated (this header is read before executor.hpp).
template <class Ex, class T, class U, class Fn>
void schedule_then(Ex& executor, const Future<T>& f, const Future<U>& next, Fn&& fn) {
  if (then_short_circuit<T, U, std::remove_cvref_t<Fn>>(f, next)) return;
  Future<void> task;
  try {
    task =
        executor.submit([f, next, fn = std::forward<Fn>(fn)]() mutable { run_then(f, next, fn); });
  } catch (...) {
    fail_if_pending(next, std::current_exception());  // ShutdownError, BrokenExecutor
    return;
  }
  // run_then never throws out of the task, so a task that did not succeed never ran: it was
  // cancelled by shutdown(cancel_futures=true) or dropped by a broken pool.
  task.add_done_callback([next](const Future<void>& t) {
    if (t.cancelled()) {
      next.cancel();
    } else if (std::exception_ptr error = t.shared_state()->error()) {
      fail_if_pending(next, std::move(error));
    }
  });
}

template <class T, class Fn>
constexpr void check_then() {
  static_assert(then_callable_v<T, Fn>,
                "then(fn): fn must take the value (const T&; nothing for Future<void>) or the "
                "Future<T>");
  static_assert(!std::is_array_v<then_result_t<T, Fn>>, "then(fn): fn may not return an array");
}

// --- when_all -------------------------------------------------------------------------------

// Collects the inputs' outcomes; the input whose callback brings `remaining` to zero completes
// `out`. Each input writes only its own slot before its fetch_sub (release), and the last one's
// fetch_sub (acquire) therefore sees every slot: no lock is needed.
template <class... Vs>
struct AllOfTuple {
  explicit AllOfTuple(std::size_t n) : remaining(n) {}

  template <std::size_t I, class Fut>
  void arrive(const Fut& f) {
    try {
      if (std::exception_ptr error = outcome_error(f)) {
        errors[I] = std::move(error);
      } else {
        std::get<I>(values).emplace(AllValue<Fut>::of(f));
      }
    } catch (...) {
      errors[I] = std::current_exception();  // copying the value failed
    }
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) finish();
  }

  void finish() {
    for (std::exception_ptr& error : errors) {
      if (error) return fail_if_pending(out, std::move(error));
    }
    try {
      out.set_result(
          std::apply([](auto&... v) { return std::tuple<Vs...>(std::move(*v)...); }, values));
    } catch (const InvalidStateError&) {
      // cancelled by its owner: nobody wants the values
    } catch (...) {
      fail_if_pending(out, std::current_exception());
    }
  }

  std::atomic<std::size_t> remaining;
  std::tuple<std::optional<Vs>...> values;
  std::array<std::exception_ptr, sizeof...(Vs)> errors;
  Future<std::tuple<Vs...>> out;
};

template <class V>
struct AllOfVector {
  explicit AllOfVector(std::size_t n) : remaining(n), values(n), errors(n) {}

  template <class Fut>
  void arrive(std::size_t i, const Fut& f) {
    try {
      if (std::exception_ptr error = outcome_error(f)) {
        errors[i] = std::move(error);
      } else {
        values[i].emplace(AllValue<Fut>::of(f));
      }
    } catch (...) {
      errors[i] = std::current_exception();
    }
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) finish();
  }

  void finish() {
    for (std::exception_ptr& error : errors) {
      if (error) return fail_if_pending(out, std::move(error));
    }
    try {
      std::vector<V> result;
      result.reserve(values.size());
      for (std::optional<V>& v : values) result.push_back(std::move(*v));
      values.clear();
      out.set_result(std::move(result));
    } catch (const InvalidStateError&) {
    } catch (...) {
      fail_if_pending(out, std::current_exception());
    }
  }

  std::atomic<std::size_t> remaining;
  std::vector<std::optional<V>> values;
  std::vector<std::exception_ptr> errors;
  Future<std::vector<V>> out;
};

template <class Fut, class R>
Future<std::vector<all_value_t<Fut>>> when_all_of(R&& futures) {
  using V = all_value_t<Fut>;
  // Copied first, to know the count before any callback can run.
  std::vector<Fut> inputs;
  for (auto&& f : futures) inputs.push_back(Fut(f));
  auto state = std::make_shared<AllOfVector<V>>(inputs.size());
  Future<std::vector<V>> out = state->out;
  if (inputs.empty()) {
    out.set_result({});
    return out;
  }
  // The callbacks hold the state, not the inputs: an input that never completes keeps only
  // its own callback alive.
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    inputs[i].add_done_callback([state, i](const Fut& f) { state->arrive(i, f); });
  }
  return out;
}

// --- when_any -------------------------------------------------------------------------------

struct AnyOf {
  void arrive(std::size_t i) {
    // Several inputs may finish at once; the first to claim the result wins.
    if (claimed.exchange(true, std::memory_order_acq_rel)) return;
    try {
      out.set_result(i);
    } catch (const InvalidStateError&) {
      // cancelled by its owner
    }
  }
  std::atomic<bool> claimed{false};
  Future<std::size_t> out;
};

template <class Fut, class R>
Future<std::size_t> when_any_of(R&& futures) {
  std::vector<Fut> inputs;
  for (auto&& f : futures) inputs.push_back(Fut(f));
  if (inputs.empty()) throw std::invalid_argument("when_any() needs at least one future");
  auto state = std::make_shared<AnyOf>();
  Future<std::size_t> out = state->out;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (state->claimed.load(std::memory_order_acquire)) break;  // an earlier one was done
    inputs[i].add_done_callback([state, i](const Fut&) { state->arrive(i); });
  }
  return out;
}

}  // namespace detail

// --- Future<T>::then ------------------------------------------------------------------------

template <class T>
template <class F>
auto Future<T>::then(F&& fn) const {
  using Fn = std::decay_t<F>;
  detail::check_then<T, Fn>();
  using U = detail::then_result_t<T, Fn>;
  Future<U> next;
  add_done_callback([next, fn = Fn(std::forward<F>(fn))](const Future<T>& f) mutable {
    detail::run_then(f, next, fn);
  });
  return next;
}

namespace detail {
class ExecutorLink;
// Ex is deduced, and the return type spelled, so that Executor need only be complete where
// then() is instantiated.
template <class Ex>
std::shared_ptr<ExecutorLink> link_of(Ex& executor) {
  return executor.link();
}
}  // namespace detail

template <class T>
template <class F>
auto Future<T>::then(Executor& executor, F&& fn) const {
  using Fn = std::decay_t<F>;
  detail::check_then<T, Fn>();
  using U = detail::then_result_t<T, Fn>;
  Future<U> next;
  // The link, not the executor: if the executor is gone by the time f finishes, submitting
  // through the link fails the returned future with ShutdownError instead of touching it.
  add_done_callback([next, link = detail::link_of(executor),
                     fn = Fn(std::forward<F>(fn))](const Future<T>& f) mutable {
    detail::schedule_then(*link, f, next, std::move(fn));
  });
  return next;
}

// --- when_all -------------------------------------------------------------------------------
/// @name when_all
/// A future that finishes once every input is done (value, error or cancel). If any input failed
/// or was cancelled, it fails with the first such input's exception in argument order
/// (CancelledError for a cancel), after all inputs are done; otherwise it holds every value, in
/// argument order, copied out of the inputs. void inputs give std::monostate; AnyFuture inputs
/// give the (successfully finished) AnyFuture itself. Never blocks; keeps no reference to an
/// input once it is done. Cancelling the result does not cancel the inputs.
///@{

/// Future<std::tuple<V1, V2, ...>>. when_all() with no argument is already finished.
template <detail::ComposableFuture... Futs>
Future<std::tuple<detail::all_value_t<Futs>...>> when_all(const Futs&... futures) {
  using State = detail::AllOfTuple<detail::all_value_t<Futs>...>;
  auto state = std::make_shared<State>(sizeof...(Futs));
  Future<std::tuple<detail::all_value_t<Futs>...>> out = state->out;
  if constexpr (sizeof...(Futs) == 0) {
    out.set_result({});
  } else {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (futures.add_done_callback([state](const auto& f) { state->template arrive<I>(f); }), ...);
    }
    (std::index_sequence_for<Futs...>{});
  }
  return out;
}

/// Future<std::vector<V>> over any range of Future<T> (or AnyFuture); an empty range gives an
/// empty vector at once. Equal futures are not merged: each position gets its value.
template <detail::ComposableFutureRange R>
auto when_all(R&& futures) {
  using Fut = std::remove_cvref_t<detail::reference_of<R>>;
  return detail::when_all_of<Fut>(std::forward<R>(futures));
}

/// A braced list of futures of any types: when_all({f1, f2}) -> Future<std::vector<AnyFuture>>.
inline Future<std::vector<AnyFuture>> when_all(std::initializer_list<AnyFuture> futures) {
  return detail::when_all_of<AnyFuture>(futures);
}
///@}

// --- when_any -------------------------------------------------------------------------------
/// @name when_any
/// A Future<std::size_t> holding the position of the first input to finish in any way (value,
/// error or cancel); if some are already done, the first of those in input order. The inputs are
/// left as they are: look at the winner for its outcome. An empty range throws
/// std::invalid_argument. Never blocks. Cancelling the result does not cancel the inputs.
///@{

/// Over any range of Future<T> (or AnyFuture).
template <detail::ComposableFutureRange R>
Future<std::size_t> when_any(R&& futures) {
  using Fut = std::remove_cvref_t<detail::reference_of<R>>;
  return detail::when_any_of<Fut>(std::forward<R>(futures));
}

/// A braced list of futures of any types: when_any({f1, f2}).
inline Future<std::size_t> when_any(std::initializer_list<AnyFuture> futures) {
  return detail::when_any_of<AnyFuture>(futures);
}

/// when_any(f1, f2, ...) with futures of any types.
// clang-format off
template <detail::ComposableFuture... Futs>
  requires(sizeof...(Futs) > 0)
Future<std::size_t> when_any(const Futs&... futures) {
  // clang-format on
  return when_any({AnyFuture(futures)...});
}
///@}

}  // namespace concurrent::futures
