// The parent's side of every remote executor: a queue of tasks whose requests are written, handed
// to workers over a Transport, and completed from their replies. Transport-neutral: it owns the
// scheduling (which worker gets what, how much is handed ahead), each worker's lifecycle, the crash
// policy, deadlines (task_timeout, a worker that never says hello) and breaking the pool.
//
// Threads: submitters write their task's request in their own thread (a large argument costs the
// caller, not the pool) and put it in the inbox; one dispatcher thread owns everything else. They
// share only the inbox and a few flags under `mu_`, which is never held across a call into the
// transport (so a submit never waits for a process to start). Futures are completed, and so their
// callbacks run, on the dispatcher thread.
//
// Scheduling: a worker holds a window of tasks, the head one running and the rest queued in its
// stream, so that it need not wait a round trip between short tasks. How many it may hold comes
// from the measured task time: about kHandAheadBudget of work in all, and at least one task
// queued behind the running one while tasks take less than kPipelineBelow (the next is then at the
// worker when the current one ends, even where a round trip takes longer than the budget, as an
// MPI one does on a busy host). Long tasks are handed one at a time (a task never waits behind a
// long one while another worker is idle, and queued tasks stay in the pool's queue, where
// cancel() reaches them), while short ones are pipelined. The budget is a millisecond because
// the dispatcher thread shares the CPUs with the workers and with the thread that consumes the
// results: on a host with as many CPUs as workers it can wait most of a scheduler slice before it
// runs, and a worker with less than that queued goes idle meanwhile (seed (b), map of 200 chunks
// of about 300 us on 2 MPI ranks, alternated runs: 0.68-1.03 of the process pool's speed-up with
// 200 us, 0.97-1.02 with 1 ms; later runs with 1 ms still fell to 0.69-0.84 at times, see
// bench/RESULTS.md). The budget is also the least a head runs before the tasks queued behind it
// may be taken back (stall_threshold). A worker whose head task has run longer than the budget
// and twice the measured task time gets nothing more until it replies, and when a worker is idle
// with nothing queued, the tasks that a worker stuck on a long head has not started are taken back
// (Transport::take_back) and handed to the idle one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "concurrent/futures/detail/codec.hpp"
#include "concurrent/futures/detail/task.hpp"
#include "concurrent/futures/process_pool.hpp"
#include "remote/transport.hpp"

namespace concurrent::futures::detail::remote {

// Who the workers are, for the words of a broken pool and its exception type.
enum class PoolKind {
  processes,  // BrokenProcessPool
  mpi_ranks,  // BrokenExecutor
};

struct DispatcherOptions {
  PoolKind kind = PoolKind::processes;
  std::size_t max_workers = 1;
  std::size_t max_tasks_per_child = 0;  // 0: unlimited
  std::optional<std::chrono::nanoseconds> task_timeout;
  CrashPolicy on_worker_crash = CrashPolicy::break_pool;
  // Start every worker at the first task (CPython's fork method) rather than on demand.
  bool start_all_at_once = false;
  WorkerConfig config;
};

class Dispatcher final : private TransportEvents {
 public:
  using Clock = std::chrono::steady_clock;

  // The work a task may have queued ahead of it in one worker (see the file comment).
  static constexpr std::chrono::microseconds kHandAheadBudget{1000};
  static constexpr std::chrono::microseconds kPipelineBelow{1000};
  static constexpr std::size_t kMaxWindow = 16;
  // Workers in a row that may die before they are ready before the pool breaks (replace_worker):
  // otherwise an initializer that crashes would have workers replaced for ever.
  static constexpr int kMaxStartupFailures = 3;

  // Starts the dispatcher thread, which opens the transport; throws what open() threw, and
  // SerializationError when the config cannot be sent (an initializer that cannot be named).
  Dispatcher(DispatcherOptions options, std::unique_ptr<Transport> transport);
  // shutdown(wait=true).
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // ShutdownError after shutdown, BrokenProcessPool when broken.
  void check_open() const;
  // Queues a task whose request is written; throws as check_open(). A request larger than the
  // transport's largest message fails the task's future instead.
  void submit(RemoteCallPtr call, codec::Buffer request);
  // A task as the Executor interface hands it: its request is written here, in the caller's
  // thread. A task that cannot leave the process, or whose request cannot be written, fails its
  // own future; the pool goes on.
  void submit(TaskPtr task);
  void shutdown(bool wait, bool cancel_futures);
  // shutdown(wait=false, cancel_futures=true), then every worker is stopped with `signal`.
  void terminate(StopSignal signal);

  std::vector<int> worker_pids() const;

  // How many tasks a worker may hold, given the measured task time (nullopt: none measured yet)
  // and how long its head task has been running (nullopt: it holds none).
  static std::size_t window_for(std::optional<Clock::duration> task_time,
                                std::optional<Clock::duration> head_age);
  const Transport& transport() const noexcept { return *transport_; }

 private:
  // A worker's place in its life. The transitions are made in enter() alone.
  enum class Lifecycle {
    active,     // takes tasks (before its hello too: they wait in its stream)
    retiring,   // took max_tasks_per_child tasks: leaves by itself after its last reply
    exiting,    // told to leave, or retired with nothing left: leaves by itself
    lost,       // its stream ended while it held tasks or its place: its death comes next
    stopped,    // stopped by terminate_workers/kill_workers or a broken pool
    timed_out,  // stopped because its head task ran past task_timeout
    failed,     // stopped because its stream could not be followed
  };

  struct Queued {
    RemoteCallPtr call;
    codec::Buffer request;
    bool started = false;  // handed out before (requeued from a worker that never ran it)
  };
  // A task a worker holds. Its request is kept until the reply comes, so that a task the worker
  // never started can be handed to another one.
  struct InFlight {
    Queued task;
    std::uint64_t id = 0;
    bool started = false;  // known started when its worker's claims were closed (close_claims)
  };

  struct Worker {
    WorkerId id = 0;
    int pid = -1;
    Lifecycle state = Lifecycle::active;
    // What it has done so far (facts, not states: a worker may retire before it is ready).
    bool said_hello = false;
    bool was_ready = false;
    bool stream_failed = false;  // its stream could not be followed: nothing more is read
    bool claims_closed = false;  // it can start nothing more; its window's `started` are exact
    std::deque<InFlight> window;
    std::size_t handed = 0;
    std::uint64_t replied = 0;                  // replies read: the tasks it has finished
    StopSignal stop_signal = StopSignal::kill;  // stopped: with what
    std::uint64_t timed_out_task = 0;           // timed_out: which task
    Clock::time_point launched;
    Clock::time_point exiting_since;  // when it entered `exiting`
    bool exit_forced = false;         // stopped for overstaying Transport::exit_grace()
    Clock::time_point head_since;     // when the head task started (or was handed, if later)
  };

  // TransportEvents.
  void on_worker_id(WorkerId worker, int pid) override;
  void on_message(WorkerId worker, Message& message) override;
  void on_stream_end(WorkerId worker, const std::string& error) override;
  void on_death(WorkerId worker, const std::string& how) override;
  void on_transport_failure(const std::string& why) override;
  void on_launch_failure(WorkerId worker, const std::string& why) override;

  void thread_main(std::promise<void>& opened);
  void loop();
  void absorb_inbox();
  bool finished();
  void dispatch();
  Worker* pick_worker(Clock::time_point now);
  Worker& launch_worker();
  void hand(Worker& w, Queued task);
  std::size_t window_limit(const Worker& w, Clock::time_point now) const;
  Clock::duration stall_threshold() const;
  bool take_back_stalled(Clock::time_point now);
  bool any_idle_worker() const;
  std::optional<Clock::time_point> stall_deadline(const Worker& w) const;
  std::size_t workers_holding_slots() const;
  void record_task_time(Clock::duration took);

  static bool accepting(Lifecycle s) { return s == Lifecycle::active; }
  void enter(Worker& w, Lifecycle next);
  void stop(Worker& w, StopSignal signal, Lifecycle why);

  void complete_head(Worker& w, Message& reply);
  void protocol_failure(Worker& w, const std::string& why);
  void close_claims(Worker& w);
  void requeue_unstarted(std::deque<InFlight> window, const std::string& why_started_failed);
  void fail_window(std::deque<InFlight>& window, const std::string& message);
  void requeue(std::deque<InFlight> window);
  // Why a pool breaks: a worker died (CPython's words), or one could not be started.
  enum class BreakCause { worker_died, cannot_start };
  void break_pool(const std::string& why, BreakCause cause = BreakCause::worker_died);
  void stop_all(StopSignal signal);

  std::optional<std::chrono::milliseconds> next_timeout() const;
  void check_deadlines();
  std::string who(const Worker& w) const { return transport_->worker_name(w.pid); }
  struct Words {
    const char* broken_pool;   // "..., the pool is not usable anymore"
    const char* one_in_pool;   // "<a worker> of the pool"
    const char* cannot_start;  // "... could not be started, the pool is not usable anymore"
  };
  Words words() const;
  // The exception of a broken pool, or of a task whose worker was lost, of the pool's kind.
  std::exception_ptr broken(const std::string& message) const;

  const DispatcherOptions options_;
  const std::unique_ptr<Transport> transport_;
  codec::Buffer config_;

  // Shared with submitters: everything below under mu_.
  mutable std::mutex mu_;
  std::deque<Queued> inbox_;
  bool shutdown_ = false;
  bool cancel_requested_ = false;
  std::optional<StopSignal> stop_requested_;
  bool sleeping_ = false;
  std::string broken_;  // written by the dispatcher thread only (so it reads it without mu_)
  std::string broken_futures_message_;
  std::vector<int> pids_;

  std::thread thread_;
  std::mutex join_mu_;

  // The dispatcher thread's own.
  std::map<WorkerId, Worker> workers_;
  std::deque<Queued> pending_;
  WorkerId next_worker_ = 1;
  std::uint64_t next_task_id_ = 1;
  bool started_all_ = false;
  int startup_failures_ = 0;                  // workers in a row that died before they were ready
  std::optional<Clock::duration> task_time_;  // moving average of measured task times
};

}  // namespace concurrent::futures::detail::remote
