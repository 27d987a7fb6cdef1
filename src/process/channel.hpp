// A framed message channel over one end of a unix stream socket: what travels between the parent,
// the fork server and a worker.
//
// A frame is a 16-byte header and a payload. A small payload follows the header in the stream; a
// large one (a memfd-backed codec::Buffer) stays in shared memory and its descriptor travels with
// the header as SCM_RIGHTS ancillary data, so it is never copied through the socket. A frame may
// also carry one descriptor besides its payload (the fork server receives workers' sockets so).
//
// The parent uses channels non-blocking from its event loop; workers and the fork server use
// them blocking. Every descriptor made here is O_CLOEXEC, and sends use MSG_NOSIGNAL: a dead peer
// is an error return, never a SIGPIPE.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "concurrent/futures/detail/codec.hpp"

namespace concurrent::futures::detail::process {

enum class FrameType : std::uint8_t {
  // parent -> worker
  config = 1,  // payload: WorkerConfig
  task = 2,    // id: task id; payload: entry key (u64) then the request
  exit = 3,    // finish and exit
  // worker -> parent
  hello = 10,        // the worker is up (sent before the initializer runs)
  init_failed = 11,  // payload: the initializer's exception
  ready = 13,        // the initializer is done: tasks start running from now on
  reply = 12,        // id: task id; payload: ReplyStatus then value or exception
  // parent <-> fork server
  spawn = 20,    // id: worker slot; carries the worker's socket
  spawned = 21,  // id: worker slot; payload: pid
  exited = 22,   // id: pid; payload: wait status
};

struct FrameHeader {
  std::uint32_t size;  // payload bytes (inline or in shared memory)
  FrameType type;
  std::uint8_t shared;  // 1: the payload is in a memfd that travels with the header
  std::uint8_t has_fd;  // 1: one more descriptor travels with the header
  std::uint8_t reserved;
  std::uint64_t id;
};
static_assert(sizeof(FrameHeader) == 16);

// A received frame. An inline payload points into the channel's receive buffer: it stays valid
// until the channel's next receive().
struct Frame {
  FrameHeader header{};
  codec::Buffer shared;  // the payload when header.shared
  const std::byte* inline_data = nullptr;
  int fd = -1;  // the extra descriptor (owned by the receiver)

  const std::byte* data() const { return header.shared ? shared.data() : inline_data; }
  std::size_t size() const { return header.size; }
};

class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel();

  int fd() const noexcept { return fd_; }

  // Queues a frame. A shared payload's memfd is passed on and closed here once sent.
  void send(FrameType type, std::uint64_t id, codec::Buffer payload, int extra_fd = -1);
  void send(FrameType type, std::uint64_t id, const void* data = nullptr, std::size_t size = 0);
  // Queues a frame whose payload the caller keeps (a shared payload's memfd is duplicated).
  void send_copy(FrameType type, std::uint64_t id, const codec::Buffer& payload);

  // Writes what is queued. Returns true when everything is written, false if the socket is full
  // (non-blocking). Throws std::system_error when the peer is gone.
  bool flush();
  bool has_output() const noexcept { return !out_.empty(); }

  enum class Received { data, nothing, closed };
  // Reads what is available (a blocking socket waits for something). `nothing`: a non-blocking
  // socket had nothing to read; `closed`: end of stream.
  Received receive();
  // The next complete frame, if one has been received (see Frame for how long it is valid).
  std::optional<Frame> next();

 private:
  struct Segment {
    std::vector<std::byte> bytes;
    std::size_t sent = 0;
    int fds[2] = {-1, -1};
    int nfds = 0;
    codec::Buffer keep;  // a shared payload, kept mapped until sent
  };

  int fd_;
  std::deque<Segment> out_;
  std::vector<std::byte> in_;
  std::size_t in_pos_ = 0;
  std::deque<int> in_fds_;
};

// A socketpair (O_CLOEXEC both ends).
void make_socket_pair(int fds[2]);
void set_nonblocking(int fd);

}  // namespace concurrent::futures::detail::process
