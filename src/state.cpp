// The future state machine (see detail/state.hpp for the locking rules) and the process-wide
// error handler that callback and initializer failures are reported to.
#include "concurrent/futures/detail/state.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>

#include "concurrent/futures/future.hpp"

namespace concurrent::futures {

namespace {

std::mutex& handler_mutex() {
  static std::mutex mu;
  return mu;
}

std::function<void(std::string_view)>& handler_slot() {
  static std::function<void(std::string_view)> handler;
  return handler;
}

void write_to_stderr(std::string_view message) {
  std::fprintf(stderr, "%.*s\n", static_cast<int>(message.size()), message.data());
}

const char* upper_name(FutureState s) {
  switch (s) {
    case FutureState::pending:
      return "PENDING";
    case FutureState::running:
      return "RUNNING";
    case FutureState::cancelled:
      return "CANCELLED";
    case FutureState::finished:
      return "FINISHED";
  }
  return "UNKNOWN";
}

}  // namespace

std::function<void(std::string_view)> set_error_handler(
    std::function<void(std::string_view)> handler) {
  std::lock_guard lock(handler_mutex());
  std::function<void(std::string_view)> previous = std::move(handler_slot());
  handler_slot() = std::move(handler);
  if (!previous) previous = write_to_stderr;
  return previous;
}

const char* to_string(FutureState s) noexcept {
  switch (s) {
    case FutureState::pending:
      return "pending";
    case FutureState::running:
      return "running";
    case FutureState::cancelled:
      return "cancelled";
    case FutureState::finished:
      return "finished";
  }
  return "unknown";
}

namespace detail {

std::string demangle(const std::type_info& type) {
  int status = 0;
  char* name = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  if (status != 0 || name == nullptr) return type.name();
  std::string result(name);
  std::free(name);  // NOLINT(cppcoreguidelines-no-malloc): the ABI hands us malloc'd memory
  return result;
}

std::string exception_type_name(const std::exception_ptr& e) {
  if (!e) return "nullptr";
  try {
    std::rethrow_exception(e);
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return type != nullptr ? demangle(*type) : std::string("unknown exception");
  }
}

std::string exception_message(const std::exception_ptr& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception of type " + exception_type_name(e);
  }
}

void report_error(std::string_view message) noexcept {
  try {
    // Called outside the lock: a handler may report, or install another handler, itself.
    std::function<void(std::string_view)> handler;
    {
      std::lock_guard lock(handler_mutex());
      handler = handler_slot();
    }
    if (handler) {
      handler(message);
    } else {
      write_to_stderr(message);
    }
  } catch (...) {
    // The handler itself failed: there is nowhere left to report to.
  }
}

Helper*& current_helper() noexcept {
  thread_local Helper* helper = nullptr;
  return helper;
}

void StateLock::lock_contended() noexcept {
  for (int i = 0; i < 64; ++i) {
    int expected = 0;
    if (word_.load(std::memory_order_relaxed) == 0 &&
        word_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
      return;
    }
    cpu_relax();
  }
  // Marked as waited for (2) from here on: whoever unlocks then wakes one waiter. A thread that
  // takes the lock this way leaves it marked 2, which at worst costs one needless wake-up.
  while (word_.exchange(2, std::memory_order_acquire) != 0)
    word_.wait(2, std::memory_order_relaxed);
}

bool StateBase::cancel() {
  std::unique_lock lock(mu_);
  switch (state_.load(std::memory_order_relaxed)) {
    case FutureState::running:
    case FutureState::finished:
      return false;
    case FutureState::cancelled:
      return true;
    case FutureState::pending:
      break;
  }
  finish_locked(lock, FutureState::cancelled);
  return true;
}

bool StateBase::set_running_or_notify_cancel() {
  std::lock_guard lock(mu_);
  const FutureState s = state_.load(std::memory_order_relaxed);
  if (s == FutureState::cancelled) return false;
  if (s != FutureState::pending) {
    throw InvalidStateError(std::string("Future in unexpected state: ") + upper_name(s));
  }
  state_.store(FutureState::running, std::memory_order_release);
  return true;
}

void StateBase::set_exception(std::exception_ptr error) {
  if (!error) throw std::invalid_argument("set_exception needs an exception, not nullptr");
  complete([&] { error_ = std::move(error); });
}

void StateBase::throw_if_done_locked() const {
  const FutureState s = state_.load(std::memory_order_relaxed);
  if (s == FutureState::finished || s == FutureState::cancelled) {
    throw InvalidStateError(std::string(upper_name(s)) + ": " + repr());
  }
}

void StateBase::finish_locked(std::unique_lock<StateLock>& lock, FutureState final_state) {
  state_.store(final_state, std::memory_order_release);
  if (!listeners_) return;  // the lock is released by its owner
  // Waiters are told under the lock (see the header: that is what makes remove_waiter safe).
  for (Waiter* waiter : listeners_->waiters) waiter->on_done(*this);
  listeners_->waiters.clear();
  std::vector<Callback> callbacks = std::move(listeners_->callbacks);
  listeners_->callbacks.clear();
  lock.unlock();
  for (Callback& callback : callbacks) run_callback(callback);
}

void StateBase::run_callback(Callback& callback) noexcept {
  try {
    callback(*this);
  } catch (...) {
    const std::exception_ptr e = std::current_exception();
    report_error("exception calling callback for " + repr() + ": " + exception_type_name(e) + ": " +
                 exception_message(e));
  }
}

void StateBase::add_done_callback(Callback callback) {
  {
    std::lock_guard lock(mu_);
    if (!done()) {
      listeners_locked().callbacks.push_back(std::move(callback));
      return;
    }
  }
  run_callback(callback);
}

StateBase::Listeners& StateBase::listeners_locked() const {
  if (!listeners_) listeners_ = std::make_unique<Listeners>();
  return *listeners_;
}

bool StateBase::add_waiter(Waiter* waiter) const {
  std::lock_guard lock(mu_);
  if (done()) return false;
  listeners_locked().waiters.push_back(waiter);
  return true;
}

void StateBase::remove_waiter(Waiter* waiter) const noexcept {
  std::lock_guard lock(mu_);
  if (!listeners_) return;
  std::vector<Waiter*>& waiters = listeners_->waiters;
  const auto it = std::find(waiters.begin(), waiters.end(), waiter);
  if (it != waiters.end()) waiters.erase(it);
}

namespace {
struct SignalWaiter final : Waiter {
  explicit SignalWaiter(Signal& s) : signal(s) {}
  void on_done(const StateBase& /*state*/) noexcept override { signal.notify(); }
  Signal& signal;
};
}  // namespace

bool StateBase::wait(const Deadline& deadline) const {
  if (done()) return true;
  if (expired(deadline)) return false;
  Signal signal;
  SignalWaiter waiter(signal);
  if (!add_waiter(&waiter)) return true;
  const bool ok = block_until([this] { return done(); }, deadline, signal);
  remove_waiter(&waiter);
  return ok;
}

void StateBase::wait_or_throw(const Deadline& deadline) const {
  if (!wait(deadline)) throw TimeoutError("timed out waiting for " + repr());
  if (state() == FutureState::cancelled) throw CancelledError();
}

std::exception_ptr StateBase::exception(const Deadline& deadline) const {
  wait_or_throw(deadline);
  return error_;
}

std::string StateBase::repr() const {
  std::ostringstream out;
  out << "<Future at " << static_cast<const void*>(this) << " state=";
  const FutureState s = state();
  out << to_string(s);
  if (s == FutureState::finished) {
    if (error_) {
      out << " raised " << exception_type_name(error_);
    } else {
      out << " returned " << result_type_name();
    }
  }
  out << '>';
  return out.str();
}

}  // namespace detail
}  // namespace concurrent::futures
