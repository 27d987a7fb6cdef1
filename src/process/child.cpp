#include "process/child.hpp"

#include <signal.h>
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>

namespace concurrent::futures::detail::process {

void prepare_child(int keep, pid_t parent) noexcept {
  __fpurge(stdout);
  __fpurge(stderr);
  if (keep > 3) close_range(3, static_cast<unsigned>(keep) - 1, 0);
  close_range(static_cast<unsigned>(keep) + 1, ~0U, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);  // the parent died before PR_SET_PDEATHSIG took effect
  // The parent's handlers and ignored signals are not the child's: terminate_workers' SIGTERM
  // must end a worker whatever the parent does with SIGTERM.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void exit_child(int code) noexcept {
  std::fflush(nullptr);
  _exit(code);
}

}  // namespace concurrent::futures::detail::process
