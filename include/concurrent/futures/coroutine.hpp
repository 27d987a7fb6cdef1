/// @file
/// C++20 coroutines and futures (docs/reference.md §5): `co_await f` for any Future<T> or
/// AnyFuture, a way to move a coroutine onto an executor, and cf::Future<T> itself as a coroutine
/// return type.
///
/// @code
/// cf::Future<int> total(cf::Executor& ex) {      // a coroutine: it returns a Future at once
///   int a = co_await ex.submit(work, 1);          // suspends; no thread waits for `work`
///   co_await cf::resume_on(ex);                   // continue on one of ex's threads
///   co_return a + co_await ex.submit(work, 2);
/// }
/// @endcode
///
/// @par `co_await f`
/// If f is already done, the coroutine goes on without suspending. Otherwise it suspends and is
/// resumed by a done callback of f: in the thread that completes f (the pool worker that ran f's
/// task, or whoever called set_result/set_exception/cancel), which then runs the coroutine up to
/// its next suspension before going on with its own work. `co_await cf::resume_on(ex)` moves it
/// elsewhere. The expression gives a copy of f's value (a const T& into f's shared state when T
/// cannot be copied; valid while any copy of f lives), nothing for Future<void> and AnyFuture,
/// and rethrows f's exception (CancelledError if f was cancelled).
///
/// @par `co_await cf::resume_on(executor)`
/// Suspends and resumes in a task submitted to `executor`. Throws what submit throws
/// (ShutdownError, BrokenExecutor) without suspending, and CancelledError (or the pool's error)
/// when the executor drops the task unrun (shutdown with cancel_futures, a broken pool): the
/// coroutine is then resumed in the thread that dropped it. For executors whose tasks run in
/// this process (ThreadPoolExecutor); on a process pool the co_await throws SerializationError.
///
/// @par `cf::Future<T>` as a coroutine type
/// A function returning cf::Future<T> whose body uses co_await/co_return is a coroutine. It
/// starts at once in the calling thread and runs until its first suspension; the caller then
/// gets a running Future<T> (cancel() returns false, as for a started task). It finishes with
/// the co_return value or with the exception that left the body, after the body's locals are
/// destroyed (its parameters go with the frame, which frees itself right after), so the
/// future's callbacks and waiters never run while a local lock is still held. As with every
/// coroutine, parameters taken by reference must outlive it: take them by value. A coroutine
/// suspended on a future that never finishes is never resumed, and its frame lives as long as
/// that future's state does.
///
/// @par Compiler caveat
/// A coroutine may resume on another thread, but Clang 14 can reuse, after a co_await, values it
/// computed before it that are really per-thread: pthread_self() and so std::this_thread::get_id(),
/// errno, and the address of a thread_local (LLVM issues 47177, 47179, 49257). With Clang, do not
/// rely on those after a co_await in the same coroutine (a system call such as gettid() is never
/// merged that way). GCC is not affected.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "concurrent/futures/detail/access.hpp"
#include "concurrent/futures/detail/executor_link.hpp"
#include "concurrent/futures/executor.hpp"
#include "concurrent/futures/future.hpp"

namespace concurrent::futures {
namespace detail {

// What `co_await f` gives for a Future<T>.
template <class T>
struct AwaitResultOf {
  using type = std::conditional_t<std::is_copy_constructible_v<T>, T, const T&>;
};
template <>
struct AwaitResultOf<void> {
  using type = void;
};
template <class T>
using AwaitResult = typename AwaitResultOf<T>::type;

// Suspends until a future is done. The done callback and await_suspend race to flip `handoff_`:
// whichever comes second resumes the coroutine (the callback by resuming it, await_suspend by
// returning false), so a future that finishes while the coroutine is suspending is never missed
// nor resumed twice. acq_rel on both sides: the thread that resumes sees everything the other
// did before, including the coroutine's own writes before it suspended.
template <class Fut>
class FutureAwaiter {
 public:
  explicit FutureAwaiter(Fut future) : future_(std::move(future)) {}
  FutureAwaiter(const FutureAwaiter&) = delete;
  FutureAwaiter& operator=(const FutureAwaiter&) = delete;

  bool await_ready() const noexcept { return future_.done(); }

  bool await_suspend(std::coroutine_handle<> coroutine) {
    // The callback touches `this` only before the exchange that lets the coroutine go on (and
    // so possibly destroy this awaiter), never after.
    future_.add_done_callback([this, coroutine](const Fut&) {
      if (handoff_.exchange(true, std::memory_order_acq_rel)) coroutine.resume();
    });
    return !handoff_.exchange(true, std::memory_order_acq_rel);
  }

  decltype(auto) await_resume() const {
    if constexpr (std::is_same_v<Fut, AnyFuture>) {
      if (std::exception_ptr error = future_.exception()) std::rethrow_exception(error);
    } else {
      return static_cast<AwaitResult<typename Fut::value_type>>(future_.result());
    }
  }

 private:
  Fut future_;
  std::atomic<bool> handoff_{false};
};

// Where the final outcome of a Future<T> coroutine waits while the frame is destroyed.
template <class T>
class FuturePromiseBase {
 public:
  Future<T> get_return_object() {
    // The body starts right away: running, so that cancel() returns false as for a started task.
    future_.set_running_or_notify_cancel();
    return future_;
  }
  std::suspend_never initial_suspend() noexcept { return {}; }

  // Completes the future once the body's locals are gone: they are destroyed before
  // final_suspend (only the parameters and the promise are left), so no callback or waiter sees
  // a lock still held or a half-unwound frame. The frame is destroyed right after.
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    void await_suspend(std::coroutine_handle<Promise> coroutine) const noexcept {
      coroutine.promise().publish();
      coroutine.destroy();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  void publish() noexcept {
    try {
      if (error_) {
        future_.set_exception(std::move(error_));
      } else if constexpr (std::is_void_v<T>) {
        future_.set_result();
      } else {
        future_.set_result(std::move(*value_));
      }
    } catch (...) {
      // Completed by hand meanwhile (InvalidStateError): the first outcome stands.
    }
  }

 protected:
  Future<T> future_;
  std::exception_ptr error_;
  std::optional<Stored<T>> value_;
};

template <class T>
class FuturePromise : public FuturePromiseBase<T> {
 public:
  // clang-format off
  template <class U = T>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& value) {
    // clang-format on
    this->value_.emplace(std::forward<U>(value));
  }
};

template <>
class FuturePromise<void> : public FuturePromiseBase<void> {
 public:
  void return_void() noexcept { value_.emplace(); }
};

}  // namespace detail

/// `co_await f`: see the file comment (coroutine.hpp).
///@{
template <class T>
detail::FutureAwaiter<Future<T>> operator co_await(Future<T> future) {
  return detail::FutureAwaiter<Future<T>>(std::move(future));
}
inline detail::FutureAwaiter<AnyFuture> operator co_await(AnyFuture future) {
  return detail::FutureAwaiter<AnyFuture>(std::move(future));
}
///@}

/// The awaitable that cf::resume_on returns.
class ResumeOn {
 public:
  explicit ResumeOn(Executor& executor) : link_(detail::Access::link(executor)) {}

  bool await_ready() const noexcept { return false; }

  void await_suspend(std::coroutine_handle<> coroutine) {
    // An exception out of submit propagates from the co_await, the coroutine not suspended.
    Future<void> task = link_->submit([coroutine] {
      try {
        coroutine.resume();
      } catch (...) {
        // Only a coroutine type whose unhandled_exception rethrows gets here; there is nobody to
        // give the exception to, and the task must still count as having run (see below).
        const std::exception_ptr e = std::current_exception();
        detail::report_error("exception escaped a coroutine resumed by resume_on: " +
                             detail::exception_type_name(e) + ": " + detail::exception_message(e));
      }
    });
    // From here on the coroutine may already be running elsewhere and this awaiter gone: touch
    // nothing of it unless the task did not run, in which case the coroutine is still suspended.
    task.add_done_callback([this, coroutine](const Future<void>& t) {
      if (t.cancelled()) {
        error_ = std::make_exception_ptr(CancelledError());
      } else if (std::exception_ptr e = detail::Access::state(t)->error()) {
        error_ = std::move(e);
      } else {
        return;
      }
      coroutine.resume();
    });
  }

  void await_resume() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::shared_ptr<detail::ExecutorLink> link_;  // ShutdownError once the executor is gone
  std::exception_ptr error_;
};

/// `co_await cf::resume_on(executor)`: see the file comment (coroutine.hpp).
inline ResumeOn resume_on(Executor& executor) { return ResumeOn(executor); }

}  // namespace concurrent::futures

/// A function returning cf::Future<T> may be a coroutine (see the file comment).
template <class T, class... Args>
struct std::coroutine_traits<concurrent::futures::Future<T>, Args...> {
  using promise_type = concurrent::futures::detail::FuturePromise<T>;
};
