/// @file
/// Composing futures without blocking a thread (docs/reference.md §5): cf::when_all and
/// cf::when_any (and Future<T>::then, a member declared in future.hpp).
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
/// - `f.then(executor, fn)`: fn runs on `executor` when f finishes: in a worker thread of a
///   thread pool, in a worker process of a process pool (with f's value as its argument; see
///   Future<T>::then for what fn must be there). If the executor refuses it (shut down, broken)
///   or drops it before it runs (shutdown(cancel_futures=true)), the returned future fails with
///   that error (or is cancelled); so it does if the executor is gone by then (ShutdownError).
/// - `when_all` / `when_any`: the returned future completes in the thread that completes the
///   input that decides it (or in the calling thread if that input is already done), so its own
///   callbacks run there too.
///
/// Cancelling a future returned by any of these never cancels the inputs: it only means its
/// owner no longer wants the result (for then: fn will not run if it has not started).
///
/// A fn that itself returns a Future<V> gives a Future<Future<V>>: there is no implicit
/// unwrapping (co_await, in coroutine.hpp, is the way to chain asynchronous steps).
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

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

#include "concurrent/futures/detail/access.hpp"
#include "concurrent/futures/detail/iterable.hpp"
#include "concurrent/futures/detail/then.hpp"
#include "concurrent/futures/errors.hpp"
#include "concurrent/futures/future.hpp"

namespace concurrent::futures {
namespace detail {

// The error a done future ended with: its exception, a fresh CancelledError if it was
// cancelled, nullptr if it succeeded. Call only once `f` is done.
template <class Fut>
std::exception_ptr outcome_error(const Fut& f) {
  if (f.cancelled()) return std::make_exception_ptr(CancelledError());
  return Access::state(f)->error();
}

template <class F>
concept ComposableFuture = is_future_v<std::remove_cvref_t<F>>;

template <class R>
concept ComposableFutureRange = Iterable<R> && is_future_v<std::remove_cvref_t<reference_of<R>>>;

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
