// How worker processes are started: one launcher per start method (launch_fork.cpp,
// launch_spawn.cpp, forkserver.cpp). A launcher hands the worker its end of a socket pair; the
// worker then speaks the protocol (remote/protocol.hpp) over it (worker_loop.hpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>

#include "system.hpp"

namespace concurrent::futures::detail::process {

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Starts a worker that serves on `channel`, its end of the socket pair (passed on, and closed
  // here). Returns its pid, or 0 when the pid comes later (the fork server reports it). Throws
  // std::system_error when the process cannot be made.
  virtual pid_t launch(std::uint64_t worker, UniqueFd channel) = 0;
  // Whether the workers are this process's children, so that a pidfd can wait for them.
  virtual bool workers_are_children() const noexcept { return true; }
};

// StartMethod::fork: forks the calling process (holding ForkGuard, see entry.hpp).
std::unique_ptr<Launcher> make_fork_launcher();
// StartMethod::spawn: starts /proc/self/exe afresh, with the channel as descriptor 3.
std::unique_ptr<Launcher> make_spawn_launcher();

// Spawned workers: the environment that tells the program it is one (see serve_if_worker).
inline constexpr const char* kWorkerFdEnv = "CFUTURES_WORKER_FD";
inline constexpr const char* kParentPidEnv = "CFUTURES_PARENT_PID";
// A spawned program that reaches a ProcessPoolExecutor without calling serve_if_worker exits
// with this code, which the parent explains.
inline constexpr int kMissingServeExitCode = 97;
// True in a process started by the spawn launcher (before serve_if_worker took over).
bool is_spawned_worker() noexcept;

}  // namespace concurrent::futures::detail::process
