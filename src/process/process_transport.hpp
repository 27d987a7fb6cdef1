// The process transport: each worker is a process with its own channel (a unix socket) to the
// parent, so a dying worker can corrupt nothing shared.
//
// The dispatcher thread sleeps in epoll on: an eventfd (wake()), each worker's channel (replies,
// end of stream), each worker's pidfd (its death; fork and spawn workers are our children), and
// the fork server's socket (it reports the pids it forks and the deaths it reaps). A worker's
// death is reported only after its channel has been read to the end, so no reply it sent is lost.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "concurrent/futures/process_pool.hpp"
#include "process/channel.hpp"
#include "process/claims.hpp"
#include "process/forkserver.hpp"
#include "process/launcher.hpp"
#include "remote/transport.hpp"
#include "system.hpp"

namespace concurrent::futures::detail::process {

class ProcessTransport final : public remote::Transport {
 public:
  explicit ProcessTransport(StartMethod method);
  ~ProcessTransport() override;

  void open(remote::TransportEvents& events) override;
  void launch(remote::WorkerId worker) override;
  void send(remote::WorkerId worker, remote::MessageType type, std::uint64_t id,
            const codec::Buffer& payload) override;
  void send(remote::WorkerId worker, remote::MessageType type, std::uint64_t id) override;
  void stop(remote::WorkerId worker, remote::StopSignal signal) override;
  void flush() override;
  void wait(std::optional<std::chrono::milliseconds> timeout) override;
  void wake() noexcept override;
  bool can_take_back() const noexcept override { return true; }
  std::uint32_t tasks_started(remote::WorkerId worker) override;
  std::uint32_t take_back(remote::WorkerId worker) override;
  void drain(remote::WorkerId worker) override;
  void reap_all() override;
  void close() noexcept override;

  bool can_restart() const noexcept override { return true; }
  bool passes_descriptors() const noexcept override { return true; }
  std::size_t max_payload() const noexcept override;
  std::string advice_for_silent_death() const override;
  std::optional<std::chrono::steady_clock::duration> hello_timeout() const noexcept override;
  std::optional<std::chrono::steady_clock::duration> exit_grace() const noexcept override;

  // The fork server's pid, or -1 (any thread).
  int forkserver_pid() const noexcept { return server_pid_.load(std::memory_order_relaxed); }

 private:
  struct Worker {
    pid_t pid = -1;
    UniqueFd pidfd;  // children only
    std::unique_ptr<Channel> channel;
    std::optional<ClaimWord> claims;  // which tasks it has started (see claims.hpp)
    bool reading = true;              // its stream has neither ended nor failed
    bool watching_output = false;     // EPOLLOUT is in its channel's epoll events
    std::optional<remote::StopSignal> stop_when_known;  // stopped before its pid was known
  };

  void watch(int fd, std::uint64_t key, std::uint32_t events);
  void unwatch(int fd) noexcept;
  void learn_pid(remote::WorkerId id, Worker& w, pid_t pid);
  void read_worker(remote::WorkerId id, Worker& w);
  void deliver_frames(remote::WorkerId id, Worker& w);
  void end_stream(remote::WorkerId id, Worker& w, const std::string& error);
  void died(remote::WorkerId id, const std::string& how);
  void read_server();
  // Writes what `ch` holds, as far as it goes, and watches for room to write the rest (EPOLLOUT,
  // changed only when `watching_output` must change: an epoll_ctl per send would be a syscall
  // per task).
  void flush_channel(Channel& ch, std::uint64_t key, bool& watching_output);

  const StartMethod method_;
  remote::TransportEvents* events_ = nullptr;
  UniqueFd wake_fd_;
  UniqueFd epoll_fd_;
  std::unique_ptr<Launcher> launcher_;
  ForkServer* server_ = nullptr;  // launcher_, for the forkserver method
  bool server_watching_output_ = false;
  std::atomic<int> server_pid_{-1};
  std::map<remote::WorkerId, Worker> workers_;
  std::unordered_map<pid_t, remote::WorkerId> by_pid_;  // fork-server workers
};

}  // namespace concurrent::futures::detail::process
