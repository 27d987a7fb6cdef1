/// @file
/// `cf::ProcessPoolExecutor`: C++ functions run in real worker processes, with serialized
/// arguments.
///
/// Each worker is a process with its own channel (a unix socket) to the parent, so a dying worker
/// can corrupt nothing shared. One dispatcher thread in the parent owns every worker: it hands
/// tasks out, reads replies, completes futures (their callbacks run in that thread, as in
/// CPython), and learns of deaths from events (pidfd, the fork server's report, channel
/// end-of-stream), never by polling. A map chunk's results are decoded by the thread that
/// iterates the map when that thread is waiting for the chunk, and by the dispatcher thread on
/// arrival otherwise.
///
/// Scheduling, and what cancel() can reach: a task's future is `running` from the moment the task
/// is handed to a worker; until then it waits in the pool's queue and cancel() succeeds. A worker
/// is handed several tasks ahead only while tasks are short: about 1 ms of measured work in all
/// (and one task queued behind the running one while tasks take under 1 ms), at most 16 tasks,
/// and one at a time while no task time is known yet or when tasks take 1 ms or more. A worker
/// whose head task runs past 1 ms and twice the measured task time gets nothing more until
/// it replies. When a worker is idle with nothing queued, the tasks another worker was handed but
/// has not started are taken back and handed to the idle one (their futures stay running). So with
/// long tasks at most one task per worker is beyond cancel's reach (the one it is running), and a
/// task never waits behind a long one while another worker is idle.
///
/// What can be sent: see transportable.hpp (the rule: nothing that holds an address of this
/// process; lambdas with captures are refused, cf::partial binds values instead). Submitting
/// anything else to a ProcessPoolExecutor (submit, map, map_unordered, starmap, then) is a
/// compile-time error naming the refused type; through cf::Executor& it is a future failing with
/// SerializationError.
///
/// Failures: an exception at any step of one task (serializing its arguments here, reading them in
/// the worker, running it, serializing its result there, reading it here) fails that future only.
/// A worker process that ends while it holds a task is a crash, handled by on_worker_crash. A task
/// running longer than task_timeout has its worker killed and replaced and raises TimeoutError;
/// that is not a crash. Nothing hangs: every unfinished future ends.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

#include "concurrent/futures/executor.hpp"
#include "concurrent/futures/remote_executor.hpp"

namespace concurrent::futures {

/// How a ProcessPoolExecutor starts its workers.
enum class StartMethod {
  fork,        ///< fork the calling process (all workers at the first submit)
  forkserver,  ///< fork workers from a single-threaded server process made with the executor
  spawn,       ///< start the program afresh; main must call cf::serve_if_worker(argc, argv) first
};

/// What a ProcessPoolExecutor does when a worker process dies while it holds a task.
enum class CrashPolicy {
  break_pool,      ///< CPython: every unfinished future and later submits get BrokenProcessPool
  replace_worker,  ///< only the dead worker's task fails; a new worker takes its place
};

/// The options of a ProcessPoolExecutor (Python's constructor arguments, and more).
struct ProcessPoolOptions {
  /// Default: the CPUs this process may use; 0 -> std::invalid_argument.
  std::optional<std::size_t> max_workers = std::nullopt;
  /// How workers are started (see StartMethod).
  StartMethod start_method = StartMethod::forkserver;
  /// Runs once in each worker before its first task; if it throws, the pool is broken.
  void (*initializer)() = nullptr;
  /// 0: unlimited; else a worker is replaced after this many tasks (std::invalid_argument with
  /// fork, as in CPython).
  std::size_t max_tasks_per_child = 0;
  /// A task running longer than this (counted from its start in the worker) has its worker killed
  /// and replaced; its future raises TimeoutError.
  std::optional<std::chrono::nanoseconds> task_timeout = std::nullopt;
  /// What a worker dying while it holds a task does (see CrashPolicy).
  CrashPolicy on_worker_crash = CrashPolicy::break_pool;
};

/// Runs C++ functions in worker processes, Python's ProcessPoolExecutor (see the file comment).
class ProcessPoolExecutor : public RemoteExecutor {
 public:
  ProcessPoolExecutor();
  explicit ProcessPoolExecutor(std::size_t max_workers);
  explicit ProcessPoolExecutor(ProcessPoolOptions options);
  /// shutdown(wait=true): pending work runs, every worker (and the fork server) is reaped.
  ~ProcessPoolExecutor() override;

  /// See Executor::shutdown. wait=false returns at once; the dispatcher thread finishes the work
  /// and reaps the workers in the background.
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  std::size_t max_workers() const override;

  /// shutdown(wait=false, cancel_futures=true), then SIGTERM to every worker: pending futures end
  /// cancelled, running ones fail with BrokenProcessPool; later submits throw ShutdownError.
  void terminate_workers();
  /// As terminate_workers(), with SIGKILL.
  void kill_workers();

  /// Process ids of the live workers, and of the fork server (or -1); for tests and monitoring.
  ///@{
  std::vector<int> worker_pids() const;
  int forkserver_pid() const;
  ///@}

 protected:
  void schedule(detail::TaskPtr task) override;
  void check_open() const override;
  void schedule_remote(detail::RemoteCallPtr call, detail::codec::Buffer request) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

/// First line of main in programs that use StartMethod::spawn: returns at once in a normal
/// process; in a spawned worker it serves tasks and exits, never returning.
void serve_if_worker(int argc, char** argv);

}  // namespace concurrent::futures
