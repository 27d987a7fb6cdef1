// The MPI transport: each worker is a rank, reached with MPI messages (link.hpp) and woken
// through its doorbell. A rank cannot be restarted or killed: stop() tells it to leave after
// what it is running, and a rank whose doorbell closes is dead.
//
// The dispatcher thread spins on MPI_Improbe for a moment after activity while tasks are short
// (under a millisecond, as measured by the dispatcher: note_task_time) and otherwise sleeps in
// poll() on the doorbells and an eventfd (wake()), so an idle pool costs no CPU (see Doorbell in
// link.hpp for when a side rings).
#pragma once

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "mpi/link.hpp"
#include "mpi/ranks.hpp"
#include "remote/transport.hpp"
#include "system.hpp"

namespace concurrent::futures::detail::mpi {

class MpiTransport final : public remote::Transport {
 public:
  explicit MpiTransport(std::unique_ptr<Ranks> ranks);
  ~MpiTransport() override;

  void open(remote::TransportEvents& events) override;
  void launch(remote::WorkerId worker) override;
  void send(remote::WorkerId worker, remote::MessageType type, std::uint64_t id,
            const codec::Buffer& payload) override;
  void send(remote::WorkerId worker, remote::MessageType type, std::uint64_t id) override;
  // Takes the request: a rank's tasks are never handed to another (see Transport::send_task).
  void send_task(remote::WorkerId worker, std::uint64_t id, codec::Buffer& request) override;
  void stop(remote::WorkerId worker, remote::StopSignal signal) override;
  void flush() override;
  void wait(std::optional<std::chrono::milliseconds> timeout) override;
  void wake() noexcept override;
  void note_task_time(std::chrono::steady_clock::duration took) noexcept override;
  void drain(remote::WorkerId worker) override;
  void reap_all() override;
  void close() noexcept override;

  bool can_restart() const noexcept override { return false; }
  std::size_t max_payload() const noexcept override;
  std::string worker_name(int id) const override { return "worker rank " + std::to_string(id); }

 private:
  struct Worker {
    Member* member = nullptr;
    bool reading = true;        // neither left nor dead
    bool stopped = false;       // told to leave by stop(): its replies are no longer delivered
    bool told_to_exit = false;  // its connection closing is then its leaving, not a death
    bool posted = false;        // sent to since the last flush: rung there if it sleeps
  };

  void post(Worker& w, std::uint8_t type, std::uint64_t id, std::span<const std::byte> payload,
            codec::Buffer* take = nullptr);
  bool progress_sends();
  bool receive_all();
  void deliver(Incoming& in);
  void gone(remote::WorkerId worker, Worker& w, const std::string& how);
  bool hear_all();
  void sleep(long long timeout_us);
  std::size_t live_workers() const;

  std::unique_ptr<Ranks> ranks_;
  remote::TransportEvents* events_ = nullptr;
  std::uint32_t session_ = 0;
  int reply_tag_ = -1;  // this pool's (take_reply_tag)
  std::size_t launched_ = 0;
  UniqueFd wake_fd_;
  std::atomic<bool> woken_{false};
  std::map<remote::WorkerId, Worker> workers_;
  std::unordered_map<int, remote::WorkerId> by_rank_;
  Sends sends_;
  codec::Buffer scratch_;
  std::chrono::steady_clock::time_point last_activity_{};
  bool spin_ = true;  // whether wait() spins after activity (see note_task_time)
};

}  // namespace concurrent::futures::detail::mpi
