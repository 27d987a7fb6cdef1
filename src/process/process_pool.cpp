// ProcessPoolExecutor, parent side.
//
// Threads: submitters serialize their task's request in their own thread (so a large argument
// costs the caller, not the pool) and put it in the inbox; one manager thread owns everything
// else: the workers, their channels, the fork server, the pending queue, and every transition of
// a future once it is handed to a worker. Submitters and the manager share only the inbox and a
// few flags under `mu_`. Futures are completed, and so their callbacks run, in the manager thread.
//
// The manager sleeps in epoll on: an eventfd (new work, shutdown), each worker's channel (replies,
// end-of-stream), each worker's pidfd (its death; fork and spawn workers are our children), and
// the fork server's socket (it reports the pids it forks and the deaths it reaps). A worker's
// death is handled only after its channel has been read to the end, so no reply it sent is lost.
//
// Window: a worker holds at most kWindow tasks (the head one running, the others queued in its
// socket), which keeps workers busy between replies without hiding much work from other workers.
#include "concurrent/futures/process_pool.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "process/channel.hpp"
#include "process/worker.hpp"
#include "system.hpp"

namespace concurrent::futures {

namespace {

using detail::Clock;
using detail::TaskPtr;
using detail::process::Channel;
using detail::process::Frame;
using detail::process::FrameType;
namespace codec = detail::codec;

constexpr std::size_t kWindow = 4;
// Workers in a row that may die before they are ready before the pool breaks (replace_worker).
constexpr int kMaxStartupFailures = 3;
// A spawned worker that has not said hello by then never will (see serve_if_worker).
constexpr auto kSpawnHelloTimeout = std::chrono::seconds(10);

using detail::throw_errno;

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// "was killed by signal 11 (SIGSEGV)" / "exited with code 3".
std::string describe_exit(int code, int status) {
  if (code == CLD_KILLED || code == CLD_DUMPED) {
    return "was killed by signal " + std::to_string(status) + " (" + signal_name(status) + ")";
  }
  return "exited with code " + std::to_string(status);
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) return describe_exit(CLD_KILLED, WTERMSIG(status));
  return describe_exit(CLD_EXITED, WEXITSTATUS(status));
}

enum EventKind : std::uint64_t { kWake = 1, kServer = 2, kChannel = 3, kPidfd = 4 };
std::uint64_t event_key(EventKind kind, std::uint64_t slot) {
  return (std::uint64_t{kind} << 56) | slot;
}

struct Submitted {
  TaskPtr task;
  codec::Buffer request;  // entry key, then the callable and its arguments
  bool started = false;  // handed out before (requeued from a worker that never ran it)
};

// A task a worker holds. Its request is kept until the reply comes, so that a task the worker
// never started can be handed to another one.
struct InFlight {
  Submitted submitted;
  std::uint64_t id;
};

struct Worker {
  std::uint64_t slot = 0;
  pid_t pid = -1;
  int pidfd = -1;
  std::unique_ptr<Channel> channel;
  std::deque<InFlight> window;
  std::size_t handed = 0;
  bool hello = false;
  bool ready = false;
  bool channel_open = true;
  bool exit_sent = false;
  bool timed_out = false;
  std::uint64_t timed_out_id = 0;  // the task that ran too long
  int kill_signal = 0;             // killed by us (terminate/kill/break): 0 if not
  std::string protocol_error;      // killed by us because its stream could not be read
  Clock::time_point launched;
  Clock::time_point head_since;
};

}  // namespace

class ProcessPoolExecutor::Impl {
 public:
  explicit Impl(ProcessPoolOptions options)
      : max_workers_(options.max_workers.value_or(detail::usable_cpus())), options_(options) {
    if (max_workers_ == 0) throw std::invalid_argument("max_workers must be greater than 0");
    if (options_.start_method == StartMethod::fork && options_.max_tasks_per_child != 0) {
      throw std::invalid_argument(
          "max_tasks_per_child is incompatible with the 'fork' start method; use forkserver or "
          "spawn");
    }
    if (detail::process::is_spawned_worker()) {
      // This program was started as a spawn worker but went on into main: it never called
      // serve_if_worker. Stop before it starts pools of its own; the parent explains why.
      std::fprintf(stderr,
                   "cfutures: a spawned worker process reached a ProcessPoolExecutor: call "
                   "cf::serve_if_worker(argc, argv) first thing in main\n");
      std::fflush(stderr);
      _exit(detail::process::kMissingServeExitCode);
    }
    // The config every worker gets; naming the initializer here reports a bad one at once.
    {
      codec::Writer w(config_);
      w.pod(static_cast<std::uint64_t>(options_.max_tasks_per_child));
      w.pod(static_cast<std::uint8_t>(options_.initializer != nullptr));
      if (options_.initializer != nullptr) {
        detail::write_function(w, reinterpret_cast<const void*>(options_.initializer));
      }
    }
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw_errno("eventfd");
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      close(wake_fd_);
      throw_errno("epoll_create1");
    }
    watch(wake_fd_, event_key(kWake, 0), EPOLLIN);
    // The fork server must be forked by the manager thread, which lives as long as the pool:
    // its death signal (PR_SET_PDEATHSIG) follows the thread that forked it.
    std::promise<void> started;
    auto started_future = started.get_future();
    manager_ = std::thread([this, &started] { manager_main(started); });
    try {
      started_future.get();  // rethrows a failure to start the fork server
    } catch (...) {
      manager_.join();  // it has returned already
      close(epoll_fd_);
      close(wake_fd_);
      throw;
    }
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  ~Impl() {
    shutdown(/*wait=*/true, /*cancel_futures=*/false);
    // Still joinable only when a done-callback destroys its own pool (not supported): let go
    // rather than terminate.
    if (manager_.joinable()) manager_.detach();
    close(epoll_fd_);
    close(wake_fd_);
  }

  std::size_t max_workers() const noexcept { return max_workers_; }

  void check_open() const {
    std::lock_guard lock(mu_);
    if (!broken_.empty()) throw BrokenProcessPool(broken_);
    if (shutdown_) throw ShutdownError();
  }

  void submit(TaskPtr task) {
    check_open();
    detail::RemoteCall* remote = task->remote();
    if (remote == nullptr) {
      task->abandon(std::make_exception_ptr(SerializationError(task->why_not_remote())));
      return;
    }
    codec::Buffer request;
    try {
      codec::Writer w(request);
      w.pod(remote->entry_key());
      remote->write_request(w);
    } catch (...) {
      task->abandon(std::current_exception());  // this future only; the pool goes on
      return;
    }
    submit_serialized(std::move(task), std::move(request));
  }

  void submit_serialized(TaskPtr task, codec::Buffer request) {
    if (request.size() > std::numeric_limits<std::uint32_t>::max()) {
      task->abandon(std::make_exception_ptr(SerializationError(
          "a task's arguments take more than 4 GiB, the most one message holds")));
      return;
    }
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      if (!broken_.empty()) throw BrokenProcessPool(broken_);
      if (shutdown_) throw ShutdownError();
      inbox_.push_back(Submitted{std::move(task), std::move(request)});
      wake = std::exchange(manager_sleeping_, false);
    }
    if (wake) wake_manager();
  }

  void shutdown(bool wait, bool cancel_futures) {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
      if (cancel_futures) cancel_requested_ = true;
    }
    wake_manager();
    if (wait) join_manager();
  }

  void terminate(int sig) {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
      cancel_requested_ = true;
      terminate_signal_ = sig;
    }
    wake_manager();
  }

  std::vector<int> worker_pids() const {
    std::lock_guard lock(mu_);
    return pids_;
  }
  int forkserver_pid() const {
    std::lock_guard lock(mu_);
    return server_pid_;
  }

 private:
  // --- shared with submitters ---------------------------------------------------------------

  void wake_manager() {
    const std::uint64_t one = 1;
    ssize_t n;
    do {
      n = write(wake_fd_, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
  }

  void join_manager() {
    std::lock_guard lock(join_mu_);
    // A done-callback (they run on the manager thread) may shut the pool down: the manager
    // cannot wait for itself, so it goes on and the destructor joins it later.
    if (manager_.joinable() && manager_.get_id() != std::this_thread::get_id()) manager_.join();
  }

  // --- manager thread -------------------------------------------------------------------------

  void manager_main(std::promise<void>& started) {
    try {
      if (options_.start_method == StartMethod::forkserver) start_forkserver();
      started.set_value();
    } catch (...) {
      started.set_exception(std::current_exception());
      return;
    }
    try {
      loop();
    } catch (const std::exception& e) {
      // An internal failure (out of descriptors, ...): fail everything rather than hang.
      break_pool(std::string("the pool's manager failed: ") + e.what());
      kill_all(SIGKILL);
      while (!workers_.empty()) reap_all_blocking();
    }
    stop_forkserver();
  }

  void loop() {
    for (;;) {
      absorb_inbox();
      dispatch();
      const bool done = finished();  // may queue exit frames: flush after it
      flush_all();
      if (done) return;
      epoll_event events[64];
      const int timeout_ms = next_timeout_ms();
      bool sleep = false;
      {
        // A submit after this point sees manager_sleeping_ and writes the eventfd, which ends
        // the epoll_wait below at once; one before it left work in the inbox: do not sleep.
        std::lock_guard lock(mu_);
        sleep = manager_sleeping_ = inbox_.empty();
      }
      const int n = epoll_wait(epoll_fd_, events, 64, sleep ? timeout_ms : 0);
      {
        std::lock_guard lock(mu_);
        manager_sleeping_ = false;
      }
      if (n < 0 && errno != EINTR) throw_errno("epoll_wait");
      for (int i = 0; i < n; ++i) handle_event(events[i]);
      check_deadlines();
    }
  }

  bool finished() {
    std::lock_guard lock(mu_);
    if (!(shutdown_ || !broken_.empty()) || !inbox_.empty() || !pending_.empty()) return false;
    if (workers_.empty()) return true;
    // No work left: ask the workers to leave, and wait for them to go.
    for (auto& [slot, w] : workers_) {
      if (!w.exit_sent && w.window.empty() && w.channel_open) {
        w.channel->send(FrameType::exit, 0);
        w.exit_sent = true;
      }
    }
    return false;
  }

  void absorb_inbox() {
    std::deque<Submitted> incoming;
    int signal_to_send = 0;
    bool cancel = false;
    {
      std::lock_guard lock(mu_);
      incoming.swap(inbox_);
      cancel = std::exchange(cancel_requested_, false);
      signal_to_send = std::exchange(terminate_signal_, 0);
    }
    for (Submitted& s : incoming) pending_.push_back(std::move(s));
    if (cancel) {
      // Tasks handed out before (requeued from a worker that died or timed out) are running:
      // they cannot be cancelled, so they stay and run.
      std::deque<Submitted> keep;
      for (Submitted& s : pending_) {
        if (s.started) {
          keep.push_back(std::move(s));
        } else {
          s.task->cancel();
        }
      }
      pending_.swap(keep);
    }
    if (signal_to_send != 0) kill_all(signal_to_send);
  }

  bool accepting(const Worker& w) const {
    return w.channel_open && !w.exit_sent && w.kill_signal == 0 && !w.timed_out &&
           (options_.max_tasks_per_child == 0 || w.handed < options_.max_tasks_per_child);
  }

  // Hands pending tasks to workers: idle workers first, then new workers (up to max_workers),
  // then the shortest windows.
  void dispatch() {
    if (pending_.empty()) return;
    std::lock_guard broken_check(mu_);
    if (!broken_.empty()) return;
    if (options_.start_method == StartMethod::fork && !forked_all_) {
      forked_all_ = true;
      while (workers_.size() < max_workers_) start_worker();
    }
    while (!pending_.empty()) {
      Worker* target = nullptr;
      for (auto& [slot, w] : workers_) {
        if (accepting(w) && w.window.empty()) {
          target = &w;
          break;
        }
      }
      if (target == nullptr && live_workers() < max_workers_) target = &start_worker();
      if (target == nullptr) {
        for (auto& [slot, w] : workers_) {
          if (accepting(w) && w.window.size() < kWindow &&
              (target == nullptr || w.window.size() < target->window.size())) {
            target = &w;
          }
        }
      }
      if (target == nullptr) return;
      Submitted s = std::move(pending_.front());
      pending_.pop_front();
      if (!s.started && !s.task->start()) continue;  // cancelled while pending
      s.started = true;
      const std::uint64_t id = next_task_id_++;
      if (target->window.empty()) target->head_since = Clock::now();
      target->channel->send_copy(FrameType::task, id, s.request);
      target->window.push_back(InFlight{std::move(s), id});
      ++target->handed;
    }
  }

  // Workers that hold one of the max_workers slots: every worker not yet reaped but those on
  // their way out for a known reason (asked to exit, done with their last task, timed out,
  // killed, stream broken), whose replacement may start at once. A worker whose stream ended
  // unexpectedly keeps its slot until its death is handled and the crash policy decides: starting
  // another worker in between would let tasks run on a pool that is about to break.
  std::size_t live_workers() const {
    std::size_t n = 0;
    for (const auto& [slot, w] : workers_) {
      const bool leaving = w.exit_sent || w.kill_signal != 0 || w.timed_out ||
                           !w.protocol_error.empty() ||
                           (options_.max_tasks_per_child != 0 &&
                            w.handed >= options_.max_tasks_per_child && w.window.empty());
      n += leaving ? 0 : 1;
    }
    return n;
  }

  // Called with mu_ held (it updates the pid list).
  Worker& start_worker() {
    int fds[2];
    detail::process::make_socket_pair(fds);
    const std::uint64_t slot = next_slot_++;
    Worker& w = workers_[slot];
    w.slot = slot;
    w.launched = Clock::now();
    w.channel = std::make_unique<Channel>(fds[0]);
    try {
      switch (options_.start_method) {
        case StartMethod::fork: {
          const pid_t self = getpid();
          pid_t pid;
          {
            detail::ForkGuard guard;
            pid = fork();
          }
          if (pid < 0) throw_errno("fork");
          if (pid == 0) {
            detail::process::prepare_child(fds[1], self);
            detail::process::serve(fds[1]);
          }
          close(fds[1]);
          adopt_child(w, pid);
          break;
        }
        case StartMethod::spawn: {
          const pid_t pid = detail::process::spawn_worker(fds[1]);
          close(fds[1]);
          adopt_child(w, pid);
          break;
        }
        case StartMethod::forkserver:
          server_->send(FrameType::spawn, slot, codec::Buffer(), fds[1]);  // passes fds[1] on
          break;
      }
    } catch (...) {
      if (options_.start_method != StartMethod::forkserver) close(fds[1]);
      workers_.erase(slot);
      throw;
    }
    detail::process::set_nonblocking(fds[0]);
    watch(fds[0], event_key(kChannel, slot), EPOLLIN);
    codec::Buffer config;
    config.append(config_.data(), config_.size());
    w.channel->send(FrameType::config, 0, std::move(config));
    return w;
  }

  void adopt_child(Worker& w, pid_t pid) {
    w.pid = pid;
    // glibc 2.36's <sys/pidfd.h> lacks extern "C", so call the system call directly.
    w.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (w.pidfd < 0) throw_errno("pidfd_open");
    watch(w.pidfd, event_key(kPidfd, w.slot), EPOLLIN);
    pids_.push_back(pid);
  }

  void start_forkserver() {
    int fds[2];
    detail::process::make_socket_pair(fds);
    const pid_t self = getpid();
    pid_t pid;
    {
      detail::ForkGuard guard;
      pid = fork();
    }
    if (pid < 0) throw_errno("fork of the fork server");
    if (pid == 0) {
      detail::process::prepare_child(fds[1], self);
      detail::process::forkserver_main(fds[1]);
    }
    close(fds[1]);
    server_ = std::make_unique<Channel>(fds[0]);
    detail::process::set_nonblocking(fds[0]);
    watch(fds[0], event_key(kServer, 0), EPOLLIN);
    std::lock_guard lock(mu_);
    server_pid_ = pid;
  }

  void stop_forkserver() {
    if (!server_) return;
    server_.reset();  // end of stream: the server kills what is left and exits
    int status = 0;
    while (waitpid(server_pid_, &status, 0) < 0 && errno == EINTR) {
    }
    std::lock_guard lock(mu_);
    server_pid_ = -1;
  }

  void watch(int fd, std::uint64_t key, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("epoll_ctl");
  }

  void rewatch(int fd, std::uint64_t key, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  }

  void flush_all() {
    if (server_) flush_channel(*server_, event_key(kServer, 0), true);
    for (auto& [slot, w] : workers_) {
      if (w.channel_open) flush_channel(*w.channel, event_key(kChannel, slot), true);
    }
  }

  void flush_channel(Channel& ch, std::uint64_t key, bool /*reading*/) {
    if (!ch.has_output()) return;
    bool done = false;
    try {
      done = ch.flush();
    } catch (const std::system_error&) {
      done = true;  // the peer is gone; its death event says the rest
    }
    rewatch(ch.fd(), key, done ? EPOLLIN : (EPOLLIN | EPOLLOUT));
  }

  void handle_event(const epoll_event& ev) {
    const auto kind = static_cast<EventKind>(ev.data.u64 >> 56);
    const std::uint64_t slot = ev.data.u64 & ((std::uint64_t{1} << 56) - 1);
    switch (kind) {
      case kWake: {
        std::uint64_t value;
        while (read(wake_fd_, &value, sizeof value) < 0 && errno == EINTR) {
        }
        break;
      }
      case kServer:
        read_server();
        break;
      case kChannel: {
        auto it = workers_.find(slot);
        if (it != workers_.end()) read_worker(it->second);
        break;
      }
      case kPidfd: {
        auto it = workers_.find(slot);
        if (it == workers_.end()) break;
        siginfo_t info{};
        if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(it->second.pidfd), &info,
                   WEXITED | WNOHANG) == 0 &&
            info.si_pid != 0) {
          worker_died(it->second, describe_exit(info.si_code, info.si_status));
        }
        break;
      }
    }
  }

  void read_server() {
    bool open = true;
    try {
      open = server_->receive() != Channel::Received::closed;
    } catch (const std::exception&) {
      open = false;
    }
    while (std::optional<Frame> f = server_->next()) {
      if (f->header.type == FrameType::spawned) {
        std::int64_t pid = -1;
        std::memcpy(&pid, f->data(), std::min<std::size_t>(sizeof pid, f->size()));
        auto it = workers_.find(f->header.id);
        if (it == workers_.end()) continue;
        if (pid <= 0) {
          worker_died(it->second, "could not be forked by the fork server");
          continue;
        }
        learn_pid(it->second, static_cast<pid_t>(pid));
      } else if (f->header.type == FrameType::exited) {
        int status = 0;
        std::memcpy(&status, f->data(), std::min<std::size_t>(sizeof status, f->size()));
        const auto pid = static_cast<pid_t>(f->header.id);
        auto slot_it = pid_slots_.find(pid);
        if (slot_it == pid_slots_.end()) continue;
        auto it = workers_.find(slot_it->second);
        pid_slots_.erase(slot_it);
        if (it != workers_.end()) worker_died(it->second, describe_wait_status(status));
      }
    }
    if (!open) {
      // The fork server died: no new workers can be made, and those it forked die with it.
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, server_->fd(), nullptr);
      break_pool("the fork server process died");
      for (auto it = workers_.begin(); it != workers_.end();) {
        Worker& w = it->second;
        ++it;
        if (w.pidfd < 0) worker_died(w, "was lost with the fork server");
      }
    }
  }

  // A fork-server worker's pid comes from its hello or from the server, whichever is read first.
  void learn_pid(Worker& w, pid_t pid) {
    if (w.pid > 0 || pid <= 0) return;
    w.pid = pid;
    pid_slots_[pid] = w.slot;
    {
      std::lock_guard lock(mu_);
      pids_.push_back(pid);
    }
    if (w.kill_signal != 0) {
      kill(pid, w.kill_signal);
    } else if (!w.protocol_error.empty()) {
      kill(pid, SIGKILL);  // protocol_failure could not: the pid was not known yet
    }
  }

  void read_worker(Worker& w) {
    if (!w.channel_open) return;
    bool open = true;
    try {
      open = w.channel->receive() != Channel::Received::closed;
    } catch (const std::exception& e) {
      // A live worker that is no longer read would keep its slot for ever: kill it, so that
      // its death is handled like any other.
      process_frames(w);
      protocol_failure(w, std::string("its channel could not be read: ") + e.what());
      return;
    }
    process_frames(w);
    if (!open) {
      w.channel_open = false;
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.channel->fd(), nullptr);
    }
  }

  void process_frames(Worker& w) {
    for (;;) {
      std::optional<Frame> f;
      try {
        f = w.channel->next();
      } catch (const std::exception& e) {
        protocol_failure(w, e.what());
        return;
      }
      if (!f) return;
      switch (f->header.type) {
        case FrameType::hello:
          w.hello = true;
          learn_pid(w, static_cast<pid_t>(f->header.id));  // the fork server may not have said
          break;
        case FrameType::ready:
          // task_timeout counts from the task's start: not the worker's start-up or initializer.
          w.ready = true;
          startup_failures_ = 0;
          if (!w.window.empty()) w.head_since = Clock::now();
          break;
        case FrameType::init_failed: {
          std::string what = "the initializer failed";
          try {
            codec::Reader r(f->data(), f->size());
            what += ": " + detail::exception_message(codec::read_exception(r));
          } catch (...) {
          }
          break_pool("a worker's initializer failed (" + what + ")");
          break;
        }
        case FrameType::reply:
          complete_head(w, *f);
          break;
        default:
          break;
      }
    }
  }

  // The worker's stream cannot be followed any more (a reply that cannot be mapped, a frame out
  // of order): its head task fails with the reason, the worker is killed, and the tasks queued
  // behind the head go to other workers when its death is handled.
  void protocol_failure(Worker& w, const std::string& why) {
    if (!w.protocol_error.empty()) return;
    w.protocol_error = why;
    if (!w.window.empty()) {
      w.window.front().submitted.task->abandon(std::make_exception_ptr(SerializationError(
          "the reply from worker " + std::to_string(w.pid) + " could not be read: " + why)));
      w.window.pop_front();
    }
    if (w.pid > 0) kill(w.pid, SIGKILL);
    if (w.channel_open) {
      w.channel_open = false;
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.channel->fd(), nullptr);
    }
  }

  void complete_head(Worker& w, const Frame& f) {
    if (!w.protocol_error.empty()) return;
    if (w.window.empty() || w.window.front().id != f.header.id) {
      protocol_failure(w, "a reply came for a task the worker does not hold");
      return;
    }
    InFlight done = std::move(w.window.front());
    w.window.pop_front();
    if (!w.window.empty()) w.head_since = Clock::now();
    TaskPtr& task = done.submitted.task;
    try {
      codec::Reader r(f.data(), f.size());
      if (f.size() == 0) throw SerializationError("the worker could not encode its reply");
      task->remote()->read_reply(r);
    } catch (...) {
      task->abandon(std::current_exception());
    }
  }

  void worker_died(Worker& w, const std::string& how) {
    // Read what it sent before dying: those replies are real results.
    drain(w);
    if (w.channel_open) {
      w.channel_open = false;
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.channel->fd(), nullptr);
    }
    if (w.pidfd >= 0) {
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.pidfd, nullptr);
      close(w.pidfd);
      w.pidfd = -1;
    }
    std::deque<InFlight> window = std::move(w.window);
    const std::string who = "worker " + std::to_string(w.pid) + " " + how;
    const bool expected_exit =
        window.empty() && (w.exit_sent || (options_.max_tasks_per_child != 0 &&
                                           w.handed >= options_.max_tasks_per_child));
    const bool timed_out = w.timed_out;
    const std::uint64_t timed_out_id = w.timed_out_id;
    const bool protocol_failed = !w.protocol_error.empty();
    const int kill_signal = w.kill_signal;
    const bool said_hello = w.hello;
    const bool was_ready = w.ready;
    const pid_t pid = w.pid;
    {
      std::lock_guard lock(mu_);
      std::erase(pids_, pid);
    }
    pid_slots_.erase(pid);
    workers_.erase(w.slot);  // w is gone from here on

    if (timed_out) {
      // Its reply may have come just before the kill (and was read above): then nothing timed
      // out after all, and every task left goes to other workers.
      if (!window.empty() && window.front().id == timed_out_id) {
        window.front().submitted.task->abandon(std::make_exception_ptr(
            TimeoutError("the task ran longer than the pool's task_timeout; its worker " +
                         std::to_string(pid) + " was killed")));
        window.pop_front();
      }
      requeue(std::move(window));
      return;
    }
    if (protocol_failed) {
      requeue(std::move(window));  // its head already failed with the reason
      return;
    }
    if (kill_signal != 0) {
      for (InFlight& t : window) {
        t.submitted.task->abandon(std::make_exception_ptr(BrokenProcessPool(
            "the task's worker " + std::to_string(pid) + " was stopped with " +
            signal_name(kill_signal) + " by terminate_workers/kill_workers or a broken pool")));
      }
      return;
    }
    if (expected_exit) return;
    if (!said_hello && options_.start_method == StartMethod::spawn) {
      break_pool(who +
                 " before it started serving: the program must call "
                 "cf::serve_if_worker(argc, argv) first thing in main to use the spawn "
                 "start method");
      fail_window(window);
      return;
    }
    const std::string crash = who + (window.empty() ? " while idle" : " while running a task");
    // Workers that keep dying before they are ready (an initializer that crashes, say) would be
    // replaced forever: after a few in a row the pool breaks whatever the policy.
    const bool hopeless = !was_ready && ++startup_failures_ >= kMaxStartupFailures;
    if (options_.on_worker_crash == CrashPolicy::break_pool || hopeless) {
      break_pool(crash);
      fail_window(window);
      return;
    }
    // replace_worker: the running task fails, the ones queued behind it go to other workers.
    if (!window.empty()) {
      window.front().submitted.task->abandon(std::make_exception_ptr(BrokenProcessPool(
          "A process in the process pool was terminated abruptly while the future was running "
          "(" +
          crash + ")")));
      window.pop_front();
    }
    requeue(std::move(window));
  }

  // Reads and handles every reply already sent by `w`. Stops at end of stream or when nothing
  // more is there (a descendant of the worker may hold its socket open).
  void drain(Worker& w) {
    if (!w.channel_open) return;
    try {
      while (w.channel->receive() == Channel::Received::data) process_frames(w);
    } catch (...) {
    }
    process_frames(w);
  }

  void fail_window(std::deque<InFlight>& window) {
    std::string message;
    {
      std::lock_guard lock(mu_);
      message = broken_futures_message_;
    }
    for (InFlight& t : window)
      t.submitted.task->abandon(std::make_exception_ptr(BrokenProcessPool(message)));
  }

  // Tasks handed to a worker that never started them go back to the front of the queue, in
  // order. Their futures stay running: they were handed out once and are still on their way.
  void requeue(std::deque<InFlight> window) {
    for (auto it = window.rbegin(); it != window.rend(); ++it) {
      pending_.push_front(std::move(it->submitted));
    }
  }

  // CPython's broken pool: every unfinished future and later submits get BrokenProcessPool.
  void break_pool(const std::string& why) {
    std::deque<Submitted> inbox;
    {
      std::lock_guard lock(mu_);
      if (!broken_.empty()) return;
      broken_ = "A child process terminated abruptly, the process pool is not usable anymore (" +
                why + ")";
      broken_futures_message_ =
          "A process in the process pool was terminated abruptly while the future was running "
          "or pending (" +
          why + ")";
      inbox.swap(inbox_);
    }
    for (Submitted& s : inbox) pending_.push_back(std::move(s));
    // Results that healthy workers already sent are real: read them before failing the rest.
    for (auto& [slot, w] : workers_) drain(w);
    std::deque<Submitted> pending = std::move(pending_);
    pending_.clear();
    for (Submitted& s : pending) {
      s.task->abandon(std::make_exception_ptr(BrokenProcessPool(broken_futures_message_)));
    }
    for (auto& [slot, w] : workers_) {
      for (InFlight& t : w.window) {
        t.submitted.task->abandon(
            std::make_exception_ptr(BrokenProcessPool(broken_futures_message_)));
      }
      w.window.clear();
    }
    kill_all(SIGKILL);
  }

  void kill_all(int sig) {
    for (auto& [slot, w] : workers_) {
      if (w.kill_signal != 0) continue;
      w.kill_signal = sig;
      if (w.pid > 0) kill(w.pid, sig);
    }
  }

  int next_timeout_ms() const {
    std::optional<Clock::time_point> next;
    for (const auto& [slot, w] : workers_) {
      if (options_.task_timeout && w.ready && !w.window.empty() && !w.timed_out) {
        const auto t = w.head_since + *options_.task_timeout;
        if (!next || t < *next) next = t;
      }
      if (!w.hello && options_.start_method == StartMethod::spawn) {
        const auto t = w.launched + kSpawnHelloTimeout;
        if (!next || t < *next) next = t;
      }
    }
    if (!next) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
  }

  void check_deadlines() {
    const auto now = Clock::now();
    for (auto& [slot, w] : workers_) {
      if (w.pid <= 0 || w.kill_signal != 0 || w.timed_out) continue;
      if (options_.task_timeout && w.ready && !w.window.empty() &&
          now >= w.head_since + *options_.task_timeout) {
        w.timed_out = true;
        w.timed_out_id = w.window.front().id;
        kill(w.pid, SIGKILL);
      } else if (!w.hello && options_.start_method == StartMethod::spawn &&
                 now >= w.launched + kSpawnHelloTimeout) {
        kill(w.pid, SIGKILL);  // it will be reported as never having started serving
      }
    }
  }

  void reap_all_blocking() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      Worker& w = it->second;
      ++it;
      if (w.pidfd >= 0) {
        siginfo_t info{};
        waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(w.pidfd), &info, WEXITED);
      }
      worker_died(w, "was stopped");
    }
  }

  const std::size_t max_workers_;
  const ProcessPoolOptions options_;
  codec::Buffer config_;

  // Shared with submitters: everything below under mu_.
  mutable std::mutex mu_;
  std::deque<Submitted> inbox_;
  bool shutdown_ = false;
  bool cancel_requested_ = false;
  int terminate_signal_ = 0;
  bool manager_sleeping_ = false;
  std::string broken_;
  std::string broken_futures_message_;
  std::vector<int> pids_;
  int server_pid_ = -1;

  int wake_fd_ = -1;
  int epoll_fd_ = -1;
  std::thread manager_;
  std::mutex join_mu_;

  // The manager thread's own.
  std::map<std::uint64_t, Worker> workers_;
  std::unordered_map<pid_t, std::uint64_t> pid_slots_;
  std::deque<Submitted> pending_;
  std::unique_ptr<Channel> server_;
  std::uint64_t next_slot_ = 1;
  std::uint64_t next_task_id_ = 1;
  bool forked_all_ = false;
  int startup_failures_ = 0;  // workers in a row that died before they were ready
};

}  // namespace concurrent::futures

namespace concurrent::futures {

ProcessPoolExecutor::ProcessPoolExecutor() : ProcessPoolExecutor(ProcessPoolOptions{}) {}

ProcessPoolExecutor::ProcessPoolExecutor(std::size_t max_workers)
    : ProcessPoolExecutor(ProcessPoolOptions{.max_workers = max_workers}) {}

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options)
    : impl_(std::make_unique<Impl>(options)) {}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  disconnect();
  impl_.reset();
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  impl_->shutdown(wait, cancel_futures);
}

std::size_t ProcessPoolExecutor::max_workers() const { return impl_->max_workers(); }

void ProcessPoolExecutor::terminate_workers() { impl_->terminate(SIGTERM); }

void ProcessPoolExecutor::kill_workers() { impl_->terminate(SIGKILL); }

std::vector<int> ProcessPoolExecutor::worker_pids() const { return impl_->worker_pids(); }

int ProcessPoolExecutor::forkserver_pid() const { return impl_->forkserver_pid(); }

void ProcessPoolExecutor::schedule(detail::TaskPtr task) { impl_->submit(std::move(task)); }

void ProcessPoolExecutor::check_open() const { impl_->check_open(); }

void ProcessPoolExecutor::schedule_serialized(detail::TaskPtr task, detail::codec::Buffer request) {
  impl_->submit_serialized(std::move(task), std::move(request));
}

}  // namespace concurrent::futures
