// How work that outlives an executor reaches it: map ranges, then(executor, fn) continuations
// and resume_on hold an ExecutorLink, never the executor itself.
//
// Every Executor owns one link (shared with those holders) and closes it first thing in its
// destructor (Executor::disconnect). From then on the link refuses work with ShutdownError
// instead of touching a destroyed object. The link's mutex is held while a call is in the
// executor, so close() waits for a call in progress; schedule() never blocks, so that is short.
#pragma once

#include <cstddef>
#include <mutex>
#include <type_traits>
#include <utility>

#include "concurrent/futures/detail/task.hpp"
#include "concurrent/futures/future.hpp"

namespace concurrent::futures {

class Executor;

namespace detail {

class ExecutorLink {
 public:
  explicit ExecutorLink(Executor* executor) : executor_(executor) {}
  ExecutorLink(const ExecutorLink&) = delete;
  ExecutorLink& operator=(const ExecutorLink&) = delete;

  // Submits fn(args...) to the executor, as Executor::submit does; ShutdownError once the
  // executor is gone.
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args) {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    Future<R> future;
    schedule(make_task(future, std::forward<F>(fn), std::forward<Args>(args)...));
    return future;
  }
  // Hands `task` to the executor; ShutdownError once the executor is gone.
  void schedule(TaskPtr task);
  // The executor's max_workers(); 1 once it is gone.
  std::size_t max_workers();
  // Whether the executor runs its tasks in this process (Executor::in_process); true once it is
  // gone, where every schedule() throws anyway.
  bool in_process();
  // The executor is being destroyed: refuse everything from now on.
  void close() noexcept {
    std::lock_guard lock(mu_);
    executor_ = nullptr;
  }

 private:
  std::mutex mu_;
  Executor* executor_;  // guarded by mu_; nullptr once closed
};

}  // namespace detail
}  // namespace concurrent::futures
