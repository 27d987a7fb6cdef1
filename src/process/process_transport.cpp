#include "process/process_transport.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <span>
#include <system_error>
#include <vector>

namespace concurrent::futures::detail::process {

namespace {

using remote::MessageType;
using remote::StopSignal;
using remote::WorkerId;

// A spawned worker that has not said hello by then never will (see serve_if_worker).
constexpr auto kSpawnHelloTimeout = std::chrono::seconds(10);
// An idle worker told to leave exits within milliseconds; one that has not after this long is
// stopped (SIGSTOP) or hung, and is killed so that shutdown returns.
constexpr auto kExitGrace = std::chrono::seconds(3);

enum EventKind : std::uint64_t { kWake = 1, kServer = 2, kChannel = 3, kPidfd = 4 };
std::uint64_t event_key(EventKind kind, std::uint64_t worker) {
  return (std::uint64_t{kind} << 56) | worker;
}

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

int to_signal(StopSignal s) { return s == StopSignal::kill ? SIGKILL : SIGTERM; }

// A stopped process (SIGSTOP, a debugger) dies of SIGKILL at once, but keeps SIGTERM pending until
// it runs again: SIGCONT follows, so that terminate_workers ends a stopped worker too.
void send_stop(pid_t pid, StopSignal s) {
  kill(pid, to_signal(s));
  if (s == StopSignal::terminate) kill(pid, SIGCONT);
}

}  // namespace

ProcessTransport::ProcessTransport(StartMethod method) : method_(method) {}

// The eventfd outlives close(): shutdown() may still wake() a dispatcher that has finished.
ProcessTransport::~ProcessTransport() { close(); }

void ProcessTransport::open(remote::TransportEvents& events) {
  events_ = &events;
  wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) throw_errno("eventfd");
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) throw_errno("epoll_create1");
  watch(wake_fd_.get(), event_key(kWake, 0), EPOLLIN);
  switch (method_) {
    case StartMethod::fork:
      launcher_ = make_fork_launcher();
      break;
    case StartMethod::spawn:
      launcher_ = make_spawn_launcher();
      break;
    case StartMethod::forkserver: {
      // Forked here, by the dispatcher thread, which lives as long as the pool: the server's
      // death signal (PR_SET_PDEATHSIG) follows the thread that forked it.
      auto server = std::make_unique<ForkServer>();
      server_ = server.get();
      launcher_ = std::move(server);
      watch(server_->channel().fd(), event_key(kServer, 0), EPOLLIN);
      server_pid_.store(server_->pid(), std::memory_order_relaxed);
      break;
    }
  }
}

void ProcessTransport::close() noexcept {
  workers_.clear();
  by_pid_.clear();
  server_ = nullptr;
  launcher_.reset();  // the fork server, if any, exits and is reaped
  server_pid_.store(-1, std::memory_order_relaxed);
  epoll_fd_.reset();
}

std::size_t ProcessTransport::max_payload() const noexcept {
  return std::numeric_limits<std::uint32_t>::max();  // a frame header's size field
}

std::string ProcessTransport::advice_for_silent_death() const {
  if (method_ != StartMethod::spawn) return {};
  return "the program must call cf::serve_if_worker(argc, argv) first thing in main to use the "
         "spawn start method";
}

std::optional<std::chrono::steady_clock::duration> ProcessTransport::hello_timeout()
    const noexcept {
  if (method_ != StartMethod::spawn) return std::nullopt;
  return kSpawnHelloTimeout;
}

std::optional<std::chrono::steady_clock::duration> ProcessTransport::exit_grace() const noexcept {
  return kExitGrace;
}

void ProcessTransport::watch(int fd, std::uint64_t key, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("epoll_ctl");
}

void ProcessTransport::unwatch(int fd) noexcept {
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void ProcessTransport::launch(WorkerId id) {
  auto [parent_end, worker_end] = make_socket_pair();
  set_nonblocking(parent_end.get());
  const int channel_fd = parent_end.get();
  Worker w;
  w.channel = std::make_unique<Channel>(std::move(parent_end));
  // The worker reuses its warm segments for its replies: read them through warm mappings too.
  // They go with the channel (a worker that dies or leaves takes nothing of the parent with it).
  w.channel->keep_received_mappings();
  w.claims.emplace(ClaimWord::create());
  const pid_t pid = launcher_->launch(id, std::move(worker_end));
  if (launcher_->workers_are_children()) {
    // glibc 2.36's <sys/pidfd.h> lacks extern "C", so call the system call directly.
    w.pidfd.reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    if (!w.pidfd) {
      const int error = errno;
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      throw std::system_error(error, std::generic_category(), "pidfd_open");
    }
  }
  Worker& placed = workers_[id] = std::move(w);
  try {
    watch(channel_fd, event_key(kChannel, id), EPOLLIN);
    if (placed.pidfd) watch(placed.pidfd.get(), event_key(kPidfd, id), EPOLLIN);
  } catch (...) {
    // A worker nobody watches would never be reaped: end it here.
    if (pid > 0) {
      kill(pid, SIGKILL);
      if (placed.pidfd) waitpid(pid, nullptr, 0);
    }
    unwatch(channel_fd);
    workers_.erase(id);
    throw;
  }
  if (pid > 0) learn_pid(id, placed, pid);
}

// A fork-server worker's pid comes from the server's report or from the worker's hello,
// whichever is read first; the dispatcher hears it once either way.
void ProcessTransport::learn_pid(WorkerId id, Worker& w, pid_t pid) {
  if (w.pid > 0 || pid <= 0) return;
  w.pid = pid;
  if (!launcher_->workers_are_children()) by_pid_[pid] = id;
  if (w.stop_when_known) send_stop(pid, *w.stop_when_known);
  events_->on_worker_id(id, pid);
}

void ProcessTransport::send(WorkerId id, MessageType type, std::uint64_t task,
                            const codec::Buffer& payload) {
  auto it = workers_.find(id);
  if (it == workers_.end() || !it->second.reading) return;
  Worker& w = it->second;
  if (type == MessageType::config) {
    // The claim word travels with the config.
    codec::Buffer copy;
    copy.append(payload.data(), payload.size());
    const int claims_fd = fcntl(w.claims->fd(), F_DUPFD_CLOEXEC, 0);
    if (claims_fd < 0) throw_errno("dup of a claim word");
    w.channel->send(frame_type(type), task, std::move(copy), claims_fd);
    return;
  }
  w.channel->send_copy(frame_type(type), task, payload, w.claims->generation());
}

std::uint32_t ProcessTransport::tasks_started(WorkerId id) {
  auto it = workers_.find(id);
  return it == workers_.end() ? 0 : it->second.claims->started();
}

std::uint32_t ProcessTransport::take_back(WorkerId id) {
  auto it = workers_.find(id);
  return it == workers_.end() ? 0 : it->second.claims->take_back();
}

void ProcessTransport::send(WorkerId id, MessageType type, std::uint64_t task) {
  auto it = workers_.find(id);
  if (it == workers_.end() || !it->second.reading) return;
  it->second.channel->send(frame_type(type), task);
}

void ProcessTransport::stop(WorkerId id, StopSignal signal) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  if (w.pid > 0) {
    send_stop(w.pid, signal);
  } else {
    w.stop_when_known = signal;
  }
}

void ProcessTransport::flush() {
  if (server_ != nullptr) {
    flush_channel(server_->channel(), event_key(kServer, 0), server_watching_output_);
  }
  for (auto& [id, w] : workers_) {
    if (w.reading) flush_channel(*w.channel, event_key(kChannel, id), w.watching_output);
  }
}

void ProcessTransport::flush_channel(Channel& ch, std::uint64_t key, bool& watching_output) {
  if (!ch.has_output()) return;
  bool done = false;
  try {
    done = ch.flush();
  } catch (const std::system_error&) {
    done = true;  // the peer is gone; its death event says the rest
  }
  if (watching_output == !done) return;
  watching_output = !done;
  epoll_event ev{};
  ev.events = done ? EPOLLIN : (EPOLLIN | EPOLLOUT);
  ev.data.u64 = key;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, ch.fd(), &ev);
}

void ProcessTransport::wake() noexcept {
  const std::uint64_t one = 1;
  ssize_t n;
  do {
    n = write(wake_fd_.get(), &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

void ProcessTransport::wait(std::optional<std::chrono::milliseconds> timeout) {
  epoll_event events[64];
  const int n =
      epoll_wait(epoll_fd_.get(), events, 64, timeout ? static_cast<int>(timeout->count()) : -1);
  if (n < 0) {
    if (errno == EINTR) return;
    throw_errno("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    const auto kind = static_cast<EventKind>(events[i].data.u64 >> 56);
    const WorkerId id = events[i].data.u64 & ((std::uint64_t{1} << 56) - 1);
    switch (kind) {
      case kWake: {
        std::uint64_t value;
        while (read(wake_fd_.get(), &value, sizeof value) < 0 && errno == EINTR) {
        }
        break;
      }
      case kServer:
        read_server();
        break;
      case kChannel: {
        auto it = workers_.find(id);
        if (it != workers_.end()) read_worker(id, it->second);
        break;
      }
      case kPidfd: {
        auto it = workers_.find(id);
        if (it == workers_.end()) break;
        siginfo_t info{};
        if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(it->second.pidfd.get()), &info,
                   WEXITED | WNOHANG) == 0 &&
            info.si_pid != 0) {
          died(id, describe_exit(info.si_code, info.si_status));
        }
        break;
      }
    }
  }
}

void ProcessTransport::read_worker(WorkerId id, Worker& w) {
  if (!w.reading) return;
  Channel::Received got;
  try {
    got = w.channel->receive();
  } catch (const std::exception& e) {
    // A live worker that is no longer read would hold its place for ever: stop it, so that
    // its death is handled like any other.
    deliver_frames(id, w);
    if (w.reading) end_stream(id, w, std::string("its channel could not be read: ") + e.what());
    return;
  }
  deliver_frames(id, w);
  if (got == Channel::Received::closed && w.reading) end_stream(id, w, {});
}

void ProcessTransport::deliver_frames(WorkerId id, Worker& w) {
  while (w.reading) {
    std::optional<Frame> f;
    try {
      f = w.channel->next();
    } catch (const std::exception& e) {
      end_stream(id, w, e.what());
      return;
    }
    if (!f) return;
    const auto type = static_cast<MessageType>(f->header.type);
    if (type == MessageType::hello) learn_pid(id, w, static_cast<pid_t>(f->header.id));
    // Descriptors the payload's values hold (shared arrays) go with it.
    std::vector<int> descriptors;
    descriptors.reserve(f->fds.size());
    for (UniqueFd& fd : f->fds) descriptors.push_back(fd.release());
    if (f->header.shared) {
      for (int fd : descriptors) f->shared.attach(fd);
      remote::Message m(type, f->header.id, std::move(f->shared));
      events_->on_message(id, m);
    } else {
      remote::Message m(type, f->header.id, std::span<const std::byte>(f->data(), f->size()),
                        std::move(descriptors));
      events_->on_message(id, m);
    }
  }
}

// Nothing more is read from `w`. With an error, its stream cannot be followed: it is stopped.
void ProcessTransport::end_stream(WorkerId id, Worker& w, const std::string& error) {
  w.reading = false;
  unwatch(w.channel->fd());
  if (!error.empty()) stop(id, StopSignal::kill);
  events_->on_stream_end(id, error);
}

// Reads what it sent before dying (those replies are real results), then reports the death.
void ProcessTransport::died(WorkerId id, const std::string& how) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  drain(id);
  Worker& w = it->second;
  if (w.reading) {
    w.reading = false;
    unwatch(w.channel->fd());
  }
  if (w.pidfd) unwatch(w.pidfd.get());
  by_pid_.erase(w.pid);
  workers_.erase(it);  // closes its channel and pidfd
  events_->on_death(id, how);
}

// Stops at the end of the stream or when nothing more is there (a descendant of the worker may
// hold its socket open).
void ProcessTransport::drain(WorkerId id) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  Worker& w = it->second;
  try {
    while (w.reading && w.channel->receive() == Channel::Received::data) deliver_frames(id, w);
  } catch (...) {
  }
  deliver_frames(id, w);
}

void ProcessTransport::read_server() {
  std::vector<ForkServer::Event> events;
  const bool open = server_->read(events);
  for (const ForkServer::Event& e : events) {
    if (e.kind == ForkServer::Event::Kind::spawned) {
      auto it = workers_.find(e.worker);
      if (it == workers_.end()) continue;
      if (e.pid <= 0) {
        std::string why = "the fork server's fork failed";
        if (e.error != 0) {
          why += std::string(": ") + std::strerror(e.error);
          const std::string cause = errno_cause(e.error);
          if (!cause.empty()) why += " (" + cause + ")";
        }
        events_->on_launch_failure(e.worker, why);
        died(e.worker, "could not be forked by the fork server");
      } else {
        learn_pid(e.worker, it->second, e.pid);
      }
    } else {
      auto it = by_pid_.find(e.pid);
      if (it != by_pid_.end()) died(it->second, describe_wait_status(e.status));
    }
  }
  if (!open) {
    // The fork server died: no new workers can be made, and those it forked die with it.
    unwatch(server_->channel().fd());
    events_->on_transport_failure("the fork server process died");
    std::vector<WorkerId> lost;
    for (const auto& [id, w] : workers_) lost.push_back(id);
    for (const WorkerId id : lost) died(id, "was lost with the fork server");
  }
}

void ProcessTransport::reap_all() {
  std::vector<WorkerId> ids;
  for (const auto& [id, w] : workers_) ids.push_back(id);
  for (const WorkerId id : ids) {
    auto it = workers_.find(id);
    if (it == workers_.end()) continue;
    if (it->second.pidfd) {
      if (it->second.pid > 0) kill(it->second.pid, SIGKILL);  // it may not have been stopped yet
      siginfo_t info{};
      waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(it->second.pidfd.get()), &info,
             WEXITED);
    }
    died(id, "was stopped");
  }
}

}  // namespace concurrent::futures::detail::process
