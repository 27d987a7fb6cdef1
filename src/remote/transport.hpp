// What the dispatcher needs from whatever carries its messages to workers: start a worker, send
// it a message, stop it, and hear back (messages, deaths) through TransportEvents.
//
// Every member is called on the dispatcher's thread but wake(), and every event is delivered on
// that thread from inside wait(), drain(), launch() (a pid known at once) or reap_all(), so
// neither side locks against the other.
//
// Processes (src/process/) are the first transport: a worker is a process with a socket, killed
// with a signal, replaced at will. MPI ranks are the second: a worker is a rank that cannot be
// restarted (can_restart() false), messages are MPI messages, and there is no signal to send.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "concurrent/futures/detail/codec.hpp"
#include "remote/protocol.hpp"

namespace concurrent::futures::detail::remote {

// Names a worker for the life of a pool (never reused, even when a worker is replaced).
using WorkerId = std::uint64_t;

// A message as the transport received it. Its payload is valid during the event; a receiver
// that wants it longer takes it (codec::Received::take).
class Message {
 public:
  Message(MessageType type, std::uint64_t id, std::span<const std::byte> view) noexcept
      : type_(type), id_(id), payload_(view.data(), view.size()) {}
  // A view with the descriptors that came with it (owned from here on).
  Message(MessageType type, std::uint64_t id, std::span<const std::byte> view,
          std::vector<int> descriptors)
      : type_(type), id_(id), payload_(view.data(), view.size(), std::move(descriptors)) {}
  Message(MessageType type, std::uint64_t id, codec::Buffer owned) noexcept
      : type_(type), id_(id), payload_(std::move(owned)) {}

  MessageType type() const noexcept { return type_; }
  std::uint64_t id() const noexcept { return id_; }
  codec::Received& payload() noexcept { return payload_; }

 private:
  MessageType type_;
  std::uint64_t id_;
  codec::Received payload_;
};

// How a worker is told to stop at once. Processes get the signal; other transports do what comes
// closest (an MPI rank cannot be killed: it is abandoned).
enum class StopSignal : int { terminate = 15 /* SIGTERM */, kill = 9 /* SIGKILL */ };

// What a transport reports. Called on the dispatcher's thread, from Transport::wait or drain.
class TransportEvents {
 public:
  // The worker's process id (or rank) is known.
  virtual void on_worker_id(WorkerId worker, int pid) = 0;
  // A message from the worker, in the order it sent them.
  virtual void on_message(WorkerId worker, Message& message) = 0;
  // The worker's stream ended (or can no longer be read: `error` says why, and the transport has
  // killed it). Its death follows. Nothing more is read from it.
  virtual void on_stream_end(WorkerId worker, const std::string& error) = 0;
  // The worker is gone, and every message it sent was delivered before this. `how` completes
  // "worker <pid> ...", e.g. "was killed by signal 9 (SIGKILL)". Its WorkerId is free after this.
  virtual void on_death(WorkerId worker, const std::string& how) = 0;
  // The transport can start no more workers (the fork server died): the pool must break.
  virtual void on_transport_failure(const std::string& why) = 0;
  // A worker launched earlier could not be started after all (the fork server's fork failed;
  // `why` says how). Its death follows. The pool breaks, with words that say it could not start.
  virtual void on_launch_failure(WorkerId worker, const std::string& why) = 0;

 protected:
  ~TransportEvents() = default;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Called first, on the dispatcher's thread (a fork server must be forked by the thread that
  // lives as long as the pool). Throws when the transport cannot start.
  virtual void open(TransportEvents& events) = 0;
  // Starts a worker; its id (on_worker_id) and its hello come later. Throws if it cannot.
  virtual void launch(WorkerId worker) = 0;
  // Queues a message; `payload` stays the caller's. A worker whose stream has ended is skipped.
  virtual void send(WorkerId worker, MessageType type, std::uint64_t id,
                    const codec::Buffer& payload) = 0;
  virtual void send(WorkerId worker, MessageType type, std::uint64_t id) = 0;
  // Sends a task's request. A transport whose tasks are never handed to another worker once
  // sent (can_take_back() and can_restart() both false, so the dispatcher never requeues them)
  // may take the buffer instead of copying it; others leave it as it is.
  virtual void send_task(WorkerId worker, std::uint64_t id, codec::Buffer& request) {
    send(worker, MessageType::task, id, request);
  }
  // Stops a worker now; its death is reported as usual.
  virtual void stop(WorkerId worker, StopSignal signal) = 0;
  // Writes what is queued, as far as it goes without blocking.
  virtual void flush() = 0;
  // Waits until something happens, wake() is called or `timeout` passes (nullopt: no limit), and
  // delivers what happened.
  virtual void wait(std::optional<std::chrono::milliseconds> timeout) = 0;
  // Any thread: makes a wait() in progress (or the next one) return soon.
  virtual void wake() noexcept = 0;
  // The dispatcher's measured time of one task, from its start at the head of a window to its
  // reply, each time it changes. A transport whose wait() spins before it sleeps may spin only
  // while replies come about that often.
  virtual void note_task_time(std::chrono::steady_clock::duration /*took*/) noexcept {}
  // Whether this transport can take back tasks a worker has not started (below).
  virtual bool can_take_back() const noexcept { return false; }
  // How many tasks `worker` has started in all, modulo 2^32 (it only grows). Tasks start in the
  // order they were sent.
  virtual std::uint32_t tasks_started(WorkerId /*worker*/) { return 0; }
  // Makes `worker` skip every task sent to it that it has not started (it sends no reply for
  // them) and returns how many it has started in all, modulo 2^32.
  virtual std::uint32_t take_back(WorkerId /*worker*/) { return 0; }
  // Delivers the messages `worker` has already sent (not its death).
  virtual void drain(WorkerId worker) = 0;
  // Blocks until every worker launched and not yet reported dead is dead, and reports them.
  virtual void reap_all() = 0;
  // Releases what open() made (the fork server). Workers must all be dead.
  virtual void close() noexcept = 0;

  // Whether messages can carry descriptors (cf::SharedArray): the workers share this machine's
  // memory. MPI ranks: no, they may run on other hosts.
  virtual bool passes_descriptors() const noexcept { return false; }
  // Whether a worker can be started after the first ones (MPI ranks: no).
  virtual bool can_restart() const noexcept = 0;
  // The largest payload one message holds.
  virtual std::size_t max_payload() const noexcept = 0;
  // How messages name a worker, by the id it reported (a pid, or a rank).
  virtual std::string worker_name(int id) const { return "worker " + std::to_string(id); }
  // What to tell a user whose worker died before saying hello (spawn: call serve_if_worker);
  // empty when nothing more can be said.
  virtual std::string advice_for_silent_death() const { return {}; }
  // How long a launched worker may take to say hello before it is stopped (spawn: the program
  // may never reach serve_if_worker); nullopt: no limit.
  virtual std::optional<std::chrono::steady_clock::duration> hello_timeout() const noexcept {
    return std::nullopt;
  }
  // How long a worker that holds no task and was told to leave may take to go before it is
  // stopped (a process stopped by SIGSTOP never reads the message, and shutdown would wait for
  // it for ever); nullopt: no limit.
  virtual std::optional<std::chrono::steady_clock::duration> exit_grace() const noexcept {
    return std::nullopt;
  }
};

}  // namespace concurrent::futures::detail::remote
