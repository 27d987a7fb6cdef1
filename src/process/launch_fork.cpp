#include <unistd.h>

#include "concurrent/futures/detail/entry.hpp"
#include "process/child.hpp"
#include "process/launcher.hpp"
#include "process/worker_loop.hpp"

namespace concurrent::futures::detail::process {

namespace {

class ForkLauncher final : public Launcher {
 public:
  pid_t launch(std::uint64_t /*worker*/, UniqueFd channel) override {
    const pid_t self = getpid();
    pid_t pid;
    {
      // The child gets the entry and symbol tables with their locks free.
      ForkGuard guard;
      pid = fork();
    }
    if (pid < 0) throw_errno("fork failed");
    if (pid == 0) {
      prepare_child(channel.get(), self);
      serve(channel.release());
    }
    return pid;  // `channel` closes the parent's copy of the worker's end
  }
};

}  // namespace

std::unique_ptr<Launcher> make_fork_launcher() { return std::make_unique<ForkLauncher>(); }

}  // namespace concurrent::futures::detail::process
