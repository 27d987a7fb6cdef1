// Which tasks a worker has started, in memory the parent and the worker share, so that the parent
// can take back tasks it handed to a worker that has not started them (and give them to an idle
// worker) without waiting for that worker, which may be busy with a long task.
//
// One 64-bit word: a generation (high 32 bits) and the count of tasks the worker has started (low
// 32 bits). Each task frame carries the generation it was sent in (its low 8 bits). The worker
// starts a task only while that is still the word's generation, by a compare-and-swap that adds
// one to the count; otherwise the task was taken back and it skips it without a reply. The parent
// takes back every task not started yet by a compare-and-swap that moves to the next generation
// and reads the count: tasks are started in the order they were sent, so the count says exactly
// which ones. Both sides use lock-free atomics on a MAP_SHARED page, which work across processes.
// Eight bits of generation suffice: the parent takes tasks back only from a worker that is running
// a task and has more sent behind it (see Dispatcher::take_back_stalled), and hands it nothing new
// until that task's reply; so a frame left unread behind the running task sees at most two
// take-backs before the worker reads past it, never 256.
#pragma once

#include <atomic>
#include <cstdint>

#include "system.hpp"

namespace concurrent::futures::detail::process {

class ClaimWord {
 public:
  // The parent's: a fresh page in a memfd.
  static ClaimWord create();
  // The worker's: the page the parent sent (mapped; the descriptor is closed).
  static ClaimWord adopt(UniqueFd fd);

  ClaimWord(ClaimWord&& other) noexcept;
  ClaimWord& operator=(ClaimWord&& other) noexcept;
  ClaimWord(const ClaimWord&) = delete;
  ~ClaimWord();

  // The parent's descriptor of the page, to send to the worker.
  int fd() const noexcept { return fd_.get(); }

  // Worker: starts the next task, sent in `generation`; false if it was taken back.
  bool claim(std::uint8_t generation) noexcept;
  // Parent: the generation new tasks are sent in.
  std::uint8_t generation() const noexcept;
  // Parent: how many tasks the worker has started in all (modulo 2^32); a lower bound, since it
  // only grows.
  std::uint32_t started() const noexcept;
  // Parent: takes back every task sent and not started; returns how many the worker has started
  // in all (modulo 2^32).
  std::uint32_t take_back() noexcept;

 private:
  ClaimWord(UniqueFd fd, std::atomic<std::uint64_t>* word) : fd_(std::move(fd)), word_(word) {}
  UniqueFd fd_;
  std::atomic<std::uint64_t>* word_ = nullptr;
};

}  // namespace concurrent::futures::detail::process
