// What runs in the child processes: the worker loop and the fork server, and how the parent
// starts them (fork, forkserver, spawn).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace concurrent::futures::detail::process {

// Environment variables that tell a spawned program it is a worker.
inline constexpr const char* kWorkerFdEnv = "CFUTURES_WORKER_FD";
inline constexpr const char* kParentPidEnv = "CFUTURES_PARENT_PID";
// A spawned program that reaches a ProcessPoolExecutor without calling serve_if_worker exits
// with this code, which the parent explains.
inline constexpr int kMissingServeExitCode = 97;

// In a freshly forked child: forget the parent's buffered stdio output (it is the parent's to
// write), close every descriptor but 0-2 and `keep`, die with the parent (whose pid is
// `parent`), unblock signals.
void prepare_child(int keep, pid_t parent) noexcept;

// The worker loop over the channel `fd`: says hello, reads its config, runs the initializer,
// serves tasks until told to exit, the channel ends, or max_tasks_per_child is reached. Never
// returns.
[[noreturn]] void serve(int fd) noexcept;

// The fork server's loop over its control socket (see process_pool.cpp). Never returns.
[[noreturn]] void forkserver_main(int control_fd) noexcept;

// Starts the program afresh as a worker on `channel_fd` (which becomes its descriptor 3).
pid_t spawn_worker(int channel_fd);

// True in a process started by spawn_worker (before serve_if_worker took over).
bool is_spawned_worker() noexcept;

}  // namespace concurrent::futures::detail::process
