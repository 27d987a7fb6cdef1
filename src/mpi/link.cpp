#include "mpi/link.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

namespace concurrent::futures::detail::mpi {

namespace {

constexpr std::size_t kPart = std::size_t{1} << 30;  // the largest message of a payload

void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool read_exactly(int fd, void* into, std::size_t n, std::chrono::steady_clock::time_point until) {
  auto* p = static_cast<char*>(into);
  while (n > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t got = ::recv(fd, p, n, MSG_DONTWAIT);
    if (got == 0) return false;
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return false;
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

struct Hello {
  std::uint64_t nonce;
  std::uint32_t rank;
  std::uint32_t reserved;
};

}  // namespace

namespace {
std::mutex g_tags_mu;
std::set<int> g_tags_taken;
int g_next_tag = 0;
}  // namespace

int take_reply_tag() {
  std::lock_guard lock(g_tags_mu);
  for (int i = 0; i < kReplyTags; ++i) {
    const int tag = kFirstReplyTag + (g_next_tag + i) % kReplyTags;
    if (g_tags_taken.insert(tag).second) {
      g_next_tag = (g_next_tag + i + 1) % kReplyTags;
      return tag;
    }
  }
  throw std::runtime_error("too many MPI pools at once in this process (" +
                           std::to_string(kReplyTags) + ")");
}

void give_back_reply_tag(int tag) noexcept {
  std::lock_guard lock(g_tags_mu);
  g_tags_taken.erase(tag);
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(text, length));
}

void start_send(Send& send, MPI_Comm comm, int rank, int tag, Header header,
                std::span<const std::byte> payload, bool copy) {
  send.requests.clear();
  if (payload.size() <= kInlinePayload) {
    send.bytes.clear();
    send.bytes.append(&header, sizeof(header));
    send.bytes.append(payload.data(), payload.size());
    send.requests.push_back(MPI_REQUEST_NULL);
    check(MPI_Isend(send.bytes.data(), static_cast<int>(send.bytes.size()), MPI_BYTE, rank, tag,
                    comm, &send.requests.back()),
          "MPI_Isend");
    return;
  }
  send.header = header;
  send.header.separate = 1;
  send.header.size = payload.size();
  const std::byte* from = payload.data();
  if (copy) {
    send.bytes.clear();
    send.bytes.append(payload.data(), payload.size());
    from = send.bytes.data();
  }
  send.requests.reserve(1 + (payload.size() + kPart - 1) / kPart);
  send.requests.push_back(MPI_REQUEST_NULL);
  check(MPI_Isend(&send.header, sizeof(Header), MPI_BYTE, rank, tag, comm, &send.requests.back()),
        "MPI_Isend");
  for (std::size_t at = 0; at < payload.size(); at += kPart) {
    send.requests.push_back(MPI_REQUEST_NULL);
    check(MPI_Isend(from + at, static_cast<int>(std::min(kPart, payload.size() - at)), MPI_BYTE,
                    rank, tag, comm, &send.requests.back()),
          "MPI_Isend");
  }
}

bool test_send(Send& send) {
  if (send.requests.empty()) return true;
  int done = 0;
  check(MPI_Testall(static_cast<int>(send.requests.size()), send.requests.data(), &done,
                    MPI_STATUSES_IGNORE),
        "MPI_Testall");
  if (!done) return false;
  send.requests.clear();
  send.bytes = codec::Buffer();
  return true;
}

void Sends::start(MPI_Comm comm, int rank, int tag, Header header,
                  std::span<const std::byte> payload, codec::Buffer* take) {
  Send& send = active_.emplace_back();
  if (take != nullptr && payload.size() > kInlinePayload) {
    send.bytes = std::move(*take);
    payload = {send.bytes.data(), send.bytes.size()};
  }
  start_send(send, comm, rank, tag, header, payload, /*copy=*/take == nullptr);
}

bool Sends::done() {
  for (auto it = active_.begin(); it != active_.end();) {
    it = test_send(*it) ? active_.erase(it) : std::next(it);
  }
  return active_.empty();
}

void wait_send(Send& send) {
  if (!send.requests.empty()) {
    check(MPI_Waitall(static_cast<int>(send.requests.size()), send.requests.data(),
                      MPI_STATUSES_IGNORE),
          "MPI_Waitall");
  }
  send.requests.clear();
  send.bytes = codec::Buffer();
}

Header read_header(std::span<const std::byte> message) {
  Header header;
  if (message.size() < sizeof(Header)) {
    throw std::runtime_error("a message of " + std::to_string(message.size()) +
                             " bytes is too short for its header");
  }
  std::memcpy(&header, message.data(), sizeof(Header));
  if (header.separate > 1) throw std::runtime_error("a message header with bad flags");
  if (header.separate && (message.size() != sizeof(Header) || header.size <= kInlinePayload)) {
    throw std::runtime_error("a message header announcing a separate payload of " +
                             std::to_string(header.size) + " bytes is corrupt");
  }
  return header;
}

std::optional<Incoming> try_receive(MPI_Comm comm, int source, int tag, codec::Buffer& scratch) {
  int found = 0;
  MPI_Message message = MPI_MESSAGE_NULL;
  MPI_Status status;
  check(MPI_Improbe(source, tag, comm, &found, &message, &status), "MPI_Improbe");
  if (!found) return std::nullopt;
  int count = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
  const auto size = static_cast<std::size_t>(count);
  Incoming in;
  in.source = status.MPI_SOURCE;
  scratch.clear();
  std::byte* at = scratch.extend(std::max<std::size_t>(size, 1));
  check(MPI_Mrecv(at, count, MPI_BYTE, &message, MPI_STATUS_IGNORE), "MPI_Mrecv");
  in.header = read_header({at, size});
  if (!in.header.separate) {
    in.view = {at + sizeof(Header), size - sizeof(Header)};
    return in;
  }
  // The payload's own messages were sent right after the header: take them from its sender, each
  // part checked against the size the header announced before memory is made for it.
  for (std::size_t done = 0; done < in.header.size; done += kPart) {
    const std::size_t part = std::min<std::size_t>(kPart, in.header.size - done);
    MPI_Message part_message = MPI_MESSAGE_NULL;
    MPI_Status part_status;
    check(MPI_Mprobe(in.source, status.MPI_TAG, comm, &part_message, &part_status), "MPI_Mprobe");
    int part_count = 0;
    check(MPI_Get_count(&part_status, MPI_BYTE, &part_count), "MPI_Get_count");
    if (static_cast<std::size_t>(part_count) != part) {
      MPI_Mrecv(nullptr, 0, MPI_BYTE, &part_message, MPI_STATUS_IGNORE);  // truncated: dropped
      throw std::runtime_error("a payload's part of " + std::to_string(part_count) +
                               " bytes where its header announced " + std::to_string(part));
    }
    check(MPI_Mrecv(in.owned.extend(part), part_count, MPI_BYTE, &part_message, MPI_STATUS_IGNORE),
          "MPI_Mrecv of a payload");
  }
  in.view = {in.owned.data(), in.owned.size()};
  in.is_owned = true;
  return in;
}

// --- doorbell
// ----------------------------------------------------------------------------------

Listener::Listener() {
  fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd_) throw_errno("socket for the MPI doorbell");
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  any.sin_port = 0;
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) {
    throw_errno("bind of the MPI doorbell");
  }
  if (::listen(fd_.get(), 128) != 0) throw_errno("listen on the MPI doorbell");
  socklen_t length = sizeof(any);
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&any), &length) != 0) {
    throw_errno("getsockname of the MPI doorbell");
  }
  nonce_ = std::random_device{}();
  nonce_ = (nonce_ << 32) ^ std::random_device{}();

  std::vector<std::string> outside;
  std::vector<std::string> loopback;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
      if ((i->ifa_flags & IFF_UP) == 0) continue;
      char text[INET_ADDRSTRLEN] = {};
      const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      if (::inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text)) == nullptr) continue;
      ((i->ifa_flags & IFF_LOOPBACK) ? loopback : outside).emplace_back(text);
    }
    ::freeifaddrs(list);
  }
  if (loopback.empty()) loopback.emplace_back("127.0.0.1");
  // CF_MPI_ADDRESS names the address to use when the automatic list would not do.
  if (const char* chosen = std::getenv("CF_MPI_ADDRESS"); chosen != nullptr && *chosen != '\0') {
    outside.assign(1, chosen);
    loopback.clear();
  }
  address_ = std::to_string(nonce_) + "|";
  bool first = true;
  for (const auto* group : {&outside, &loopback}) {
    for (const std::string& ip : *group) {
      address_ += (first ? "" : ",") + ip;
      first = false;
    }
  }
  address_ += "|" + std::to_string(ntohs(any.sin_port));
}

std::vector<std::pair<int, UniqueFd>> Listener::accept(std::size_t count,
                                                       std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::vector<std::pair<int, UniqueFd>> accepted;
  while (accepted.size() < count) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw std::runtime_error("MPI workers did not connect to the client's doorbell at " +
                               address_.substr(address_.find('|') + 1) + " within " +
                               std::to_string(timeout.count()) + " ms (" +
                               std::to_string(accepted.size()) + " of " + std::to_string(count) +
                               " did); set CF_MPI_ADDRESS to an address they can reach");
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    UniqueFd peer(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!peer) continue;
    Hello hello{};
    // A connection that is not one of ours gets a second to say so, not the whole wait.
    const auto hello_until =
        std::min(until, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    if (!read_exactly(peer.get(), &hello, sizeof(hello), hello_until) || hello.nonce != nonce_) {
      continue;  // not one of ours
    }
    set_nodelay(peer.get());
    accepted.emplace_back(static_cast<int>(hello.rank), std::move(peer));
  }
  return accepted;
}

UniqueFd connect_doorbell(const std::string& address, int rank) {
  const auto bar1 = address.find('|');
  const auto bar2 = address.rfind('|');
  if (bar1 == std::string::npos || bar2 == bar1) {
    throw std::runtime_error("bad MPI doorbell address '" + address + "'");
  }
  const std::uint64_t nonce = std::stoull(address.substr(0, bar1));
  const auto port = static_cast<std::uint16_t>(std::stoul(address.substr(bar2 + 1)));
  const std::string ips = address.substr(bar1 + 1, bar2 - bar1 - 1);
  std::string tried;
  for (std::size_t at = 0; at <= ips.size();) {
    const std::size_t comma = std::min(ips.find(',', at), ips.size());
    const std::string ip = ips.substr(at, comma - at);
    at = comma + 1;
    if (ip.empty()) continue;
    tried += (tried.empty() ? "" : ", ") + ip;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    if (::inet_pton(AF_INET, ip.c_str(), &to.sin_addr) != 1) continue;
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw_errno("socket for the MPI doorbell");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      if (errno != EINPROGRESS) continue;
      pollfd pfd{fd.get(), POLLOUT, 0};
      if (::poll(&pfd, 1, 3000) != 1) continue;
      int error = 0;
      socklen_t length = sizeof(error);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
        continue;
      }
    }
    set_nodelay(fd.get());
    const Hello hello{nonce, static_cast<std::uint32_t>(rank), 0};
    if (::send(fd.get(), &hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello)) continue;
    return fd;
  }
  throw std::runtime_error("an MPI worker could not reach the client's doorbell on port " +
                           std::to_string(port) + " at any of: " + tried +
                           " (set CF_MPI_ADDRESS on the client to an address it can reach)");
}

bool Doorbell::write(char what) noexcept {
  for (;;) {
    const ssize_t put = ::send(fd_.get(), &what, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (put == 1) return true;
    if (put < 0 && errno == EINTR) continue;
    // Full: the peer has bytes enough to wake on. Otherwise it is gone.
    return put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

bool Doorbell::sent() noexcept {
  if (!peer_asleep_) {
    sent_unrung_ = true;
    return true;
  }
  peer_asleep_ = false;
  sent_unrung_ = false;
  return write(kRing);
}

bool Doorbell::listen(bool* rang) noexcept {
  char bytes[256];
  for (;;) {
    const ssize_t got = ::recv(fd_.get(), bytes, sizeof(bytes), MSG_DONTWAIT);
    if (got == 0) return false;
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    for (ssize_t i = 0; i < got; ++i) {
      if (bytes[i] == kRing) {
        *rang = true;
        announced_ = false;
      } else if (bytes[i] == kAsleep) {
        if (sent_unrung_) {
          // It may have probed before what we sent was there to see: wake it to look again.
          sent_unrung_ = false;
          if (!write(kRing)) return false;
        } else {
          peer_asleep_ = true;
        }
      }
    }
  }
}

bool Doorbell::going_to_sleep() noexcept {
  if (announced_) return true;
  announced_ = true;
  return write(kAsleep);
}

void send_setup(MPI_Comm comm, int rank, const std::string& text) {
  check(MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, rank, kTagSetup, comm),
        "MPI_Send of the setup");
}

std::string receive_setup(MPI_Comm comm, int rank) {
  MPI_Message message = MPI_MESSAGE_NULL;
  MPI_Status status;
  auto pause = std::chrono::microseconds(1);
  for (;;) {
    int found = 0;
    check(MPI_Improbe(rank, kTagSetup, comm, &found, &message, &status), "MPI_Improbe");
    if (found) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
  int count = 0;
  check(MPI_Get_count(&status, MPI_CHAR, &count), "MPI_Get_count");
  std::string text(static_cast<std::size_t>(count), '\0');
  check(MPI_Mrecv(text.data(), count, MPI_CHAR, &message, MPI_STATUS_IGNORE), "MPI_Mrecv");
  return text;
}

}  // namespace concurrent::futures::detail::mpi
