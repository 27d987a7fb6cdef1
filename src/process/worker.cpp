// The child side of the process pool: the worker loop, the fork server, and spawning.
//
// Children leave through _exit after flushing only their own stdio output: they never run the
// parent's atexit handlers or static destructors, and never write the parent's buffered output
// a second time (prepare_child drops the copy fork made of it).
#include "process/worker.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "concurrent/futures/detail/entry.hpp"
#include "concurrent/futures/process_pool.hpp"
#include "process/channel.hpp"

extern char** environ;

namespace concurrent::futures {

namespace detail::process {

namespace {

[[noreturn]] void exit_child(int code) noexcept {
  std::fflush(nullptr);
  _exit(code);
}

codec::Buffer exception_payload(const std::exception_ptr& e) {
  codec::Buffer b;
  codec::Writer w(b);
  codec::write_exception(w, e);
  return b;
}

}  // namespace

void prepare_child(int keep, pid_t parent) noexcept {
  __fpurge(stdout);
  __fpurge(stderr);
  if (keep > 3) close_range(3, static_cast<unsigned>(keep) - 1, 0);
  close_range(static_cast<unsigned>(keep) + 1, ~0U, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);  // the parent died before PR_SET_PDEATHSIG took effect
  // The parent's handlers and ignored signals are not the worker's: terminate_workers' SIGTERM
  // must end it whatever the parent does with SIGTERM.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void serve(int fd) noexcept {
  // A task that calls exit() ends the worker (a crash while it holds a task) but must not run the
  // atexit handlers and static destructors this process inherited from the parent. on_exit
  // handlers run newest first, so this one runs before all of those.
  on_exit([](int status, void*) { exit_child(status); }, nullptr);
  try {
    Channel ch(fd);
    ch.send(FrameType::hello, static_cast<std::uint64_t>(getpid()));
    ch.flush();
    std::uint64_t max_tasks = 0;
    // The config comes first.
    for (;;) {
      std::optional<Frame> f = ch.next();
      if (!f) {
        if (ch.receive() == Channel::Received::closed) exit_child(0);
        continue;
      }
      if (f->header.type != FrameType::config) exit_child(2);
      codec::Reader r(f->data(), f->size());
      max_tasks = r.pod<std::uint64_t>();
      if (r.pod<std::uint8_t>() != 0) {
        try {
          auto init = reinterpret_cast<void (*)()>(const_cast<void*>(read_function(r)));
          init();
        } catch (...) {
          ch.send(FrameType::init_failed, 0, exception_payload(std::current_exception()));
          ch.flush();
          exit_child(3);
        }
      }
      ch.send(FrameType::ready, 0);
      ch.flush();
      break;
    }
    std::uint64_t done = 0;
    for (;;) {
      std::optional<Frame> f = ch.next();
      if (!f) {
        // Nothing buffered: send the replies gathered so far, then wait for more.
        ch.flush();
        if (ch.receive() == Channel::Received::closed) exit_child(0);
        continue;
      }
      if (f->header.type == FrameType::exit) {
        ch.flush();
        exit_child(0);
      }
      if (f->header.type != FrameType::task) exit_child(2);
      // Send the previous reply before running this task: if this one crashes the worker, the
      // results already computed must not die with it.
      ch.flush();
      const std::uint64_t id = f->header.id;
      codec::Buffer reply;
      {
        codec::Reader request(f->data(), f->size());
        codec::Writer w(reply);
        const auto key = request.pod<std::uint64_t>();
        if (const EntryFn entry = find_entry(key)) {
          entry(request, w);
        } else {
          w.pod(ReplyStatus::error);
          codec::write_exception(
              w, std::make_exception_ptr(SerializationError(
                     "the worker process does not know this task's function (is it running the "
                     "same program as the parent?)")));
        }
      }
      f.reset();  // unmap a large request before replying
      if (reply.size() > std::numeric_limits<std::uint32_t>::max()) {
        reply.clear();
        codec::Writer w(reply);
        w.pod(ReplyStatus::error);
        codec::write_exception(w, std::make_exception_ptr(SerializationError(
                                     "a task's result takes more than 4 GiB, the most one "
                                     "message holds")));
      }
      ch.send(FrameType::reply, id, std::move(reply));
      ++done;
      if (max_tasks != 0 && done >= max_tasks) {
        ch.flush();
        exit_child(0);
      }
    }
  } catch (...) {
    // The channel broke (the parent is gone) or memory ran out: nothing to report to.
    exit_child(4);
  }
}

void forkserver_main(int control_fd) noexcept {
  // Single-threaded from here on. Children are reaped as SIGCHLD arrives (through a signalfd), and
  // each death is reported to the parent, which cannot wait for processes that are not its own.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  const int sfd = signalfd(-1, &chld, SFD_CLOEXEC);
  if (sfd < 0) exit_child(5);
  std::vector<pid_t> children;
  try {
    Channel ch(control_fd);
    for (;;) {
      pollfd fds[2] = {{control_fd, POLLIN, 0}, {sfd, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) {
        signalfd_siginfo info;
        while (read(sfd, &info, sizeof info) < 0 && errno == EINTR) {
        }
        int status = 0;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
          std::erase(children, pid);
          ch.send(FrameType::exited, static_cast<std::uint64_t>(pid), &status, sizeof status);
        }
        ch.flush();
      }
      if (fds[0].revents != 0) {
        if (ch.receive() == Channel::Received::closed) break;  // the parent is gone or done
        while (std::optional<Frame> f = ch.next()) {
          if (f->header.type != FrameType::spawn || f->fd < 0) continue;
          const pid_t self = getpid();
          const pid_t pid = fork();
          if (pid == 0) {
            prepare_child(f->fd, self);
            serve(f->fd);
          }
          close(f->fd);
          f->fd = -1;
          if (pid > 0) children.push_back(pid);
          const std::int64_t reported = pid;  // -1 if fork failed
          ch.send(FrameType::spawned, f->header.id, &reported, sizeof reported);
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

namespace {

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string current;
  for (const char c : all) {
    if (c == '\0') {
      args.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (args.empty()) args.emplace_back("cfutures-worker");
  return args;
}

}  // namespace

pid_t spawn_worker(int channel_fd) {
  std::vector<std::string> args = own_command_line();
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with(kWorkerFdEnv) || entry.starts_with(kParentPidEnv)) continue;
    env_strings.emplace_back(entry);
  }
  env_strings.push_back(std::string(kWorkerFdEnv) + "=3");
  env_strings.push_back(std::string(kParentPidEnv) + "=" + std::to_string(getpid()));
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // The channel becomes descriptor 3 (dup2 clears close-on-exec); nothing else is inherited.
  posix_spawn_file_actions_adddup2(&actions, channel_fd, 3);
  posix_spawn_file_actions_addclosefrom_np(&actions, 4);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn of a worker");
  return pid;
}

bool is_spawned_worker() noexcept { return std::getenv(kWorkerFdEnv) != nullptr; }

}  // namespace detail::process

void serve_if_worker(int /*argc*/, char** /*argv*/) {
  const char* fd_text = std::getenv(detail::process::kWorkerFdEnv);
  if (fd_text == nullptr) return;
  const char* parent_text = std::getenv(detail::process::kParentPidEnv);
  const int fd = std::atoi(fd_text);
  const pid_t parent = parent_text != nullptr ? static_cast<pid_t>(std::atol(parent_text)) : 0;
  unsetenv(detail::process::kWorkerFdEnv);
  unsetenv(detail::process::kParentPidEnv);
  detail::process::prepare_child(fd, parent);
  detail::process::serve(fd);
}

}  // namespace concurrent::futures
