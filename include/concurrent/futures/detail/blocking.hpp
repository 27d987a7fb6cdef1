// How every blocking call of the library waits: Future::result/exception, wait, as_completed and
// map iteration all end in block_until().
//
// A waiter registers a Signal with whatever can complete its condition (a future's completion
// notifies it under the future's lock, see state.hpp), then calls block_until(). The Signal is
// a sticky flag: a notify() that lands between the predicate check and the sleep is not lost.
//
// Helping: a thread that is a worker of a pool (ThreadPoolExecutor) has a Helper installed in a
// thread-local. While it waits, it runs the pool's pending tasks instead of sleeping, and when
// there is nothing to run it parks so that both the awaited completion and a new task wake it.
// This is what lets a task submit to its own pool and wait on the result, even with one worker.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

namespace concurrent::futures::detail {

using Clock = std::chrono::steady_clock;
// nullopt: wait forever. A deadline in the past: poll.
using Deadline = std::optional<Clock::time_point>;

template <class Rep, class Period>
Deadline deadline_after(std::chrono::duration<Rep, Period> timeout) {
  if (timeout <= timeout.zero()) return Clock::now();
  // Saturate instead of overflowing for absurdly long timeouts (e.g. hours::max()).
  const auto now = Clock::now();
  const auto limit =
      std::chrono::duration_cast<std::chrono::duration<double>>(Clock::time_point::max() - now);
  if (std::chrono::duration<double>(timeout) >= limit) return std::nullopt;
  return now + std::chrono::ceil<Clock::duration>(timeout);
}

inline bool expired(const Deadline& deadline) { return deadline && Clock::now() >= *deadline; }

// A sticky wake-up flag: notify() sets it, wait() sleeps until it is set (or the deadline
// passes) and clears it.
class Signal {
 public:
  void notify() noexcept {
    {
      std::lock_guard lock(mu_);
      notified_ = true;
    }
    cv_.notify_all();
  }
  bool wait(const Deadline& deadline) {
    std::unique_lock lock(mu_);
    if (deadline) {
      cv_.wait_until(lock, *deadline, [&] { return notified_; });
    } else {
      cv_.wait(lock, [&] { return notified_; });
    }
    const bool was = notified_;
    notified_ = false;
    return was;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

// Implemented by pools whose workers help while they wait.
class Helper {
 public:
  // Runs one pending task of the pool in the calling thread; false if there was none.
  virtual bool run_one_pending() = 0;
  // Registers `signal` to be notified when work is queued. Returns false (and registers
  // nothing) if work is already queued, so the caller should run it instead of sleeping.
  virtual bool park(Signal& signal) = 0;
  virtual void unpark(Signal& signal) = 0;

 protected:
  ~Helper() = default;
};

// The pool the calling thread works for, or nullptr.
Helper*& current_helper() noexcept;

// One step of a busy-wait: tells the CPU that this thread is spinning (x86 `pause`). Shared by
// every spin of the library (spin_until, StateLock, the thread pool's idle worker).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Short busy-wait before sleeping: a result that arrives within a few microseconds is picked up
// without two context switches (that is most of a submit/result round trip).
template <class Pred>
bool spin_until(Pred& ready) {
  for (int i = 0; i < 64; ++i) {
    if (ready()) return true;
    cpu_relax();
  }
  return ready();
}

// Blocks until ready() is true (returns true) or the deadline passes (returns false). `signal`
// must be registered with whatever makes ready() true. Runs pool tasks meanwhile when called on
// a pool worker thread.
template <class Pred>
bool block_until(Pred ready, const Deadline& deadline, Signal& signal) {
  if (spin_until(ready)) return true;
  Helper* helper = current_helper();
  for (;;) {
    if (ready()) return true;
    if (expired(deadline)) return false;
    if (helper != nullptr) {
      if (helper->run_one_pending()) continue;
      if (!helper->park(signal)) continue;
      signal.wait(deadline);
      helper->unpark(signal);
    } else {
      signal.wait(deadline);
    }
  }
}

}  // namespace concurrent::futures::detail
