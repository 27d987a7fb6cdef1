/// @file
/// `cf::Future<T>` and `cf::AnyFuture`: Python's concurrent.futures.Future in C++.
///
/// A Future is a copyable handle to one shared result; copies refer to the same state (like
/// Python objects and std::shared_future), compare equal and hash alike. Every member is
/// thread-safe. A future may outlive the executor that made it.
///
/// States (FutureState, in future_state.hpp): pending -> running -> finished, or pending ->
/// cancelled.
///
/// Waiting: result() and exception() block until the future is done. With a timeout they throw
/// TimeoutError when it runs out; a timeout <= 0 polls. When the calling thread is a worker of a
/// ThreadPoolExecutor, it runs other pending tasks of that pool while it waits, so a task may
/// wait on work it submitted to its own pool without deadlock.
///
/// Callbacks: add_done_callback(fn) calls fn(future) exactly once: at once in the calling thread
/// if the future is already done, otherwise in the thread that completes it (the worker that ran
/// the task, or the thread that called cancel/set_result/set_exception), in the order added. An
/// exception thrown by fn is reported to the error handler (stderr by default) and swallowed; the
/// other callbacks still run.
///
/// Continuations: then(fn) is defined here; then(executor, fn) is declared here and defined in
/// executor.hpp, which every executor's header includes. when_all and when_any are in
/// compose.hpp, co_await in coroutine.hpp.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <ostream>
#include <string_view>
#include <type_traits>
#include <utility>

#include "concurrent/futures/detail/access.hpp"
#include "concurrent/futures/detail/state.hpp"
#include "concurrent/futures/detail/then.hpp"
#include "concurrent/futures/errors.hpp"
#include "concurrent/futures/future_state.hpp"

namespace concurrent::futures {

/// Installs the process-wide handler that receives callback and initializer failures (one
/// message per failure). Returns the previous handler; the default writes to stderr. Passing an
/// empty function restores the default. Thread-safe.
std::function<void(std::string_view)> set_error_handler(
    std::function<void(std::string_view)> handler);

class AnyFuture;
class Executor;

namespace detail {

template <class T>
struct ResultRef {
  using type = const T&;
};
template <>
struct ResultRef<void> {
  using type = void;
};

// The members every future handle has, whatever its value type.
class FutureHandle {
 public:
  // pending -> cancelled and true; running or finished -> false; cancelled -> true. A cancel
  // wakes waiters and runs the callbacks, in this thread.
  bool cancel() const { return state_->cancel(); }
  bool cancelled() const noexcept { return state() == FutureState::cancelled; }
  bool running() const noexcept { return state() == FutureState::running; }
  bool done() const noexcept { return state_->done(); }
  FutureState state() const noexcept { return state_->state(); }

  // Blocks until done. nullptr if it succeeded, else the exception it raised. CancelledError if
  // cancelled; TimeoutError if the timeout (<= 0: poll) runs out first.
  std::exception_ptr exception() const { return state_->exception(std::nullopt); }
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    return state_->exception(deadline_after(timeout));
  }

  // For executors and tests. pending -> running and true; cancelled -> false (waiters were
  // already woken by cancel()); running or finished -> InvalidStateError.
  bool set_running_or_notify_cancel() const { return state_->set_running_or_notify_cancel(); }
  // Finishes with an error. InvalidStateError if already done (the first outcome is kept).
  void set_exception(std::exception_ptr error) const { state_->set_exception(std::move(error)); }

  // The shared state's identity: equal for copies of one future.
  const void* id() const noexcept { return state_.get(); }

 protected:
  explicit FutureHandle(std::shared_ptr<StateBase> state) : state_(std::move(state)) {}
  std::shared_ptr<StateBase> state_;

 private:
  friend struct Access;
};

}  // namespace detail

/// Python's concurrent.futures.Future: a copyable handle to one shared result (see the file
/// comment for its states, waiting and callbacks).
///
/// Besides the members below, it has those it shares with AnyFuture through their common base,
/// which this reference leaves out:
/// - `bool cancel() const`: pending -> cancelled and true; running or finished -> false;
///   cancelled -> true. A cancel wakes waiters and runs the callbacks, in this thread.
/// - `bool cancelled() const`, `bool running() const`, `bool done() const` (cancelled or
///   finished), `FutureState state() const`: never block.
/// - `std::exception_ptr exception() const` and `exception(timeout)`: block until done. nullptr
///   if it succeeded, else the exception it raised. CancelledError if cancelled; TimeoutError if
///   the timeout (<= 0: poll) runs out first.
/// - `bool set_running_or_notify_cancel() const`: for executors and tests. pending -> running
///   and true; cancelled -> false (waiters were already woken by cancel()); running or finished
///   -> InvalidStateError.
/// - `void set_exception(std::exception_ptr error) const`: finishes with an error.
///   InvalidStateError if already done (the first outcome is kept).
/// - `const void* id() const`: the shared state's identity, equal for copies of one future.
template <class T>
class Future : public detail::FutureHandle {
  static_assert(!std::is_reference_v<T>, "Future<T> holds values: T may not be a reference");

  using State = detail::State<T>;
  using ResultRef = typename detail::ResultRef<T>::type;

 public:
  using value_type = T;

  /// A new pending future not tied to any executor (Python: Future()).
  Future() : FutureHandle(std::make_shared<State>()) {}

  /// Blocks until done, then returns the value (a reference into the shared state, valid while
  /// any copy of the future lives) or rethrows the exception the task raised. CancelledError if
  /// cancelled; TimeoutError if the timeout (<= 0: poll) runs out first.
  ///@{
  ResultRef result() const { return result_at(std::nullopt); }
  template <class Rep, class Period>
  ResultRef result(std::chrono::duration<Rep, Period> timeout) const {
    return result_at(detail::deadline_after(timeout));
  }
  ///@}

  /// fn(Future<T>) once the future is done; see the file comment for which thread runs it.
  // clang-format off
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&, Future<T>>
  void add_done_callback(F&& fn) const {
    // clang-format on
    state_->add_done_callback([fn = std::forward<F>(fn)](detail::StateBase& s) mutable {
      fn(Future<T>(s.shared_from_this()));
    });
  }

  /// A future of fn's result once this one is done (docs/reference.md §5). fn takes the value
  /// (const T&; nothing for Future<void>) and then runs only on success: an error passes to the
  /// returned future unchanged, a cancel cancels it. Or fn takes the Future<T> and runs however
  /// this one ended. A callable that accepts both gets the value. fn's exception fails the returned
  /// future. Cancelling the returned future before fn starts means fn never runs; it never
  /// cancels this one. Never blocks.
  ///
  /// then(fn): fn runs in the thread that completes this future (the pool worker that ran its
  /// task, or the caller of set_result/set_exception/cancel), or at once in the calling thread if
  /// it is already done; like a done callback, it should be short.
  template <class F>
  auto then(F&& fn) const {
    using Fn = std::decay_t<F>;
    detail::check_then<T, Fn>();
    using U = detail::then_result_t<T, Fn>;
    Future<U> next;
    add_done_callback([next, fn = Fn(std::forward<F>(fn))](const Future<T>& f) mutable {
      detail::run_then(f, next, fn);
    });
    return next;
  }
  /// then(executor, fn): fn runs on `executor` once this future is done (defined in
  /// executor.hpp). If the executor refuses it (ShutdownError, BrokenExecutor) the returned
  /// future fails with that error; if it drops it unrun (shutdown with cancel_futures) the
  /// returned future is cancelled; an executor destroyed before this future completes gives
  /// ShutdownError. Otherwise as then(fn).
  ///
  /// On an executor whose tasks run in this process (ThreadPoolExecutor), fn is a closure over
  /// this future and runs in one of its workers. On a process pool, fn runs in a worker process
  /// with a copy of the value as its serialized argument, as submit(fn, value) would: fn must take
  /// the value and be transportable (transportable.hpp: a function pointer, a lambda without
  /// captures, an aggregate function object or a cf::partial), and the value and fn's result
  /// serializable. On a
  /// ProcessPoolExecutor anything else is a compile-time error; through cf::Executor& the
  /// returned future fails with SerializationError.
  // clang-format off
  template <class Ex, class F>
    requires std::derived_from<Ex, Executor>
  auto then(Ex& executor, F&& fn) const;
  // clang-format on

  /// Finishes with a value (set_result() for Future<void>). InvalidStateError if already done;
  /// the first outcome is kept.
  ///@{
  // clang-format off
  template <class U = T>
    requires(!std::is_void_v<U>)
  void set_result(U value) const {
    // clang-format on
    typed().set_result(std::move(value));
  }
  // clang-format off
  template <class U = T>
    requires std::is_void_v<U>
  void set_result() const {
    // clang-format on
    typed().set_result(detail::Unit{});
  }
  ///@}

  /// Whether both refer to the same shared state (copies of one future).
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.id() == b.id(); }
  /// Like Python's repr: `<Future at 0x55d0c8a1e2b0 state=finished returned int>` (or
  /// `raised std::runtime_error`, or `state=pending`); the address is the shared state's, so
  /// copies print alike, and type names are demangled.
  friend std::ostream& operator<<(std::ostream& out, const Future& f) {
    return out << f.state_->repr();
  }

 private:
  friend struct detail::Access;

  // Adopts `state`, which must be a detail::State<T>: for the library only (detail::Access).
  explicit Future(std::shared_ptr<detail::StateBase> state) : FutureHandle(std::move(state)) {}

  State& typed() const noexcept { return static_cast<State&>(*state_); }

  ResultRef result_at(const detail::Deadline& deadline) const {
    const State& s = typed();
    // Fast path: an acquire load that sees `finished` also sees the value.
    if (s.state() != FutureState::finished) s.wait_or_throw(deadline);
    if (s.error()) std::rethrow_exception(s.error());
    if constexpr (!std::is_void_v<T>) return s.value();
  }
};

/// A type-erased handle to any Future<T>: everything but result()/set_result() (see Future for
/// the members they share). Lets wait and as_completed take futures of different types
/// together. Compares equal to the Future<T> it came from.
class AnyFuture : public detail::FutureHandle {
 public:
  template <class T>
  AnyFuture(const Future<T>& f)  // NOLINT(google-explicit-constructor): implicit by design
      : FutureHandle(detail::Access::state(f)) {}

  /// fn(AnyFuture) once done; same rules as Future<T>::add_done_callback.
  // clang-format off
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&, AnyFuture>
  void add_done_callback(F&& fn) const {
    // clang-format on
    state_->add_done_callback([fn = std::forward<F>(fn)](detail::StateBase& s) mutable {
      fn(AnyFuture(s.shared_from_this()));
    });
  }

  /// Whether both refer to the same shared state.
  friend bool operator==(const AnyFuture& a, const AnyFuture& b) noexcept {
    return a.id() == b.id();
  }
  /// As for Future<T>: like Python's repr.
  friend std::ostream& operator<<(std::ostream& out, const AnyFuture& f) {
    return out << f.state_->repr();
  }

 private:
  // For add_done_callback: the state of a future that just completed.
  explicit AnyFuture(std::shared_ptr<detail::StateBase> state) : FutureHandle(std::move(state)) {}
};

/// A Future<T> and an AnyFuture made from it compare equal.
template <class T>
bool operator==(const Future<T>& a, const AnyFuture& b) noexcept {
  return a.id() == b.id();
}

namespace detail {

// Future<T> and AnyFuture: what wait, as_completed, when_all and when_any take.
template <class F>
inline constexpr bool is_future_v = false;
template <class T>
inline constexpr bool is_future_v<Future<T>> = true;
template <>
inline constexpr bool is_future_v<AnyFuture> = true;

}  // namespace detail

}  // namespace concurrent::futures

/// Hashes a future by its shared state, as == compares: futures can key unordered containers.
template <class T>
struct std::hash<concurrent::futures::Future<T>> {
  std::size_t operator()(const concurrent::futures::Future<T>& f) const noexcept {
    return std::hash<const void*>()(f.id());
  }
};

/// Hashes an AnyFuture as the Future<T> it came from.
template <>
struct std::hash<concurrent::futures::AnyFuture> {
  std::size_t operator()(const concurrent::futures::AnyFuture& f) const noexcept {
    return std::hash<const void*>()(f.id());
  }
};
