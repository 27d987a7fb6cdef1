#include "process/channel.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "system.hpp"

namespace concurrent::futures::detail::process {

namespace {
// A frame's descriptors: its payload's memfd, those its values hold, one more.
constexpr std::size_t kMaxFrameFds = codec::kMaxDescriptors + 2;

// resize + memcpy rather than vector::insert, on which GCC 12 gives false -Warray-bounds errors.
void append(std::vector<std::byte>& to, const void* data, std::size_t n) {
  if (n == 0) return;
  const std::size_t old = to.size();
  to.resize(old + n);
  std::memcpy(to.data() + old, data, n);
}
}  // namespace

std::pair<UniqueFd, UniqueFd> make_socket_pair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw_errno("socketpair");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throw_errno("fcntl O_NONBLOCK");
}

Channel::~Channel() { close(); }

void Channel::close() noexcept {
  out_.clear();
  in_fds_.clear();
  fd_.reset();
  if (keeps_mappings_) codec::forget_received_mappings(this);
}

namespace {

FrameHeader make_header(std::uint8_t type, std::uint64_t id, std::size_t size, bool shared,
                        std::size_t fds, std::uint8_t generation = 0) {
  FrameHeader h{};
  h.generation = generation;
  h.size = static_cast<std::uint32_t>(size);
  h.type = type;
  h.shared = shared ? 1 : 0;
  h.fds = static_cast<std::uint8_t>(fds);
  h.id = id;
  return h;
}

}  // namespace

Channel::Segment Channel::segment_for(std::uint8_t type, std::uint64_t id,
                                      const codec::Buffer& payload, int extra_fd,
                                      std::uint8_t generation) {
  Segment s;
  try {
    s.fds.reserve(2 + payload.descriptors().size());  // no push_back below can throw
    // The payload's memfd first (the receiver maps it), then what its values hold, then the extra
    // one.
    if (payload.shared()) s.fds.push_back(payload.share());
    for (int fd : payload.descriptors()) {
      const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (copy < 0) throw_errno("dup of a descriptor to send");
      s.fds.push_back(copy);
    }
  } catch (...) {
    if (extra_fd >= 0) ::close(extra_fd);
    throw;
  }
  if (extra_fd >= 0) s.fds.push_back(extra_fd);
  const std::size_t others = s.fds.size() - (payload.shared() ? 1 : 0);
  const FrameHeader h = make_header(type, id, payload.size(), payload.shared(), others, generation);
  append(s.bytes, &h, sizeof h);
  if (!payload.shared()) append(s.bytes, payload.data(), payload.size());
  return s;
}

void Channel::send(std::uint8_t type, std::uint64_t id, codec::Buffer payload, int extra_fd) {
  if (!payload.shared() && payload.descriptors().empty() && extra_fd < 0) {
    send(type, id, payload.data(), payload.size());
    return;
  }
  Segment s = segment_for(type, id, payload, extra_fd, 0);
  if (payload.shared()) s.keep = std::move(payload);  // the sender's segment, until sent
  out_.push_back(std::move(s));
}

void Channel::send(std::uint8_t type, std::uint64_t id, const void* data, std::size_t size) {
  send_inline(make_header(type, id, size, false, 0), data);
}

void Channel::send_inline(const FrameHeader& h, const void* data) {
  // Small frames join the last segment (if it carries no descriptor) so they go out together.
  if (out_.empty() || !out_.back().fds.empty()) out_.emplace_back();
  std::vector<std::byte>& bytes = out_.back().bytes;
  append(bytes, &h, sizeof h);
  append(bytes, data, h.size);
}

void Channel::send_copy(std::uint8_t type, std::uint64_t id, const codec::Buffer& payload,
                        std::uint8_t generation) {
  if (!payload.shared() && payload.descriptors().empty()) {
    send_inline(make_header(type, id, payload.size(), false, 0, generation), payload.data());
    return;
  }
  out_.push_back(segment_for(type, id, payload, -1, generation));
}

bool Channel::flush() {
  while (!out_.empty()) {
    Segment& s = out_.front();
    msghdr msg{};
    iovec iov{};
    iov.iov_base = s.bytes.data() + s.sent;
    iov.iov_len = s.bytes.size() - s.sent;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFrameFds)];
    const auto nfds = static_cast<unsigned>(s.fds.size());
    if (nfds > 0 && s.sent == 0) {
      // The descriptors ride on the header's first byte.
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      std::memcpy(CMSG_DATA(c), s.fds.data(), sizeof(int) * nfds);
    }
    const ssize_t n = sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      throw_errno("send to a worker process");
    }
    if (nfds > 0 && s.sent == 0) {
      // Passed on: the peer has its own copies now. A shared payload stays the sender's (its
      // segment goes back to the pool when `keep` is dropped).
      for (int fd : s.fds) ::close(fd);
      s.fds.clear();
    }
    s.sent += static_cast<std::size_t>(n);
    if (s.sent == s.bytes.size()) out_.pop_front();
  }
  return true;
}

Channel::Received Channel::receive() {
  if (in_pos_ > 0 && in_pos_ * 2 >= in_end_) {
    std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
    in_end_ -= in_pos_;
    in_pos_ = 0;
  }
  const std::size_t chunk = 64 * 1024;
  if (in_.size() - in_end_ < chunk) in_.resize(in_end_ + chunk);
  msghdr msg{};
  iovec iov{};
  iov.iov_base = in_.data() + in_end_;
  iov.iov_len = in_.size() - in_end_;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // One sendmsg's descriptors arrive whole with one recvmsg (the kernel does not join two messages
  // that carry descriptors).
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFrameFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Received::nothing;
    if (errno == ECONNRESET) return Received::closed;
    throw_errno("receive from a process");
  }
  in_end_ += static_cast<std::size_t>(n);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        in_fds_.emplace_back(fd);
      }
    }
  }
  if (in_fds_.size() > kMaxPendingFds) {
    throw std::runtime_error("corrupt channel: descriptors arrived without their frames");
  }
  return n > 0 ? Received::data : Received::closed;
}

std::optional<Frame> Channel::next() {
  const std::size_t available = in_end_ - in_pos_;
  if (available < sizeof(FrameHeader)) return std::nullopt;
  FrameHeader h;
  std::memcpy(&h, in_.data() + in_pos_, sizeof h);
  // Checked as soon as the header is here: an oversized length must not make this channel
  // buffer gigabytes while it waits for them.
  if (h.shared > 1 || h.fds > codec::kMaxDescriptors) {
    throw std::runtime_error("corrupt channel: bad frame flags");
  }
  if (!h.shared && h.size > kMaxInlinePayload) {
    throw std::runtime_error("corrupt channel: a frame announces " + std::to_string(h.size) +
                             " inline bytes, more than the " + std::to_string(kMaxInlinePayload) +
                             " an inline frame holds");
  }
  const std::size_t inline_size = h.shared ? 0 : h.size;
  if (available < sizeof h + inline_size) return std::nullopt;
  const std::size_t fds_needed = static_cast<std::size_t>(h.shared) + h.fds;
  if (in_fds_.size() < fds_needed) {
    throw std::runtime_error("corrupt channel: a frame's descriptor did not arrive");
  }
  Frame f;
  f.header = h;
  f.inline_data = in_.data() + in_pos_ + sizeof h;
  in_pos_ += sizeof h + inline_size;
  if (h.shared) {
    // Mapping more than the memfd holds would turn a read past its end into SIGBUS.
    struct stat st {};
    if (fstat(in_fds_.front().get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_size) < codec::kSegmentControlBytes + h.size) {
      in_fds_.pop_front();
      throw std::runtime_error("corrupt channel: a shared payload of " + std::to_string(h.size) +
                               " bytes came in a descriptor that does not hold them");
    }
    const int fd = in_fds_.front().release();  // owned by the mapping from here on
    in_fds_.pop_front();
    f.shared = codec::Buffer::map_shared(fd, h.size, keeps_mappings_ ? this : nullptr);
  }
  for (std::size_t i = 0; i < h.fds; ++i) {
    f.fds.push_back(std::move(in_fds_.front()));
    in_fds_.pop_front();
  }
  return f;
}

}  // namespace concurrent::futures::detail::process
