// What every child process of the pool (worker or fork server) does first and last.
#pragma once

#include <sys/types.h>

namespace concurrent::futures::detail::process {

// In a freshly forked child: forget the parent's buffered stdio output (it is the parent's to
// write), close every descriptor but 0-2 and `keep`, die with the parent (whose pid is `parent`),
// restore default signal handling.
void prepare_child(int keep, pid_t parent) noexcept;

// Leaves the child: flushes its own stdio output only, and never runs the atexit handlers and
// static destructors it inherited from the parent.
[[noreturn]] void exit_child(int code) noexcept;

}  // namespace concurrent::futures::detail::process
