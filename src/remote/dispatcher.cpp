#include "remote/dispatcher.hpp"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "concurrent/futures/errors.hpp"
#include "system.hpp"

namespace concurrent::futures::detail::remote {

namespace {

const char* signal_name(StopSignal s) { return s == StopSignal::kill ? "SIGKILL" : "SIGTERM"; }

// A worker that could not be started (fork, a descriptor, ...): the pool breaks with words that
// say so, not those of a worker that died.
struct StartFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "<what>: <strerror> (EAGAIN: <likely cause>)" for a system error, what() for anything else.
std::string explain(const std::exception& e) {
  std::string text = e.what();
  if (const auto* sys = dynamic_cast<const std::system_error*>(&e)) {
    const std::string cause = errno_cause(sys->code().value());
    if (!cause.empty()) text += " (" + cause + ")";
  }
  return text;
}

// The same error, its message prefixed with `context` (what could not be done), for a system
// error that leaves the pool's constructor: the caller may still read its code.
std::system_error in_context(const std::system_error& e, const std::string& context) {
  // std::system_error appends the error's text to what() again: take it off what() first.
  std::string what = e.what();
  const std::string message = e.code().message();
  if (what == message) what.clear();
  if (what.ends_with(": " + message)) what.resize(what.size() - message.size() - 2);
  const std::string cause = errno_cause(e.code().value());
  return std::system_error(e.code(), context + (what.empty() ? "" : ": " + what) +
                                         (cause.empty() ? "" : " (" + cause + ")"));
}

}  // namespace

Dispatcher::Dispatcher(DispatcherOptions options, std::unique_ptr<Transport> transport)
    : options_(std::move(options)),
      transport_(std::move(transport)),
      config_(encode(options_.config)) {
  std::promise<void> opened;
  auto opened_future = opened.get_future();
  try {
    thread_ = std::thread([this, &opened] { thread_main(opened); });
  } catch (const std::system_error& e) {
    throw in_context(e, "cannot start the pool's dispatcher thread");
  }
  try {
    opened_future.get();  // rethrows a failure to open the transport
  } catch (...) {
    thread_.join();  // it has returned already
    throw;
  }
}

Dispatcher::~Dispatcher() {
  shutdown(/*wait=*/true, /*cancel_futures=*/false);
  // Still joinable only when a done-callback destroys its own pool (not supported): let go
  // rather than terminate.
  if (thread_.joinable()) thread_.detach();
}

void Dispatcher::check_open() const {
  std::lock_guard lock(mu_);
  if (!broken_.empty()) std::rethrow_exception(broken(broken_));
  if (shutdown_) throw ShutdownError();
}

void Dispatcher::submit(TaskPtr task) {
  check_open();
  if (task->remote() == nullptr) {
    task->abandon(std::make_exception_ptr(SerializationError(task->why_not_remote())));
    return;
  }
  codec::Buffer request;
  try {
    codec::Writer w(request);
    task->write_request(w);
  } catch (...) {
    task->abandon(std::current_exception());  // this future only; the pool goes on
    return;
  }
  submit(to_remote(task), std::move(request));
}

void Dispatcher::submit(RemoteCallPtr call, codec::Buffer request) {
  if (!request.descriptors().empty() && !transport_->passes_descriptors()) {
    call->abandon(std::make_exception_ptr(SerializationError(
        "a cf::SharedArray cannot travel to this executor's workers: a shared array is memory of "
        "one machine, and only ProcessPoolExecutor passes it (see shared_array.hpp)")));
    return;
  }
  if (request.size() > transport_->max_payload()) {
    call->abandon(std::make_exception_ptr(SerializationError(
        "a task's arguments take more than " + std::to_string(transport_->max_payload() >> 20) +
        " MiB, the most one message holds")));
    return;
  }
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (!broken_.empty()) std::rethrow_exception(broken(broken_));
    if (shutdown_) throw ShutdownError();
    inbox_.push_back(Queued{std::move(call), std::move(request)});
    wake = std::exchange(sleeping_, false);
  }
  if (wake) transport_->wake();
}

void Dispatcher::shutdown(bool wait, bool cancel_futures) {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    if (cancel_futures) cancel_requested_ = true;
  }
  transport_->wake();
  if (!wait) return;
  std::lock_guard lock(join_mu_);
  // A done-callback (they run on the dispatcher thread) may shut the pool down: the thread
  // cannot wait for itself, so it goes on and the destructor lets it finish.
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Dispatcher::terminate(StopSignal signal) {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    cancel_requested_ = true;
    stop_requested_ = signal;
  }
  transport_->wake();
}

std::vector<int> Dispatcher::worker_pids() const {
  std::lock_guard lock(mu_);
  return pids_;
}

// --- the dispatcher thread ----------------------------------------------------------------------

void Dispatcher::thread_main(std::promise<void>& opened) {
  try {
    transport_->open(*this);
    opened.set_value();
  } catch (const std::system_error& e) {
    opened.set_exception(std::make_exception_ptr(in_context(e, "cannot start the pool")));
    return;
  } catch (...) {
    opened.set_exception(std::current_exception());
    return;
  }
  try {
    loop();
  } catch (const StartFailure& e) {
    // Out of processes, descriptors or memory: the workers started go, every future fails with
    // the reason, and a later pool may work again.
    break_pool(e.what(), BreakCause::cannot_start);
    stop_all(StopSignal::kill);
    transport_->reap_all();
  } catch (const std::exception& e) {
    // An internal failure (out of descriptors, ...): fail everything rather than hang.
    break_pool(std::string("the pool's dispatcher failed: ") + e.what());
    stop_all(StopSignal::kill);
    transport_->reap_all();
  }
  transport_->close();
}

void Dispatcher::loop() {
  for (;;) {
    absorb_inbox();
    dispatch();
    const bool done = finished();  // may queue exit messages: flush after it
    transport_->flush();
    if (done) return;
    bool sleep = false;
    {
      // A submit after this point sees sleeping_ and wakes the transport, which ends the wait
      // below at once; one before it left work in the inbox: do not sleep.
      std::lock_guard lock(mu_);
      sleep = sleeping_ = inbox_.empty();
    }
    transport_->wait(sleep ? next_timeout() : std::chrono::milliseconds(0));
    {
      std::lock_guard lock(mu_);
      sleeping_ = false;
    }
    check_deadlines();
  }
}

bool Dispatcher::finished() {
  {
    std::lock_guard lock(mu_);
    if (!(shutdown_ || !broken_.empty()) || !inbox_.empty()) return false;
  }
  if (!pending_.empty()) return false;
  if (workers_.empty()) return true;
  // No work left: ask the workers to leave, and wait for them to go.
  for (auto& [id, w] : workers_) {
    if (accepting(w.state) && w.window.empty()) {
      transport_->send(id, MessageType::exit, 0);
      enter(w, Lifecycle::exiting);
    }
  }
  return false;
}

void Dispatcher::absorb_inbox() {
  std::deque<Queued> incoming;
  std::optional<StopSignal> stop_signal;
  bool cancel = false;
  {
    std::lock_guard lock(mu_);
    incoming.swap(inbox_);
    cancel = std::exchange(cancel_requested_, false);
    stop_signal = std::exchange(stop_requested_, std::nullopt);
  }
  for (Queued& q : incoming) pending_.push_back(std::move(q));
  if (cancel) {
    // Tasks handed out before (requeued from a worker that died or timed out) are running:
    // they cannot be cancelled, so they stay and run.
    std::deque<Queued> keep;
    for (Queued& q : pending_) {
      if (q.started) {
        keep.push_back(std::move(q));
      } else {
        q.call->cancel();
      }
    }
    pending_.swap(keep);
  }
  if (stop_signal) stop_all(*stop_signal);
}

std::size_t Dispatcher::window_for(std::optional<Clock::duration> task_time,
                                   std::optional<Clock::duration> head_age) {
  if (!task_time) return 1;  // nothing measured yet: a long first task must hide nothing
  const auto per_task = std::max<Clock::duration>(*task_time, std::chrono::nanoseconds(1));
  const auto budget = std::chrono::duration_cast<Clock::duration>(kHandAheadBudget);
  // A head that has run well past the tasks measured so far may be a long one.
  if (head_age && *head_age > std::max(budget, per_task * 2)) return 1;
  if (per_task >= kPipelineBelow) return 1;
  const auto ahead = std::max<std::size_t>(1, static_cast<std::size_t>(budget / per_task));
  return std::min<std::size_t>(1 + ahead, kMaxWindow);
}

std::size_t Dispatcher::window_limit(const Worker& w, Clock::time_point now) const {
  return window_for(task_time_, w.window.empty()
                                    ? std::nullopt
                                    : std::optional<Clock::duration>(now - w.head_since));
}

void Dispatcher::record_task_time(Clock::duration took) {
  // A moving average over the last few tasks: quick to follow a change of workload, steady
  // enough that one odd task does not swing the windows.
  task_time_ = task_time_ ? (*task_time_ * 3 + took) / 4 : took;
  transport_->note_task_time(*task_time_);
}

std::size_t Dispatcher::workers_holding_slots() const {
  std::size_t n = 0;
  for (const auto& [id, w] : workers_) {
    // A worker whose stream ended unexpectedly keeps its slot until its death is handled and the
    // crash policy decides: starting another in between would let tasks run on a pool that is
    // about to break. One on its way out for a known reason is replaced at once.
    const bool holds = w.state == Lifecycle::active || w.state == Lifecycle::lost ||
                       (w.state == Lifecycle::retiring && !w.window.empty());
    n += holds ? 1 : 0;
  }
  return n;
}

// Idle workers first, then a new worker (up to max_workers), then the emptiest window with room.
Dispatcher::Worker* Dispatcher::pick_worker(Clock::time_point now) {
  for (auto& [id, w] : workers_) {
    if (accepting(w.state) && w.window.empty()) return &w;
  }
  if (workers_holding_slots() < options_.max_workers &&
      (transport_->can_restart() || next_worker_ <= options_.max_workers)) {
    return &launch_worker();
  }
  Worker* best = nullptr;
  for (auto& [id, w] : workers_) {
    if (accepting(w.state) && w.window.size() < window_limit(w, now) &&
        (best == nullptr || w.window.size() < best->window.size())) {
      best = &w;
    }
  }
  return best;
}

void Dispatcher::dispatch() {
  if (!broken_.empty()) return;
  if (options_.start_all_at_once && !started_all_ && !pending_.empty()) {
    started_all_ = true;
    while (workers_.size() < options_.max_workers) launch_worker();
  }
  const Clock::time_point now = Clock::now();
  do {
    while (!pending_.empty()) {
      Worker* target = pick_worker(now);
      if (target == nullptr) return;
      Queued q = std::move(pending_.front());
      pending_.pop_front();
      if (!q.started && !q.call->start()) continue;  // cancelled while pending
      q.started = true;
      hand(*target, std::move(q));
    }
  } while (take_back_stalled(now));
}

// How long a head task may run before the tasks queued behind it are taken back for an idle
// worker: well past what the windows were sized for, so that short tasks are not shuffled.
Dispatcher::Clock::duration Dispatcher::stall_threshold() const {
  const Clock::duration budget = kHandAheadBudget;
  return task_time_ ? std::max(budget, *task_time_ * 4) : budget;
}

bool Dispatcher::any_idle_worker() const {
  return std::any_of(workers_.begin(), workers_.end(), [](const auto& entry) {
    return accepting(entry.second.state) && entry.second.window.empty();
  });
}

// From when a worker counts as stalled, so that the tasks sent behind its head may be taken
// back: an active, ready worker with more than its head task; nullopt for any other.
std::optional<Dispatcher::Clock::time_point> Dispatcher::stall_deadline(const Worker& w) const {
  if (w.state != Lifecycle::active || !w.was_ready || w.window.size() < 2) return std::nullopt;
  return w.head_since + stall_threshold();
}

// With nothing queued and a worker idle, takes back the tasks a stalled worker has not started
// (see the file comment). True if some went back to the queue.
bool Dispatcher::take_back_stalled(Clock::time_point now) {
  if (!transport_->can_take_back() || !pending_.empty() || !any_idle_worker()) return false;
  bool took = false;
  for (auto& [id, w] : workers_) {
    const auto stalled_from = stall_deadline(w);
    if (!stalled_from || now <= *stalled_from) continue;
    // Counts modulo 2^32, as the transport keeps them. Only a worker that is running a task is
    // taken from (see process/claims.hpp for why that bounds the take-backs), and only when
    // something it has not started is there to take.
    const auto replied = static_cast<std::uint32_t>(w.replied);
    const auto running = [replied](std::uint32_t started) {
      return static_cast<std::size_t>(static_cast<std::uint32_t>(started - replied));
    };
    const std::size_t seen = running(transport_->tasks_started(id));
    if (seen == 0 || seen >= w.window.size()) continue;
    const std::size_t started = running(transport_->take_back(id));
    if (started >= w.window.size()) continue;
    std::deque<InFlight> back;
    while (w.window.size() > started) {
      back.push_front(std::move(w.window.back()));
      w.window.pop_back();
    }
    w.handed -= back.size();
    requeue(std::move(back));
    took = true;
  }
  return took;
}

Dispatcher::Worker& Dispatcher::launch_worker() {
  const WorkerId id = next_worker_++;
  Worker& w = workers_[id];  // first: the transport may report its pid from launch()
  w.id = id;
  w.launched = Clock::now();
  try {
    transport_->launch(id);
  } catch (const std::exception& e) {
    workers_.erase(id);
    throw StartFailure("cannot start a worker process: " + explain(e));  // see thread_main
  }
  try {
    transport_->send(id, MessageType::config, 0, config_);
  } catch (const std::exception& e) {
    throw StartFailure("cannot start a worker process: " + explain(e));
  }
  return w;
}

void Dispatcher::hand(Worker& w, Queued task) {
  const std::uint64_t id = next_task_id_++;
  if (w.window.empty()) w.head_since = Clock::now();
  // In the window first: if sending throws, the dispatcher fails and breaks the pool, which
  // fails the windows' tasks; a task in neither place would be lost.
  w.window.push_back(InFlight{std::move(task), id});
  transport_->send_task(w.id, id, w.window.back().task.request);
  if (options_.max_tasks_per_child != 0 && ++w.handed >= options_.max_tasks_per_child) {
    enter(w, Lifecycle::retiring);
  }
}

// The lifecycle's transitions, in one place. A stopped, timed-out or failed worker stays so until
// its death; only an active worker retires, and only an active or retiring one exits or is lost.
void Dispatcher::enter(Worker& w, Lifecycle next) {
  const Lifecycle now = w.state;
  const bool final =
      now == Lifecycle::stopped || now == Lifecycle::timed_out || now == Lifecycle::failed;
  if (final) return;
  switch (next) {
    case Lifecycle::active:
      return;  // only the start of life
    case Lifecycle::retiring:
      if (now != Lifecycle::active) return;
      break;
    case Lifecycle::exiting:
      if (now != Lifecycle::active && now != Lifecycle::retiring) return;
      w.exiting_since = Clock::now();
      break;
    case Lifecycle::lost:
      if (now != Lifecycle::active && now != Lifecycle::retiring) return;
      break;
    case Lifecycle::stopped:
    case Lifecycle::timed_out:
    case Lifecycle::failed:
      break;
  }
  w.state = next;
}

void Dispatcher::stop(Worker& w, StopSignal signal, Lifecycle why) {
  const Lifecycle before = w.state;
  enter(w, why);
  if (w.state == before) return;  // already stopped for another reason
  w.stop_signal = signal;
  transport_->stop(w.id, signal);
}

// --- events
// ---------------------------------------------------------------------------------------

void Dispatcher::on_worker_id(WorkerId worker, int pid) {
  auto it = workers_.find(worker);
  if (it == workers_.end() || it->second.pid >= 0) return;  // ids may be 0 (rank 0)
  it->second.pid = pid;
  std::lock_guard lock(mu_);
  pids_.push_back(pid);
}

void Dispatcher::on_message(WorkerId worker, Message& message) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  if (w.stream_failed) return;  // no longer followed
  switch (message.type()) {
    case MessageType::hello:
      w.said_hello = true;
      if (message.id() > 0) on_worker_id(worker, static_cast<int>(message.id()));
      return;
    case MessageType::ready:
      // task_timeout counts from the task's start: not the worker's start-up or initializer.
      w.was_ready = true;
      startup_failures_ = 0;
      if (!w.window.empty()) w.head_since = Clock::now();
      return;
    case MessageType::init_failed: {
      std::string what = "the initializer failed";
      try {
        codec::Reader r = message.payload().reader();
        what += ": " + exception_message(codec::read_exception(r));
      } catch (...) {
      }
      break_pool("a worker's initializer failed (" + what + ")");
      return;
    }
    case MessageType::reply:
      complete_head(w, message);
      return;
    default:
      protocol_failure(w, "it sent a message of unknown type " +
                              std::to_string(static_cast<int>(message.type())));
      return;
  }
}

void Dispatcher::complete_head(Worker& w, Message& reply) {
  if (w.window.empty() || w.window.front().id != reply.id()) {
    protocol_failure(w, "a reply came for a task the worker does not hold");
    return;
  }
  const Clock::time_point now = Clock::now();
  record_task_time(now - w.head_since);
  InFlight done = std::move(w.window.front());
  w.window.pop_front();
  ++w.replied;
  if (!w.window.empty()) w.head_since = now;
  if (w.window.empty() && w.state == Lifecycle::retiring) enter(w, Lifecycle::exiting);
  RemoteCall& call = *done.task.call;
  // The request goes before the future completes: a large one's segment is then free for the
  // next request the caller writes as soon as it sees the result (see detail/codec.hpp).
  done.task.request = codec::Buffer();
  try {
    if (reply.payload().size() == 0) {
      throw SerializationError("the worker could not encode its reply");
    }
    call.read_reply(reply.payload());
  } catch (...) {
    call.abandon(std::current_exception());
  }
}

// The worker's stream cannot be followed any more (a corrupt, truncated or oversized frame, a
// reply that cannot be mapped, a message out of order): the worker is killed, as crashed, and
// on_worker_crash decides. break_pool breaks the pool at once, so that no submit slips in before
// the death is reported; with replace_worker its head task fails now with the reason, and the
// tasks queued behind it that it had not started go to other workers when its death is handled.
void Dispatcher::protocol_failure(Worker& w, const std::string& why) {
  if (w.stream_failed) return;
  w.stream_failed = true;
  close_claims(w);
  const std::string crash =
      who(w) + " was killed as crashed: its stream could not be read (" + why + ")";
  if (options_.on_worker_crash == CrashPolicy::break_pool || !transport_->can_restart()) {
    stop(w, StopSignal::kill, Lifecycle::failed);
    break_pool(crash);  // fails every window, this worker's too
    return;
  }
  if (!w.window.empty()) {
    w.window.front().task.call->abandon(
        broken(std::string(words().one_in_pool) +
               " was terminated abruptly while the future was running (" + crash + ")"));
    w.window.pop_front();
  }
  stop(w, StopSignal::kill, Lifecycle::failed);
}

void Dispatcher::on_stream_end(WorkerId worker, const std::string& error) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  if (!error.empty()) {
    protocol_failure(w, "its stream could not be read: " + error);
  } else {
    enter(w, Lifecycle::lost);
  }
}

void Dispatcher::on_death(WorkerId worker, const std::string& how) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  Worker w = std::move(it->second);
  workers_.erase(it);
  if (w.pid >= 0) {  // a pid, or a rank (0 included)
    std::lock_guard lock(mu_);
    std::erase(pids_, w.pid);
  }
  std::deque<InFlight> window = std::move(w.window);
  const std::string crash_of = who(w) + " " + how;

  switch (w.state) {
    case Lifecycle::timed_out:
      // Its reply may have come just before the stop (and was read): then nothing timed out
      // after all, and the tasks left go to other workers, but for one it had started since.
      if (!window.empty() && window.front().id == w.timed_out_task) {
        window.front().task.call->abandon(std::make_exception_ptr(TimeoutError(
            "the task ran longer than the pool's task_timeout; its " + who(w) + " was killed")));
        window.pop_front();
      }
      requeue_unstarted(std::move(window),
                        "a task before it ran longer than the pool's "
                        "task_timeout, and its " +
                            who(w) + " was killed");
      return;
    case Lifecycle::failed:
      // A crash handled when its stream failed (protocol_failure): the pool is broken already,
      // or its head failed with the reason and the rest is requeued here.
      if (!broken_.empty()) {
        fail_window(window, broken_futures_message_);
        return;
      }
      requeue_unstarted(std::move(window),
                        "its " + who(w) + " was killed: its replies could not be read");
      return;
    case Lifecycle::stopped:
      for (InFlight& t : window) {
        t.task.call->abandon(broken("the task's " + who(w) + " was stopped with " +
                                    signal_name(w.stop_signal) +
                                    " by terminate_workers/kill_workers or a broken pool"));
      }
      return;
    case Lifecycle::exiting:
      if (window.empty()) return;  // left as asked
      break;
    case Lifecycle::active:
    case Lifecycle::retiring:
    case Lifecycle::lost:
      break;
  }
  if (!w.said_hello) {
    const std::string advice = transport_->advice_for_silent_death();
    if (!advice.empty()) {
      break_pool(crash_of + " before it started serving: " + advice);
      fail_window(window, broken_futures_message_);
      return;
    }
  }
  const std::string crash = crash_of + (window.empty() ? " while idle" : " while running a task");
  const bool hopeless = !w.was_ready && ++startup_failures_ >= kMaxStartupFailures;
  if (options_.on_worker_crash == CrashPolicy::break_pool || hopeless ||
      !transport_->can_restart()) {
    break_pool(crash);
    fail_window(window, broken_futures_message_);
    return;
  }
  // replace_worker: the running task fails, the ones queued behind it go to other workers.
  if (!window.empty()) {
    window.front().task.call->abandon(
        broken(std::string(words().one_in_pool) +
               " was terminated abruptly while the future was running (" + crash + ")"));
    window.pop_front();
  }
  requeue(std::move(window));
}

void Dispatcher::on_transport_failure(const std::string& why) { break_pool(why); }

void Dispatcher::on_launch_failure(WorkerId /*worker*/, const std::string& why) {
  break_pool("cannot start a worker process: " + why, BreakCause::cannot_start);
}

void Dispatcher::fail_window(std::deque<InFlight>& window, const std::string& message) {
  for (InFlight& t : window) {
    t.task.call->abandon(broken(message));
  }
  window.clear();
}

// Before a worker is killed for a reason of the pool's (task_timeout, a stream that cannot be
// followed): takes back what it has not started, so that it can start nothing more, and marks the
// tasks it has. Those must not run again elsewhere (requeue_unstarted): a task runs at most once.
void Dispatcher::close_claims(Worker& w) {
  if (w.claims_closed) return;
  w.claims_closed = true;
  if (!transport_->can_take_back()) {
    // Nothing tells which tasks it has started: count them all as started, so none runs twice.
    for (InFlight& t : w.window) t.started = true;
    return;
  }
  const auto started = static_cast<std::size_t>(static_cast<std::uint32_t>(
      transport_->take_back(w.id) - static_cast<std::uint32_t>(w.replied)));
  for (std::size_t i = 0; i < std::min(started, w.window.size()); ++i) w.window[i].started = true;
}

// The window of a worker killed by the pool: what it started fails (BrokenProcessPool, with the
// reason), what it did not goes to other workers. Without take-backs nothing is known started.
void Dispatcher::requeue_unstarted(std::deque<InFlight> window,
                                   const std::string& why_started_failed) {
  std::deque<InFlight> unstarted;
  for (InFlight& t : window) {
    if (t.started) {
      t.task.call->abandon(
          broken("the task had started when it was stopped: " + why_started_failed));
    } else {
      unstarted.push_back(std::move(t));
    }
  }
  requeue(std::move(unstarted));
}

// Tasks handed to a worker that never started them go back to the front of the queue, in order.
// Their futures stay running: they were handed out once and are still on their way.
void Dispatcher::requeue(std::deque<InFlight> window) {
  for (auto it = window.rbegin(); it != window.rend(); ++it) {
    if (it->task.request.size() == 0) {
      // Its request went to a transport that took it (send_task): it cannot be sent again.
      it->task.call->abandon(broken("the task's worker was lost and its request cannot be resent"));
      continue;
    }
    pending_.push_front(std::move(it->task));
  }
}

// CPython's broken pool: every unfinished future and later submits get BrokenProcessPool.
void Dispatcher::break_pool(const std::string& why, BreakCause cause) {
  std::deque<Queued> inbox;
  {
    std::lock_guard lock(mu_);
    if (!broken_.empty()) return;
    if (cause == BreakCause::cannot_start) {
      broken_ = std::string(words().cannot_start) + " (" + why + ")";
      broken_futures_message_ = broken_;
    } else {
      broken_ = std::string(words().broken_pool) + " (" + why + ")";
      broken_futures_message_ = std::string(words().one_in_pool) +
                                " was terminated abruptly while the future was running or "
                                "pending (" +
                                why + ")";
    }
    inbox.swap(inbox_);
  }
  for (Queued& q : inbox) pending_.push_back(std::move(q));
  // Results that healthy workers already sent are real: read them before failing the rest.
  for (auto& [id, w] : workers_) transport_->drain(id);
  std::deque<Queued> pending = std::move(pending_);
  pending_.clear();
  for (Queued& q : pending) {
    q.call->abandon(broken(broken_futures_message_));
  }
  for (auto& [id, w] : workers_) fail_window(w.window, broken_futures_message_);
  stop_all(StopSignal::kill);
}

void Dispatcher::stop_all(StopSignal signal) {
  for (auto& [id, w] : workers_) stop(w, signal, Lifecycle::stopped);
}

Dispatcher::Words Dispatcher::words() const {
  if (options_.kind == PoolKind::mpi_ranks) {
    return {"An MPI worker rank ended abruptly, the MPI pool is not usable anymore",
            "An MPI worker rank of the pool",
            "An MPI worker rank could not be started, the MPI pool is not usable anymore"};
  }
  return {"A child process terminated abruptly, the process pool is not usable anymore",
          "A process in the process pool",
          "A worker process could not be started, the process pool is not usable anymore"};
}

std::exception_ptr Dispatcher::broken(const std::string& message) const {
  if (options_.kind == PoolKind::mpi_ranks) {
    return std::make_exception_ptr(BrokenExecutor(message));
  }
  return std::make_exception_ptr(BrokenProcessPool(message));
}

// --- deadlines
// ------------------------------------------------------------------------------------

std::optional<std::chrono::milliseconds> Dispatcher::next_timeout() const {
  std::optional<Clock::time_point> next;
  const auto hello_timeout = transport_->hello_timeout();
  const auto exit_grace = transport_->exit_grace();
  for (const auto& [id, w] : workers_) {
    if (options_.task_timeout && w.state != Lifecycle::timed_out && w.was_ready &&
        !w.window.empty()) {
      const auto t = w.head_since + *options_.task_timeout;
      if (!next || t < *next) next = t;
    }
    if (hello_timeout && !w.said_hello) {
      const auto t = w.launched + *hello_timeout;
      if (!next || t < *next) next = t;
    }
    if (exit_grace && w.state == Lifecycle::exiting && w.window.empty() && !w.exit_forced) {
      const auto t = w.exiting_since + *exit_grace;
      if (!next || t < *next) next = t;
    }
  }
  // A stalled worker's queued tasks are taken back when the stall threshold passes, if another
  // worker is idle by then (dispatch decides).
  if (transport_->can_take_back() && pending_.empty() && any_idle_worker()) {
    for (const auto& [id, w] : workers_) {
      const auto stalled_from = stall_deadline(w);
      if (!stalled_from) continue;
      const auto t = *stalled_from + std::chrono::milliseconds(1);
      if (!next || t < *next) next = t;
    }
  }
  if (!next) return std::nullopt;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now());
  return std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(60'000));
}

void Dispatcher::check_deadlines() {
  const auto now = Clock::now();
  const auto hello_timeout = transport_->hello_timeout();
  const auto exit_grace = transport_->exit_grace();
  for (auto& [id, w] : workers_) {
    if (w.state == Lifecycle::stopped || w.state == Lifecycle::timed_out ||
        w.state == Lifecycle::failed) {
      continue;
    }
    if (options_.task_timeout && w.was_ready && !w.window.empty() &&
        now >= w.head_since + *options_.task_timeout) {
      w.timed_out_task = w.window.front().id;
      close_claims(w);
      stop(w, StopSignal::kill, Lifecycle::timed_out);
    } else if (hello_timeout && !w.said_hello && now >= w.launched + *hello_timeout) {
      // Reported as never having started serving when its death comes.
      transport_->stop(id, StopSignal::kill);
    } else if (exit_grace && w.state == Lifecycle::exiting && w.window.empty() && !w.exit_forced &&
               now >= w.exiting_since + *exit_grace) {
      // It holds nothing: its death is that of a worker that left as asked.
      w.exit_forced = true;
      transport_->stop(id, StopSignal::kill);
    }
  }
}

}  // namespace concurrent::futures::detail::remote
