// The framing of the process pool's channels (src/process/channel.hpp/.cpp) over a socketpair in
// one process: frames arrive whole and in order, large payloads travel as memfds, descriptors
// pass through, and a channel reports nothing to read, a closed peer and corrupt input as
// documented, without leaking a descriptor.
//
// Both ends are in this thread, so the tests use non-blocking ends and pump: flush one end,
// receive at the other, wait in poll() when neither can go on. Every wait is bounded.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures/detail/codec.hpp>

#include "process/channel.hpp"
#include "remote/protocol.hpp"
#include "system.hpp"

namespace {

namespace codec = concurrent::futures::detail::codec;
using concurrent::futures::detail::UniqueFd;
using concurrent::futures::detail::process::Channel;
using concurrent::futures::detail::process::Frame;
using concurrent::futures::detail::process::frame_type;
using concurrent::futures::detail::process::FrameHeader;
using concurrent::futures::detail::process::kMaxInlinePayload;
using concurrent::futures::detail::process::kMaxPendingFds;
using concurrent::futures::detail::process::make_socket_pair;
using concurrent::futures::detail::process::ServerFrame;
using concurrent::futures::detail::process::set_nonblocking;
using concurrent::futures::detail::remote::MessageType;
using Clock = std::chrono::steady_clock;

// The frame types the tests send: protocol messages, and the fork server's frame that carries a
// descriptor.
constexpr std::uint8_t kTask = frame_type(MessageType::task);
constexpr std::uint8_t kReply = frame_type(MessageType::reply);
constexpr std::uint8_t kHello = frame_type(MessageType::hello);
constexpr std::uint8_t kReady = frame_type(MessageType::ready);
constexpr std::uint8_t kExit = frame_type(MessageType::exit);
constexpr std::uint8_t kSpawn = frame_type(ServerFrame::spawn);

constexpr auto kDeadlock = std::chrono::seconds(30);

// A frame copied out of the channel (an inline payload is only valid until the next receive).
struct Arrived {
  FrameHeader header{};
  std::vector<std::byte> payload;
  bool shared = false;  // the payload was a mapped memfd
  int fd = -1;          // the extra descriptor, now the test's to close
};

Arrived copy_out(Frame& f) {
  Arrived r;
  r.header = f.header;
  r.payload.assign(f.data(), f.data() + f.size());
  r.shared = f.shared.shared();
  r.fd = f.fds.empty() ? -1 : f.fds.front().release();
  return r;
}

// Two connected channels, both non-blocking.
struct ChannelPair {
  ChannelPair() : ChannelPair(make_socket_pair()) {}
  Channel left;
  Channel right;

 private:
  explicit ChannelPair(std::pair<UniqueFd, UniqueFd> fds)
      : left(std::move(fds.first)), right(std::move(fds.second)) {
    set_nonblocking(left.fd());
    set_nonblocking(right.fd());
  }
};

// Flushes `from` and receives at `to` until `count` frames have arrived (fewer if the deadline
// passes or the stream ends first).
std::vector<Arrived> pump(Channel& from, Channel& to, std::size_t count) {
  std::vector<Arrived> got;
  const auto give_up = Clock::now() + kDeadlock;
  while (got.size() < count && Clock::now() < give_up) {
    from.flush();
    const Channel::Received r = to.receive();
    while (std::optional<Frame> f = to.next()) got.push_back(copy_out(*f));
    if (r == Channel::Received::closed) break;
    if (r == Channel::Received::nothing) {
      pollfd fds[2] = {{to.fd(), POLLIN, 0}, {from.fd(), POLLOUT, 0}};
      poll(fds, from.has_output() ? 2 : 1, 10);
    }
  }
  return got;
}

// Receives at `to` until one frame has arrived (nullopt if the stream ends or the deadline passes
// first). Exceptions from next() come out of here.
std::optional<Frame> receive_one(Channel& to) {
  const auto give_up = Clock::now() + kDeadlock;
  while (Clock::now() < give_up) {
    if (std::optional<Frame> f = to.next()) return f;
    const Channel::Received r = to.receive();
    if (r == Channel::Received::closed) break;
    if (r == Channel::Received::nothing) {
      pollfd p{to.fd(), POLLIN, 0};
      poll(&p, 1, 10);
    }
  }
  return std::nullopt;
}

std::vector<std::byte> pattern(std::size_t n, std::size_t seed) {
  std::vector<std::byte> bytes(n);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::byte>((i * 131 + seed * 7) >> 2);
  return bytes;
}

codec::Buffer buffer_of(const std::vector<std::byte>& bytes) {
  codec::Buffer b;
  b.append(bytes.data(), bytes.size());
  return b;
}

std::size_t open_descriptor_count() {
  std::size_t n = 0;
  for (int fd = 0; fd < 4096; ++fd) n += fcntl(fd, F_GETFD) != -1 ? 1 : 0;
  return n;
}

void write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    ASSERT_GT(w, 0) << std::strerror(errno);
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

FrameHeader header(std::uint8_t type, std::uint32_t size, std::uint64_t id) {
  FrameHeader h{};
  h.size = size;
  h.type = type;
  h.id = id;
  return h;
}

// --- frames ---------------------------------------------------------------------------------

TEST(ChannelTest, FramesOfSeveralSizesArriveWholeAndInOrder) {
  ChannelPair pair;
  // Around the header's size, the receive chunk (64 KiB) and up to just below the memfd threshold.
  const std::vector<std::size_t> sizes{
      0, 1, 15, 16, 17, 4096, 65535, 65536, 65537, 200000, 1, 0, codec::kSharedThreshold - 1};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::vector<std::byte> bytes = pattern(sizes[i], i);
    pair.left.send(i % 2 == 0 ? kTask : kReply, 1000 + i, bytes.data(), bytes.size());
  }
  const std::vector<Arrived> got = pump(pair.left, pair.right, sizes.size());
  ASSERT_EQ(got.size(), sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i) + " of " + std::to_string(sizes[i]) + " bytes");
    EXPECT_EQ(got[i].header.id, 1000 + i);
    EXPECT_EQ(got[i].header.type, i % 2 == 0 ? kTask : kReply);
    EXPECT_EQ(got[i].header.size, sizes[i]);
    EXPECT_EQ(got[i].header.shared, 0);
    EXPECT_FALSE(got[i].shared);
    EXPECT_TRUE(got[i].payload == pattern(sizes[i], i));
    EXPECT_EQ(got[i].fd, -1);
  }
  EXPECT_FALSE(pair.left.has_output());
}

TEST(ChannelTest, ManySmallFramesAllArriveInOrder) {
  ChannelPair pair;
  constexpr std::uint64_t kFrames = 1000;
  for (std::uint64_t i = 0; i < kFrames; ++i) {
    const std::uint64_t value = i * i;
    pair.left.send(kReply, i, &value, sizeof value);
  }
  // Queued together, they leave together: 24 KB fit in the socket at once.
  EXPECT_TRUE(pair.left.flush());
  EXPECT_FALSE(pair.left.has_output());
  const std::vector<Arrived> got = pump(pair.left, pair.right, kFrames);
  ASSERT_EQ(got.size(), kFrames);
  for (std::uint64_t i = 0; i < kFrames; ++i) {
    ASSERT_EQ(got[i].header.id, i);
    ASSERT_EQ(got[i].payload.size(), sizeof(std::uint64_t));
    std::uint64_t value = 0;
    std::memcpy(&value, got[i].payload.data(), sizeof value);
    ASSERT_EQ(value, i * i) << "frame " << i;
  }
}

TEST(ChannelTest, PayloadAboveTheSharedThresholdTravelsAsAMemfdAndArrivesIntact) {
  ChannelPair pair;
  const std::vector<std::byte> bytes = pattern(codec::kSharedThreshold * 4 + 3, 9);
  codec::Buffer payload = buffer_of(bytes);
  ASSERT_TRUE(payload.shared());
  pair.left.send(kReply, 77, std::move(payload));
  // Small frames on either side stay in order with it.
  pair.left.send(kTask, 76, "before?", 7);
  const std::vector<Arrived> got = pump(pair.left, pair.right, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].header.id, 77u);
  EXPECT_EQ(got[0].header.shared, 1);
  EXPECT_TRUE(got[0].shared);
  EXPECT_EQ(got[0].header.size, bytes.size());
  EXPECT_TRUE(got[0].payload == bytes);
  EXPECT_EQ(got[1].header.id, 76u);
  EXPECT_EQ(got[1].header.shared, 0);
}

TEST(ChannelTest, SendCopyLeavesTheSenderItsPayload) {
  ChannelPair pair;
  const std::vector<std::byte> big = pattern(codec::kSharedThreshold + 100, 3);
  const codec::Buffer shared = buffer_of(big);
  const codec::Buffer small = buffer_of(pattern(100, 4));
  ASSERT_TRUE(shared.shared());
  pair.left.send_copy(kTask, 1, shared);
  pair.left.send_copy(kTask, 2, small);
  pair.left.send_copy(kTask, 3, shared);  // the same payload twice
  const std::vector<Arrived> got = pump(pair.left, pair.right, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].shared);
  EXPECT_TRUE(got[0].payload == big);
  EXPECT_FALSE(got[1].shared);
  EXPECT_TRUE(got[1].payload == pattern(100, 4));
  EXPECT_TRUE(got[2].shared);
  EXPECT_TRUE(got[2].payload == big);
  // The sender's buffer is untouched and still owns its memfd.
  EXPECT_NE(fcntl(shared.fd(), F_GETFD), -1);
  ASSERT_EQ(shared.size(), big.size());
  EXPECT_EQ(std::memcmp(shared.data(), big.data(), big.size()), 0);
}

TEST(ChannelTest, ExtraDescriptorArrivesAsAWorkingDescriptor) {
  ChannelPair pair;
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]);
  // The channel takes the descriptor it sends (and closes its copy once sent).
  pair.left.send(kSpawn, 5, codec::Buffer(), pipe_fds[1]);
  // A shared payload and a descriptor in one frame: both arrive, each in its place.
  int other_pipe[2];
  ASSERT_EQ(pipe2(other_pipe, O_CLOEXEC), 0);
  UniqueFd other_read_end(other_pipe[0]);
  const std::vector<std::byte> big = pattern(codec::kSharedThreshold + 1, 5);
  pair.left.send(kSpawn, 6, buffer_of(big), other_pipe[1]);

  std::vector<Arrived> got = pump(pair.left, pair.right, 2);
  ASSERT_EQ(got.size(), 2u);
  UniqueFd passed(got[0].fd);
  UniqueFd passed_with_payload(got[1].fd);
  EXPECT_EQ(got[0].header.fds, 1);
  EXPECT_EQ(got[0].header.id, 5u);
  ASSERT_GE(passed.get(), 0);
  EXPECT_NE(fcntl(passed.get(), F_GETFD) & FD_CLOEXEC, 0);  // received close-on-exec
  EXPECT_EQ(got[1].header.fds, 1);
  EXPECT_EQ(got[1].header.shared, 1);
  EXPECT_TRUE(got[1].payload == big);
  ASSERT_GE(passed_with_payload.get(), 0);

  // Each received descriptor is the write end of its pipe.
  write_all(passed.get(), "ping", 4);
  char buf[8] = {};
  ASSERT_EQ(read(read_end.get(), buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
  write_all(passed_with_payload.get(), "pong", 4);
  ASSERT_EQ(read(other_read_end.get(), buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "pong");
}

// --- what receive reports -------------------------------------------------------------------

TEST(ChannelTest, NonBlockingChannelWithNothingToReadReturnsNothing) {
  ChannelPair pair;
  EXPECT_EQ(pair.right.receive(), Channel::Received::nothing);
  EXPECT_FALSE(pair.right.next().has_value());
  // Still usable afterwards.
  pair.left.send(kReady, 0);
  ASSERT_EQ(pump(pair.left, pair.right, 1).size(), 1u);
  EXPECT_EQ(pair.right.receive(), Channel::Received::nothing);
}

TEST(ChannelTest, PeerClosedIsReportedAsClosedAfterItsLastFrames) {
  auto fds = make_socket_pair();
  Channel receiver(std::move(fds.second));  // blocking: closed must end the wait, not hang it
  {
    Channel sender(std::move(fds.first));
    sender.send(kHello, 42);
    sender.send(kReply, 43, "last", 4);
    ASSERT_TRUE(sender.flush());
  }
  std::vector<std::uint64_t> ids;
  Channel::Received r = Channel::Received::data;
  for (int i = 0; i < 10 && r != Channel::Received::closed; ++i) {
    r = receiver.receive();
    while (std::optional<Frame> f = receiver.next()) ids.push_back(f->header.id);
  }
  EXPECT_EQ(r, Channel::Received::closed);
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{42, 43}));
  EXPECT_EQ(receiver.receive(), Channel::Received::closed);
}

TEST(ChannelTest, FlushToAClosedPeerThrowsInsteadOfRaisingSigpipe) {
  auto fds = make_socket_pair();
  Channel sender(std::move(fds.first));
  fds.second.reset();
  sender.send(kTask, 1, "x", 1);
  EXPECT_THROW(sender.flush(), std::system_error);
}

// --- corrupt and partial input --------------------------------------------------------------

TEST(ChannelTest, HeaderClaimingASharedPayloadWithoutADescriptorIsACorruptChannel) {
  for (const bool shared : {true, false}) {
    SCOPED_TRACE(shared ? "shared payload" : "extra descriptor");
    auto fds = make_socket_pair();
    UniqueFd raw = std::move(fds.first);
    Channel receiver(std::move(fds.second));
    FrameHeader h = header(kReply, shared ? 100 : 0, 1);
    h.shared = shared ? 1 : 0;
    h.fds = shared ? 0 : 1;
    write_all(raw.get(), &h, sizeof h);
    try {
      receive_one(receiver);
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("corrupt channel"), std::string::npos) << e.what();
    }
  }
}

// Writes `bytes` to `fd` with `fds` riding on them (SCM_RIGHTS), as a peer's sendmsg would.
void send_with_fds(int fd, const std::vector<std::byte>& bytes, const std::vector<int>& fds) {
  iovec iov{};
  iov.iov_base = const_cast<std::byte*>(bytes.data());
  iov.iov_len = bytes.size();
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  ASSERT_EQ(sendmsg(fd, &msg, MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()))
      << std::strerror(errno);
}

std::vector<std::byte> bytes_of(const FrameHeader& h) {
  std::vector<std::byte> bytes(sizeof h);
  std::memcpy(bytes.data(), &h, sizeof h);
  return bytes;
}

void expect_corrupt_channel(Channel& receiver) {
  try {
    receive_one(receiver);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt channel"), std::string::npos) << e.what();
  }
}

TEST(ChannelTest, OversizedInlineFrameIsRefusedAsSoonAsItsHeaderArrives) {
  // A header announcing gigabytes inline: the receiver must not buffer what follows while it
  // waits for them (an inline payload is never larger than kMaxInlinePayload).
  for (const std::uint32_t size : {std::uint32_t{0xffffffff}, std::uint32_t{1} << 30,
                                   static_cast<std::uint32_t>(kMaxInlinePayload + 1)}) {
    SCOPED_TRACE("size " + std::to_string(size));
    auto fds = make_socket_pair();
    UniqueFd raw = std::move(fds.first);
    Channel receiver(std::move(fds.second));
    set_nonblocking(receiver.fd());
    const FrameHeader h = header(kReply, size, 1);
    write_all(raw.get(), &h, sizeof h);
    write_all(raw.get(), pattern(4096, 1).data(), 4096);
    expect_corrupt_channel(receiver);
  }
  // The largest inline payload still arrives.
  ChannelPair pair;
  const std::vector<std::byte> largest = pattern(kMaxInlinePayload, 2);
  pair.left.send(kReply, 2, largest.data(), largest.size());
  const std::vector<Arrived> got = pump(pair.left, pair.right, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].payload == largest);
}

TEST(ChannelTest, SharedPayloadLargerThanItsMemfdIsACorruptChannelNotABusError) {
  // Mapping 1 MiB of a 4 KiB memfd succeeds, and reading past its end is SIGBUS: the receiver
  // must check the descriptor's size first. A descriptor that is no file at all, likewise.
  for (const bool memfd : {true, false}) {
    SCOPED_TRACE(memfd ? "a small memfd" : "a pipe");
    auto fds = make_socket_pair();
    UniqueFd raw = std::move(fds.first);
    Channel receiver(std::move(fds.second));
    int pipe_fds[2] = {-1, -1};
    UniqueFd payload_fd;
    UniqueFd pipe_write;
    if (memfd) {
      payload_fd.reset(memfd_create("small", MFD_CLOEXEC));
      ASSERT_TRUE(payload_fd);
      ASSERT_EQ(ftruncate(payload_fd.get(), 4096), 0);
    } else {
      ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
      payload_fd.reset(pipe_fds[0]);
      pipe_write.reset(pipe_fds[1]);
    }
    FrameHeader h = header(kReply, 1 << 20, 1);
    h.shared = 1;
    send_with_fds(raw.get(), bytes_of(h), {payload_fd.get()});
    expect_corrupt_channel(receiver);
  }
}

TEST(ChannelTest, FrameFlagsOtherThanZeroOrOneAreACorruptChannel) {
  auto fds = make_socket_pair();
  UniqueFd raw = std::move(fds.first);
  Channel receiver(std::move(fds.second));
  FrameHeader h = header(kReply, 0, 1);
  h.fds = static_cast<std::uint8_t>(codec::kMaxDescriptors + 1);
  write_all(raw.get(), &h, sizeof h);
  expect_corrupt_channel(receiver);
}

TEST(ChannelTest, DescriptorsWithoutFramesAreACorruptChannel) {
  // Each byte brings descriptors no frame claims: the receiver must not collect them until it
  // runs out.
  auto fds = make_socket_pair();
  UniqueFd raw = std::move(fds.first);
  Channel receiver(std::move(fds.second));
  set_nonblocking(receiver.fd());
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd a(pipe_fds[0]);
  UniqueFd b(pipe_fds[1]);
  bool refused = false;
  for (std::size_t i = 0; i < kMaxPendingFds && !refused; ++i) {
    send_with_fds(raw.get(), {std::byte{0}}, {a.get(), b.get()});
    try {
      while (receiver.receive() == Channel::Received::data) {
      }
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("corrupt channel"), std::string::npos) << e.what();
      refused = true;
    }
  }
  EXPECT_TRUE(refused);
}

TEST(ChannelTest, TruncatedFrameIsNotReturnedUntilComplete) {
  auto fds = make_socket_pair();
  UniqueFd raw = std::move(fds.first);
  Channel receiver(std::move(fds.second));
  set_nonblocking(receiver.fd());
  const std::vector<std::byte> payload = pattern(1000, 1);
  const FrameHeader h = header(kReply, static_cast<std::uint32_t>(payload.size()), 8);
  std::vector<std::byte> frame(sizeof h);
  std::memcpy(frame.data(), &h, sizeof h);
  frame.insert(frame.end(), payload.begin(), payload.end());

  // Part of the header, then the rest of it with part of the payload: no frame yet.
  std::size_t sent = 0;
  for (const std::size_t upto : {std::size_t{10}, sizeof h + 300}) {
    write_all(raw.get(), frame.data() + sent, upto - sent);
    sent = upto;
    EXPECT_EQ(receiver.receive(), Channel::Received::data);
    EXPECT_FALSE(receiver.next().has_value()) << upto << " bytes of " << frame.size();
  }
  write_all(raw.get(), frame.data() + sizeof h + 300, frame.size() - sizeof h - 300);
  std::optional<Frame> f = receive_one(receiver);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->header.id, 8u);
  ASSERT_EQ(f->size(), payload.size());
  EXPECT_EQ(std::memcmp(f->data(), payload.data(), payload.size()), 0);
  EXPECT_FALSE(receiver.next().has_value());
}

// --- descriptors ----------------------------------------------------------------------------

TEST(ChannelTest, NoDescriptorLeaks) {
  codec::release_idle_segments();
  const std::size_t before = open_descriptor_count();
  {
    ChannelPair pair;
    const codec::Buffer kept = buffer_of(pattern(codec::kSharedThreshold + 1, 1));
    for (int round = 0; round < 3; ++round) {
      pair.left.send(kReply, 1, buffer_of(pattern(codec::kSharedThreshold * 2, 2)));
      pair.left.send_copy(kTask, 2, kept);
      int p[2];
      ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
      close(p[0]);
      pair.left.send(kSpawn, 3, codec::Buffer(), p[1]);
      pair.left.send(kExit, 4);
      const std::vector<Arrived> got = pump(pair.left, pair.right, 4);
      ASSERT_EQ(got.size(), 4u);
      for (const Arrived& r : got) {
        if (r.fd >= 0) close(r.fd);  // an extra descriptor is the receiver's to close
      }
    }
    // Descriptors received but not yet taken by next(), and frames queued but never sent, go
    // with the channels.
    pair.left.send(kReply, 5, buffer_of(pattern(codec::kSharedThreshold * 2, 3)));
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);
    pair.left.send(kSpawn, 6, codec::Buffer(), p[1]);
    ASSERT_TRUE(pair.left.flush());
    pollfd readable{pair.right.fd(), POLLIN, 0};
    ASSERT_EQ(poll(&readable, 1, 10'000), 1);
    EXPECT_EQ(pair.right.receive(), Channel::Received::data);
    pair.left.send(kReply, 7, buffer_of(pattern(codec::kSharedThreshold * 2, 4)));
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);
    pair.left.send(kSpawn, 8, codec::Buffer(), p[1]);
  }
  // A sender keeps its segments for later payloads (see codec.hpp) until told to let them go.
  codec::release_idle_segments();
  EXPECT_EQ(open_descriptor_count(), before);
}

}  // namespace
