// Children leave through exit_child: they never run the parent's atexit handlers or static
// destructors, and never write the parent's buffered output a second time.
#include "process/worker_loop.hpp"

#include <unistd.h>

#include <cstdlib>
#include <limits>
#include <optional>
#include <span>
#include <utility>

#include "process/channel.hpp"
#include "process/child.hpp"
#include "process/claims.hpp"
#include "remote/protocol.hpp"

namespace concurrent::futures::detail::process {

namespace {

using remote::MessageType;

// The next frame, waiting for it; the process leaves quietly when the parent is gone.
Frame next_frame(Channel& ch) {
  for (;;) {
    if (std::optional<Frame> f = ch.next()) return std::move(*f);
    // Nothing buffered: send what is queued (replies), then wait for more.
    ch.flush();
    if (ch.receive() == Channel::Received::closed) exit_child(0);
  }
}

std::span<const std::byte> payload(const Frame& f) { return {f.data(), f.size()}; }

// Set once, by serve(), in the worker process (a fork child: no other thread reads it yet).
int channel_fd = -1;

}  // namespace

int worker_channel_fd() noexcept { return channel_fd; }

void serve(int fd) noexcept {
  // A task that calls exit() ends the worker (a crash while it holds a task) but must not run the
  // atexit handlers and static destructors this process inherited from the parent. on_exit
  // handlers run newest first, so this one runs before all of those.
  on_exit([](int status, void*) { exit_child(status); }, nullptr);
  channel_fd = fd;
  // Large arguments come again in the parent's warm segments: read them through kept mappings.
  codec::keep_received_mappings();
  try {
    Channel ch{UniqueFd(fd)};
    ch.send(frame_type(MessageType::hello), static_cast<std::uint64_t>(getpid()));
    ch.flush();
    remote::WorkerConfig config;
    std::optional<ClaimWord> claims;  // absent: every task sent is to be run
    std::exception_ptr error;
    {
      Frame f = next_frame(ch);
      if (f.header.type != frame_type(MessageType::config)) exit_child(2);
      if (!f.fds.empty()) claims.emplace(ClaimWord::adopt(std::move(f.fds.front())));
      try {
        config = remote::decode_config(payload(f));  // names the initializer
      } catch (...) {
        error = std::current_exception();
      }
    }
    if (!error) error = remote::run_initializer(config);
    if (error) {
      ch.send(frame_type(MessageType::init_failed), 0, remote::encode_exception(error));
      ch.flush();
      exit_child(3);
    }
    ch.send(frame_type(MessageType::ready), 0);
    ch.flush();
    std::uint64_t done = 0;
    for (;;) {
      Frame f = next_frame(ch);
      if (f.header.type == frame_type(MessageType::exit)) {
        ch.flush();
        exit_child(0);
      }
      if (f.header.type != frame_type(MessageType::task)) exit_child(2);
      // Taken back by the parent (given to another worker): skip it, without a reply.
      if (claims && !claims->claim(f.header.generation)) continue;
      // Send the previous reply before running this task: if this one crashes the worker, the
      // results already computed must not die with it.
      ch.flush();
      const std::uint64_t id = f.header.id;
      // Descriptors that came with the request (shared arrays), closed with `held` once the task
      // is done (a shared array the task keeps has its own).
      codec::Buffer held;
      for (UniqueFd& fd : f.fds) held.attach(fd.release());
      codec::Buffer reply = remote::run_task(payload(f), std::numeric_limits<std::uint32_t>::max(),
                                             &held.descriptors());
      held = codec::Buffer();
      f = Frame();  // unmap a large request before replying
      ch.send(frame_type(MessageType::reply), id, std::move(reply));
      ++done;
      if (config.max_tasks_per_child != 0 && done >= config.max_tasks_per_child) {
        ch.flush();
        exit_child(0);
      }
    }
  } catch (...) {
    // The channel broke (the parent is gone), the config could not be read, or memory ran out:
    // nothing to report to.
    exit_child(4);
  }
}

}  // namespace concurrent::futures::detail::process
