// How a client rank and a worker rank talk: protocol messages (remote/protocol.hpp) as MPI
// messages, and beside them a TCP connection, the doorbell, that lets an idle side sleep.
//
// Open MPI's receives spin: an idle rank waiting in MPI_Recv burns a core. So each side spins on
// MPI_Improbe only briefly after activity, then says it is going to sleep and sleeps in poll() on
// its doorbell; a side that sends MPI messages to a sleeper rings it (class Doorbell below). The
// doorbell also tells of a death: the kernel closes the connection of a process that ends,
// however it ends.
//
// Wire: a protocol message is one MPI message, its Header then its payload; a payload larger
// than kInlinePayload follows its header in messages of its own of at most 1 GiB each, sent from
// and received into contiguous memory (so Open MPI moves them with a single copy between
// processes of one host, and no int count limits their size).
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "concurrent/futures/detail/codec.hpp"
#include "system.hpp"

namespace concurrent::futures::detail::mpi {

// The transport's own message types, beside remote::MessageType (which stay under 100).
enum class Control : std::uint8_t {
  open = 100,    // client -> worker: a pool's session starts (Header::session); id: its reply tag
  left = 101,    // worker -> client: the session is over for this worker (after exit)
  finish = 102,  // client -> worker: serve no more; finalize MPI and end the process
};
// Header::id of a finish: a rank of the job died, so end without MPI_Finalize.
inline constexpr std::uint64_t kFinishWithoutFinalize = 1;

struct Header {
  std::uint8_t type = 0;
  std::uint8_t separate = 0;  // 1: the payload follows in messages of its own (`size` bytes)
  std::uint8_t reserved[2] = {};
  std::uint32_t session = 0;  // the pool it belongs to; other sessions' messages are dropped
  std::uint64_t id = 0;
  std::uint64_t size = 0;
};
static_assert(sizeof(Header) == 24);

// Tags: a client sends to a worker (which serves one pool at a time) with kTagToWorker; a worker
// replies with its pool's own tag (given in the open message), so that pools sharing a
// communicator (static ranks) each receive only their own workers' messages.
inline constexpr int kTagSetup = 0x1001;
inline constexpr int kTagToWorker = 0x1002;
// Reply tags: kFirstReplyTag + a slot no other live pool of this process holds (under 32767,
// MPI's least MPI_TAG_UB). Throws std::runtime_error when all are taken.
inline constexpr int kFirstReplyTag = 0x2000;
inline constexpr int kReplyTags = 0x4000;
int take_reply_tag();
void give_back_reply_tag(int tag) noexcept;

// Payloads up to this size are copied next to their header and received through a scratch buffer.
inline constexpr std::size_t kInlinePayload = 64 * 1024;

// Throws std::runtime_error naming `what` and MPI's error string unless rc is MPI_SUCCESS.
void check(int rc, const char* what);

// An MPI send in progress and what it sends. Its address must not change until it is done.
struct Send {
  std::vector<MPI_Request> requests;
  Header header;
  codec::Buffer bytes;  // the header and a small payload, or a copy of a large one
};

// Starts sending a message. A small payload is copied next to the header; a large one is copied
// into send.bytes with `copy`, and otherwise sent from where it is (it must outlive the send:
// it may be send.bytes itself).
void start_send(Send& send, MPI_Comm comm, int rank, int tag, Header header,
                std::span<const std::byte> payload, bool copy);
// Whether the send is done (then its resources are released).
bool test_send(Send& send);
void wait_send(Send& send);

// The sends one side (the client's transport, a worker rank) has in progress, completing in the
// background. A completed send's buffer goes back to the codec, whose spare blocks hand it to the
// next message of about its size (codec.cpp), so a stream of replies allocates nothing per
// message.
class Sends {
 public:
  // Starts a send, as start_send does. With `take`, a large payload is sent from that buffer,
  // taken over until the send is done; otherwise it is copied.
  void start(MPI_Comm comm, int rank, int tag, Header header, std::span<const std::byte> payload,
             codec::Buffer* take = nullptr);
  // Completes what it can; true when none is left in progress.
  bool done();
  bool empty() const noexcept { return active_.empty(); }
  // In progress (a list: MPI holds their addresses).
  std::list<Send>& active() noexcept { return active_; }

 private:
  std::list<Send> active_;
};

// A received message. Its payload is `view`, which points into `owned` for large payloads and
// into the receiver's scratch buffer otherwise (valid until the next receive).
struct Incoming {
  Header header;
  int source = -1;
  std::span<const std::byte> view;
  codec::Buffer owned;
  bool is_owned = false;
};

// The header at the start of a received message of `message.size()` bytes. Throws
// std::runtime_error for one that no sender makes: too short, flags other than 0 or 1, or a
// separate payload that is small enough to have been inline, or whose header has bytes after it.
Header read_header(std::span<const std::byte> message);

// Receives the next message from `source` (or any) with `tag` if one has arrived. A large
// payload's memory grows with the parts that arrive, never on its header's word alone.
std::optional<Incoming> try_receive(MPI_Comm comm, int source, int tag, codec::Buffer& scratch);

// --- the doorbell ------------------------------------------------------------------------------

// The client's end: a listening TCP socket, and the addresses at which workers can reach it.
class Listener {
 public:
  Listener();
  // "nonce|ip,ip,...|port": every IPv4 address of this host, loopback last.
  const std::string& address() const noexcept { return address_; }
  // Accepts connections until `count` workers have said who they are; returns them by the rank
  // each named. Throws std::runtime_error after `timeout`.
  std::vector<std::pair<int, UniqueFd>> accept(std::size_t count,
                                               std::chrono::milliseconds timeout);

 private:
  UniqueFd fd_;
  std::uint64_t nonce_ = 0;
  std::string address_;
};

// The worker's end: connects to the client at `address` (Listener::address) and names itself.
UniqueFd connect_doorbell(const std::string& address, int rank);

// One end of a doorbell connection. Each side both sends MPI messages to the other and sleeps on
// this connection when idle:
// - a side about to sleep says so first (kAsleep), then probes MPI once more;
// - a side that sends MPI messages rings (kRing) only if the other said it was asleep and has not
//   been rung since; and if a sleep notice comes after it sent something without ringing, it
//   rings then (the sleeper's last probe may have come before that message was visible).
// So a busy pair never rings: a sender reads the connection without blocking (one cheap recv)
// where it would otherwise write to it. A sleeper also wakes every kNap to probe MPI once: a
// message of a remote host can still be in the network when its sender rings.
class Doorbell {
 public:
  static constexpr char kRing = 'R';
  static constexpr char kAsleep = 'S';
  static constexpr std::chrono::milliseconds kNap{50};

  Doorbell() = default;
  explicit Doorbell(UniqueFd fd) : fd_(std::move(fd)) {}
  int fd() const noexcept { return fd_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }

  // After starting MPI sends to the peer: rings if it may be asleep. False if the peer is gone.
  bool sent() noexcept;
  // Reads what the peer wrote, without blocking: sets *rang if it rang, rings back for a sleep
  // notice that came after unannounced messages. False at end of stream (the peer is gone).
  bool listen(bool* rang) noexcept;
  // Says this side is about to sleep, once until the peer rings. False if the peer is gone.
  bool going_to_sleep() noexcept;
  // Whether this side's sleep notice is out (and no ring came since).
  bool announced() const noexcept { return announced_; }
  // Closes the connection (a worker that leaves).
  void close() noexcept { fd_.reset(); }

 private:
  bool write(char what) noexcept;

  UniqueFd fd_;
  bool peer_asleep_ = true;   // it said so and was not rung since (at first: unknown)
  bool sent_unrung_ = false;  // sent something since the last ring without ringing
  bool announced_ = false;    // this side's sleep notice went out
};

// Sends/receives a short setup string (the listener's address) with kTagSetup. The receive waits
// without spinning a core for long (the sender is normally there at once).
void send_setup(MPI_Comm comm, int rank, const std::string& text);
std::string receive_setup(MPI_Comm comm, int rank);

}  // namespace concurrent::futures::detail::mpi
