// A framed message channel over one end of a unix stream socket: what travels between the parent,
// the fork server and a worker.
//
// A frame is a 16-byte header and a payload. A small payload follows the header in the stream; a
// large one (a memfd-backed codec::Buffer) stays in shared memory and its descriptor travels with
// the header as SCM_RIGHTS ancillary data, so it is never copied through the socket. A frame may
// also carry descriptors besides its payload: those its payload holds (cf::SharedArray values),
// and one more given to send() (the fork server receives workers' sockets so, a worker its claim
// word).
//
// The parent uses channels non-blocking from its event loop; workers and the fork server use
// them blocking. Every descriptor made here is O_CLOEXEC, and sends use MSG_NOSIGNAL: a dead peer
// is an error return, never a SIGPIPE.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "concurrent/futures/detail/codec.hpp"
#include "system.hpp"

namespace concurrent::futures::detail::process {

// Frames between the parent and the fork server. Frames between the parent and a worker carry
// the protocol's messages (remote::MessageType, values below 20).
enum class ServerFrame : std::uint8_t {
  spawn = 20,    // parent -> server; id: worker; carries the worker's socket
  spawned = 21,  // server -> parent; id: worker; payload: pid (int64, -1 if fork failed)
  exited = 22,   // server -> parent; id: pid; payload: wait status (int)
};

// The largest payload a frame carries inline: a larger one travels in shared memory (a
// codec::Buffer moves to a memfd past kSharedThreshold). A header announcing more is corrupt, and
// refused before anything is buffered for it.
inline constexpr std::size_t kMaxInlinePayload = codec::kSharedThreshold;
// Descriptors received and not yet claimed by a frame: a frame brings at most its shared payload's
// and codec::kMaxDescriptors more, and each receive brings those of one frame at most, so more
// than two frames' worth is a corrupt stream.
inline constexpr std::size_t kMaxPendingFds = 2 * (codec::kMaxDescriptors + 1);

struct FrameHeader {
  std::uint32_t size;       // payload bytes (inline or in shared memory)
  std::uint8_t type;        // a remote::MessageType or a ServerFrame
  std::uint8_t shared;      // 1: the payload is in a memfd that travels with the header
  std::uint8_t fds;         // how many more descriptors travel with the header
  std::uint8_t generation;  // task frames: the worker's claim generation (see worker_loop.cpp)
  std::uint64_t id;
};
static_assert(sizeof(FrameHeader) == 16);

// A received frame. An inline payload points into the channel's receive buffer: it stays valid
// until the channel's next receive().
struct Frame {
  FrameHeader header{};
  codec::Buffer shared;  // the payload when header.shared
  const std::byte* inline_data = nullptr;
  std::vector<UniqueFd> fds;  // the descriptors besides a shared payload's, in the order sent

  const std::byte* data() const { return header.shared ? shared.data() : inline_data; }
  std::size_t size() const { return header.size; }
};

// The frame type of a protocol message or a fork-server frame.
template <class Type>
requires std::is_enum_v<Type> && std::is_same_v<std::underlying_type_t<Type>, std::uint8_t>
constexpr std::uint8_t frame_type(Type t) noexcept { return static_cast<std::uint8_t>(t); }

class Channel {
 public:
  explicit Channel(UniqueFd fd) : fd_(std::move(fd)) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel();

  int fd() const noexcept { return fd_.get(); }
  // Closes the socket now (the peer sees the end of the stream) and drops what was not sent, and
  // the received mappings kept for this channel.
  void close() noexcept;
  // From now on, the mappings of the shared payloads received here are kept for the next payload
  // in the same segment (codec::Buffer::map_shared) while this channel is open: the parent's end
  // of a worker's channel, whose peer reuses its segments for its replies.
  void keep_received_mappings() noexcept { keeps_mappings_ = true; }

  // Queues a frame. The payload is kept until sent; `extra_fd` is passed on after the payload's
  // descriptors and closed here once sent.
  void send(std::uint8_t type, std::uint64_t id, codec::Buffer payload, int extra_fd = -1);
  void send(std::uint8_t type, std::uint64_t id, const void* data = nullptr, std::size_t size = 0);
  // Queues a frame whose payload the caller keeps (its descriptors are duplicated).
  void send_copy(std::uint8_t type, std::uint64_t id, const codec::Buffer& payload,
                 std::uint8_t generation = 0);

  // Writes what is queued. Returns true when everything is written, false if the socket is full
  // (non-blocking). Throws std::system_error when the peer is gone.
  bool flush();
  bool has_output() const noexcept { return !out_.empty(); }

  enum class Received { data, nothing, closed };
  // Reads what is available (a blocking socket waits for something). `nothing`: a non-blocking
  // socket had nothing to read; `closed`: end of stream.
  Received receive();
  // The next complete frame, if one has been received (see Frame for how long it is valid).
  // Throws std::runtime_error for a stream that cannot be followed (a header with flags other than
  // 0 or 1, an inline payload over kMaxInlinePayload, a descriptor that did not arrive, a shared
  // payload larger than its memfd); receive() for too many descriptors without frames.
  std::optional<Frame> next();

 private:
  void send_inline(const FrameHeader& h, const void* data);
  struct Segment {
    Segment() = default;
    Segment(Segment&&) noexcept = default;
    Segment& operator=(Segment&& other) noexcept {
      if (this != &other) {
        for (int fd : fds) ::close(fd);
        bytes = std::move(other.bytes);
        sent = other.sent;
        fds = std::exchange(other.fds, {});
        keep = std::move(other.keep);
      }
      return *this;
    }
    ~Segment() {
      for (int fd : fds) ::close(fd);
    }
    std::vector<std::byte> bytes;
    std::size_t sent = 0;
    std::vector<int> fds;  // sent with the first byte, then closed
    codec::Buffer keep;    // a shared payload, kept until sent
  };
  // The segment for a frame whose descriptors are those of `payload` (duplicated) and `extra_fd`
  // (taken).
  Segment segment_for(std::uint8_t type, std::uint64_t id, const codec::Buffer& payload,
                      int extra_fd, std::uint8_t generation);

  UniqueFd fd_;
  std::deque<Segment> out_;
  // Received bytes are in_[in_pos_, in_end_); the vector only grows, so a receive does not clear
  // the space it reads into (resize's zero-fill) each time.
  std::vector<std::byte> in_;
  std::size_t in_pos_ = 0;
  std::size_t in_end_ = 0;
  std::deque<UniqueFd> in_fds_;  // received, not yet claimed by a frame
  bool keeps_mappings_ = false;  // see keep_received_mappings
};

// A socketpair (O_CLOEXEC both ends).
std::pair<UniqueFd, UniqueFd> make_socket_pair();
void set_nonblocking(int fd);

}  // namespace concurrent::futures::detail::process
