// The shared state behind Future<T> and AnyFuture: the whole state machine lives here.
//
//   pending --set_running_or_notify_cancel--> running --set_result/set_exception--> finished
//   pending --cancel--> cancelled                    pending --set_result/set_exception--> finished
//
// Locking: each state has one lock (StateLock, 4 bytes) guarding the transition, the stored
// error/value, the callback list and the waiter list. `state_` is also an atomic so that
// done()/state() and the fast path of result() read it without locking; it is stored with release
// order only after the value or error is in place, so an acquire load that sees `finished` also
// sees the value.
//
// Waiters (wait, as_completed, a blocked result()) are notified while the state's mutex is
// held. That is what makes removing a waiter safe: once remove_waiter() has taken the mutex, no
// notification to it can be running. Lock order is therefore state mutex -> waiter's own mutex;
// a waiter never locks a state while holding its own mutex.
//
// Callbacks run after the mutex is released, in the order added, in the thread that completes
// the state (or at once in the adding thread if it is already done).
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "concurrent/futures/detail/blocking.hpp"
#include "concurrent/futures/detail/unique_function.hpp"
#include "concurrent/futures/errors.hpp"
#include "concurrent/futures/future_state.hpp"

namespace concurrent::futures::detail {

std::string demangle(const std::type_info& type);
// The demangled dynamic type of the exception `e` holds.
std::string exception_type_name(const std::exception_ptr& e);
// what() of the exception, or a description when it is not a std::exception.
std::string exception_message(const std::exception_ptr& e);
// Sends a message to the process-wide error handler (see set_error_handler).
void report_error(std::string_view message) noexcept;

class StateBase;

// The lock of a state: a mutex in one 32-bit word (0 free, 1 held, 2 held with a thread waiting),
// because a program may hold millions of states and std::mutex takes 40 bytes. It is held for a
// few instructions only, so a thread that finds it held spins briefly before it waits on the
// word (a futex). Acquire on taking and release on giving it back order everything done under
// it, as a mutex does (ThreadSanitizer sees the same atomics).
class StateLock {
 public:
  void lock() noexcept {
    int expected = 0;
    if (!word_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      lock_contended();
    }
  }
  bool try_lock() noexcept {
    int expected = 0;
    return word_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }
  void unlock() noexcept {
    if (word_.exchange(0, std::memory_order_release) == 2) word_.notify_one();
  }

 private:
  void lock_contended() noexcept;

  std::atomic<int> word_{0};
};

// Notified (with the state's mutex held) when a state it is registered with becomes done.
class Waiter {
 public:
  virtual void on_done(const StateBase& state) noexcept = 0;

 protected:
  ~Waiter() = default;
};

class StateBase : public std::enable_shared_from_this<StateBase> {
 public:
  using Callback = UniqueFunction<void(StateBase&)>;

  StateBase() = default;
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;
  virtual ~StateBase() = default;

  FutureState state() const noexcept { return state_.load(std::memory_order_acquire); }
  bool done() const noexcept {
    const FutureState s = state();
    return s == FutureState::cancelled || s == FutureState::finished;
  }
  // Finished by raising (not cancelled). Only meaningful once done.
  bool failed() const noexcept { return state() == FutureState::finished && error_ != nullptr; }

  bool cancel();
  bool set_running_or_notify_cancel();
  void set_exception(std::exception_ptr error);

  // Waits until done; false if the deadline passed first.
  bool wait(const Deadline& deadline) const;
  // Throws TimeoutError / CancelledError as result() and exception() do.
  void wait_or_throw(const Deadline& deadline) const;
  std::exception_ptr exception(const Deadline& deadline) const;
  // The stored error of a finished state (nullptr on success). Call only once done.
  const std::exception_ptr& error() const noexcept { return error_; }

  void add_done_callback(Callback callback);
  // Registers `waiter`; false (nothing registered) if already done.
  bool add_waiter(Waiter* waiter) const;
  void remove_waiter(Waiter* waiter) const noexcept;

  // Python's repr: <Future at 0x... state=finished returned int>.
  std::string repr() const;

 protected:
  virtual std::string result_type_name() const = 0;

  // Completes the state with `store` (which puts the value in place) under the lock, then
  // notifies waiters and runs callbacks. Throws InvalidStateError if already done.
  template <class Store>
  void complete(Store&& store) {
    std::unique_lock lock(mu_);
    throw_if_done_locked();
    store();
    finish_locked(lock, FutureState::finished);
  }

 private:
  // Callbacks and waiters are rare next to futures (most results are read once done): they live
  // out of line, allocated by the first one, so that a state stays small.
  struct Listeners {
    std::vector<Callback> callbacks;
    std::vector<Waiter*> waiters;
  };

  void throw_if_done_locked() const;
  // Publishes `final_state` and notifies waiters; if there are callbacks, releases `lock` and runs
  // them (otherwise its owner releases it).
  void finish_locked(std::unique_lock<StateLock>& lock, FutureState final_state);
  void run_callback(Callback& callback) noexcept;
  Listeners& listeners_locked() const;

  mutable StateLock mu_;
  std::atomic<FutureState> state_{FutureState::pending};
  std::exception_ptr error_;
  mutable std::unique_ptr<Listeners> listeners_;
};

// void results are stored as Unit so that one template serves both.
struct Unit {};

template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, Unit, T>;

// Not final: SubmitTask (task.hpp) is a State and the task that completes it, in one object.
template <class T>
class State : public StateBase {
 public:
  void set_result(Stored<T> value) {
    complete([&] { value_.emplace(std::move(value)); });
  }
  // Call only once finished without error.
  const Stored<T>& value() const noexcept { return *value_; }

 protected:
  std::string result_type_name() const override {
    if constexpr (std::is_void_v<T>) {
      return "void";
    } else {
      return demangle(typeid(T));
    }
  }

 private:
  std::optional<Stored<T>> value_;
};

}  // namespace concurrent::futures::detail
