/// @file
/// `cf::ThreadPoolExecutor`: runs tasks on a pool of threads (Python's ThreadPoolExecutor; in C++
/// the threads run truly in parallel, so CPU-bound work scales).
///
/// Threads start lazily: a submit starts a new thread only when no started thread is idle and
/// fewer than max_workers exist, so an idle thread is always reused first. One worker runs tasks
/// in submission order; with several, each takes its share of the queue (at most 64 tasks) in one
/// step and idle workers take from busy workers' shares, so tasks start in about submission order
/// and none waits behind a long task while a worker is idle. A worker that waits on a future
/// (result, wait, as_completed, map iteration) while every thread of its pool is busy runs the
/// pool's pending tasks meanwhile, so nested submit-and-wait never deadlocks, even with
/// max_workers = 1. (A task it runs so may itself wait on work queued behind it; as in every
/// work-helping pool, a cycle of tasks waiting on each other can still deadlock.) A thread that is
/// not one of the pool's never runs its tasks: at most max_workers tasks of a pool run at once,
/// each in a thread the initializer ran in.
///
/// If the initializer throws in any worker, the pool is broken: pending futures fail with
/// BrokenThreadPool and later submits throw it. The failure is reported to the error handler.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "concurrent/futures/executor.hpp"

namespace concurrent::futures {

/// The options of a ThreadPoolExecutor (Python's constructor arguments).
struct ThreadPoolOptions {
  /// Default min(32, CPUs this process may use + 4); 0 -> std::invalid_argument.
  std::optional<std::size_t> max_workers = std::nullopt;
  /// Worker threads are named "<prefix>_<n>" (Linux keeps 15 bytes); the default prefix is
  /// "ThreadPoolExecutor-<k>", k counting the pools made by this process.
  std::string thread_name_prefix = {};
  /// Runs first in each worker thread; if it throws, the pool is broken.
  std::function<void()> initializer = {};
};

/// Runs tasks on a pool of threads, Python's ThreadPoolExecutor (see the file comment).
class ThreadPoolExecutor : public Executor {
 public:
  ThreadPoolExecutor();
  explicit ThreadPoolExecutor(std::size_t max_workers);
  explicit ThreadPoolExecutor(ThreadPoolOptions options);
  /// shutdown(wait=true): runs all pending work, then joins every thread.
  ~ThreadPoolExecutor() override;

  /// See Executor::shutdown. Returns at once without wait; the threads finish the queue (unless
  /// cancel_futures emptied it) and end by themselves. Called with wait from one of this pool's
  /// own tasks, it waits for every other thread; the caller's own is joined by the destructor.
  /// Destroying the pool from one of its own tasks is not supported.
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  std::size_t max_workers() const override;
  /// Threads started so far (for tests and monitoring).
  std::size_t thread_count() const;

  /// CPython's default for max_workers: min(32, CPUs this process may use + 4).
  static std::size_t default_max_workers();

 protected:
  void schedule(detail::TaskPtr task) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace concurrent::futures
