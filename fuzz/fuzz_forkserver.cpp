// The fork server's messages (src/process/forkserver.hpp): the reports the parent reads from the
// server (spawned: a worker's pid; exited: a pid and its wait status), from a stream of frames as
// channel.hpp frames them (the server's side reads spawn frames through the same Channel, and
// ignores any frame that brings no socket; fuzz_frame covers the descriptors). A report the
// parent cannot read is refused with std::runtime_error (the parent then treats the server as
// gone); one it accepts names a plausible pid.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "fuzz_support.hpp"
#include "process/channel.hpp"
#include "process/forkserver.hpp"
#include "system.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace process = cf::detail::process;
  auto [reader_end, writer_end] = process::make_socket_pair();
  process::set_nonblocking(reader_end.get());
  if (size > 0) {
    const ssize_t n = send(writer_end.get(), data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;  // a full socket: the server reads what got through
  }
  writer_end.reset();
  process::Channel channel(std::move(reader_end));
  try {
    for (;;) {
      const process::Channel::Received got = channel.receive();
      while (std::optional<process::Frame> f = channel.next()) {
        try {
          if (const auto event = process::server_event(*f)) {
            using Kind = process::ForkServer::Event::Kind;
            if (event->kind == Kind::spawned && event->pid == 0) fuzz::fail("spawned pid 0");
            if (event->kind == Kind::exited && event->pid <= 0) fuzz::fail("exited pid <= 0");
          }
        } catch (const std::runtime_error&) {
        }
      }
      if (got != process::Channel::Received::data) break;
    }
  } catch (const std::system_error&) {
  } catch (const std::runtime_error&) {
  }
  return 0;
}
