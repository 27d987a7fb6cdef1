#include "process/forkserver.hpp"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "concurrent/futures/detail/entry.hpp"
#include "process/child.hpp"
#include "process/worker_loop.hpp"

namespace concurrent::futures::detail::process {

ForkServer::ForkServer() : ForkServer(make_socket_pair()) {}

ForkServer::ForkServer(std::pair<UniqueFd, UniqueFd> sockets) : channel_(std::move(sockets.first)) {
  // Free heap pages go back to the system first: the server would otherwise share them with this
  // process copy-on-write for the pool's lifetime, and each later write of this process to one of
  // them (the pool's own allocations reuse freed memory) would copy it.
  malloc_trim(0);
  const pid_t self = getpid();
  {
    ForkGuard guard;
    pid_ = fork();
  }
  if (pid_ < 0) throw_errno("fork of the fork server failed");
  if (pid_ == 0) {
    prepare_child(sockets.second.get(), self);
    forkserver_main(sockets.second.release());
  }
  set_nonblocking(channel_.fd());
}  // sockets.second: the parent's copy of the server's end closes here

ForkServer::~ForkServer() {
  // End of stream: the server kills what is left and exits. Close first, then wait.
  channel_.close();
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

pid_t ForkServer::launch(std::uint64_t worker, UniqueFd channel) {
  // The descriptor travels with the frame and is closed here once sent.
  channel_.send(frame_type(ServerFrame::spawn), worker, codec::Buffer(), channel.release());
  return 0;
}

bool ForkServer::read(std::vector<Event>& events) {
  bool open = true;
  try {
    open = channel_.receive() != Channel::Received::closed;
    while (std::optional<Frame> f = channel_.next()) {
      if (std::optional<Event> e = server_event(*f)) events.push_back(*e);
    }
  } catch (const std::exception&) {
    open = false;  // a server that cannot be read is as good as gone
  }
  return open;
}

std::optional<ForkServer::Event> server_event(const Frame& frame) {
  const auto type = frame.header.type;
  if (type == frame_type(ServerFrame::spawned)) {
    std::int64_t pid = -1;
    if (frame.size() != sizeof pid) throw std::runtime_error("corrupt fork server report");
    std::memcpy(&pid, frame.data(), sizeof pid);
    using Event = ForkServer::Event;
    if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) {
      // Minus the errno of a failed fork; anything else that is not a pid is a failure too.
      const int error = pid < 0 && pid >= -4095 ? static_cast<int>(-pid) : 0;
      return Event{Event::Kind::spawned, frame.header.id, -1, 0, error};
    }
    return Event{Event::Kind::spawned, frame.header.id, static_cast<pid_t>(pid), 0, 0};
  }
  if (type == frame_type(ServerFrame::exited)) {
    int status = 0;
    if (frame.size() != sizeof status || frame.header.id == 0 ||
        frame.header.id > static_cast<std::uint64_t>(std::numeric_limits<pid_t>::max())) {
      throw std::runtime_error("corrupt fork server report");
    }
    std::memcpy(&status, frame.data(), sizeof status);
    using Event = ForkServer::Event;
    return Event{Event::Kind::exited, 0, static_cast<pid_t>(frame.header.id), status};
  }
  return std::nullopt;
}

void forkserver_main(int control_fd) noexcept {
  // Single-threaded from here on. Children are reaped as SIGCHLD arrives (through a signalfd),
  // and each death is reported to the parent.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  const UniqueFd sfd(signalfd(-1, &chld, SFD_CLOEXEC));
  if (!sfd) exit_child(5);
  std::vector<pid_t> children;
  try {
    Channel ch{UniqueFd(control_fd)};
    for (;;) {
      pollfd fds[2] = {{control_fd, POLLIN, 0}, {sfd.get(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) {
        signalfd_siginfo info;
        while (::read(sfd.get(), &info, sizeof info) < 0 && errno == EINTR) {
        }
        int status = 0;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
          std::erase(children, pid);
          ch.send(frame_type(ServerFrame::exited), static_cast<std::uint64_t>(pid), &status,
                  sizeof status);
        }
        ch.flush();
      }
      if (fds[0].revents != 0) {
        if (ch.receive() == Channel::Received::closed) break;  // the parent is gone or done
        while (std::optional<Frame> f = ch.next()) {
          // Whatever the frame, a descriptor it brought is ours to close.
          const UniqueFd worker_end = f->fds.empty() ? UniqueFd() : std::move(f->fds.front());
          if (f->header.type != frame_type(ServerFrame::spawn) || !worker_end) continue;
          const pid_t self = getpid();
          const pid_t pid = fork();
          const int fork_error = errno;
          if (pid == 0) {
            prepare_child(worker_end.get(), self);
            serve(worker_end.get());
          }
          if (pid > 0) children.push_back(pid);
          const std::int64_t reported = pid > 0 ? pid : -std::int64_t{fork_error};
          ch.send(frame_type(ServerFrame::spawned), f->header.id, &reported, sizeof reported);
        }
        ch.flush();
      }
    }
  } catch (...) {
  }
  // The parent went away: take the workers with us.
  for (const pid_t pid : children) kill(pid, SIGKILL);
  for (const pid_t pid : children) waitpid(pid, nullptr, 0);
  _exit(0);
}

}  // namespace concurrent::futures::detail::process
