// The forkserver start method. A single-threaded server process, forked by the pool's dispatcher
// thread when the pool starts, forks the workers on request: replacing a worker later never forks
// the (multithreaded) parent. The server reaps the workers it forks and reports their deaths,
// since the parent cannot wait for processes that are not its children.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "process/channel.hpp"
#include "process/launcher.hpp"

namespace concurrent::futures::detail::process {

// The parent's side of the fork server.
class ForkServer final : public Launcher {
 public:
  // Forks the server. The server dies with the thread that calls this (PR_SET_PDEATHSIG).
  ForkServer();
  // Closes the server's channel (the server kills the workers left and exits) and reaps it.
  ~ForkServer() override;
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  // Asks the server for a worker on `channel`; returns 0: the pid comes in a `spawned` event.
  pid_t launch(std::uint64_t worker, UniqueFd channel) override;
  bool workers_are_children() const noexcept override { return false; }

  struct Event {
    enum class Kind { spawned, exited } kind;
    std::uint64_t worker = 0;  // spawned
    pid_t pid = -1;            // spawned: -1 if the fork failed; exited: who
    int status = 0;            // exited: the wait status
    int error = 0;             // spawned: why the fork failed (an errno value), or 0
  };
  // Reads what the server has said; false once the server is gone.
  bool read(std::vector<Event>& events);

  Channel& channel() noexcept { return channel_; }
  pid_t pid() const noexcept { return pid_; }

 private:
  ForkServer(std::pair<UniqueFd, UniqueFd> sockets);
  Channel channel_;
  pid_t pid_ = -1;
};

// A frame from the server as the event it reports; nullopt for a frame of another type. Throws
// std::runtime_error for a spawned or exited frame whose payload is not what the server sends.
std::optional<ForkServer::Event> server_event(const Frame& frame);

// The server's loop over its control socket. Never returns.
[[noreturn]] void forkserver_main(int control_fd) noexcept;

}  // namespace concurrent::futures::detail::process
