// The worker process: the protocol (remote/protocol.hpp) spoken over its channel.
#pragma once

namespace concurrent::futures::detail::process {

// Serves over the channel `fd`: says hello, reads its config, runs the initializer, serves tasks
// until told to exit, the channel ends, or max_tasks_per_child is reached. Never returns.
[[noreturn]] void serve(int fd) noexcept;

// The channel's descriptor in a worker process, while serve() runs in it; -1 in any other process.
// For the tests that play a worker gone wrong (they write raw bytes to the parent from a task):
// nothing else may write to it.
int worker_channel_fd() noexcept;

}  // namespace concurrent::futures::detail::process
