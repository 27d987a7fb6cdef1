// The framing of a process pool's channels (src/process/channel.hpp): what the parent reads from a
// worker's socket, and a worker or the fork server from the parent's. The input is a few control
// bytes, then the bytes a peer writes to the socket:
//   byte 0: how many descriptors ride on the first byte (0-2), as SCM_RIGHTS does;
//   then for each, two bytes: the size of a memfd made for it (filled with a pattern);
//   the rest: the stream, header and payload bytes as they come.
// The peer's end is then closed. The channel must deliver frames whose every payload byte can be
// read (a shared payload larger than its memfd would be SIGBUS), refuse the rest with
// std::runtime_error or std::system_error, and never buffer more than a frame may hold
// (-malloc_limit_mb).
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "fuzz_support.hpp"
#include "process/channel.hpp"
#include "system.hpp"

namespace {

namespace process = cf::detail::process;
using cf::detail::UniqueFd;

UniqueFd make_memfd(std::size_t size) {
  UniqueFd fd(memfd_create("fuzz-frame", MFD_CLOEXEC));
  if (!fd) fuzz::fail("memfd_create failed");
  std::vector<std::byte> pattern(size, std::byte{0x5a});
  if (size > 0 && write(fd.get(), pattern.data(), size) != static_cast<ssize_t>(size)) {
    fuzz::fail("write to a memfd failed");
  }
  return fd;
}

// Writes the stream into `to`, the descriptors with its first byte; as much as the socket takes.
void write_stream(int to, const std::uint8_t* data, std::size_t size, const std::vector<int>& fds) {
  std::size_t sent = 0;
  bool fds_sent = fds.empty();
  while (sent < size || !fds_sent) {
    char dummy = 0;
    iovec iov{};
    iov.iov_base = sent < size ? static_cast<void*>(const_cast<std::uint8_t*>(data + sent))
                               : static_cast<void*>(&dummy);
    iov.iov_len = sent < size ? size - sent : 1;
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)];
    if (!fds_sent) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t n = sendmsg(to, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) return;  // full: the channel reads what got through
    fds_sent = true;
    if (sent < size) sent += static_cast<std::size_t>(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t fd_count = data[0] % 3;
  std::size_t at = 1;
  std::vector<UniqueFd> memfds;
  std::vector<int> fds;
  for (std::size_t i = 0; i < fd_count && at + 2 <= size; ++i, at += 2) {
    std::uint16_t memfd_size = 0;
    std::memcpy(&memfd_size, data + at, sizeof memfd_size);
    memfds.push_back(make_memfd(memfd_size));
    fds.push_back(memfds.back().get());
  }
  auto [reader_end, writer_end] = process::make_socket_pair();
  process::set_nonblocking(reader_end.get());
  write_stream(writer_end.get(), data + at, size - at, fds);
  memfds.clear();      // the channel holds its own copies now
  writer_end.reset();  // end of stream after what was written

  process::Channel channel(std::move(reader_end));
  std::uint64_t sum = 0;
  try {
    for (;;) {
      const process::Channel::Received got = channel.receive();
      while (std::optional<process::Frame> f = channel.next()) {
        if (f->size() > 0 && f->data() == nullptr) fuzz::fail("a frame without its payload");
        const auto* p = reinterpret_cast<const std::uint8_t*>(f->data());
        for (std::size_t i = 0; i < f->size(); ++i) sum += p[i];
        for (const UniqueFd& fd : f->fds) sum += static_cast<std::uint64_t>(fd.get() >= 0);
      }
      if (got != process::Channel::Received::data) break;
    }
  } catch (const std::system_error&) {
  } catch (const std::runtime_error&) {
  } catch (const std::exception& e) {
    fuzz::fail(std::string("the channel threw an unexpected exception: ") + e.what());
  }
  return sum == 0xFFFFFFFFFFFFFFFFu ? 1 : 0;  // keeps the reads
}
