#include "mpi/mpi_transport.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <ctime>
#include <thread>
#include <vector>

namespace concurrent::futures::detail::mpi {

namespace {

using Clock = std::chrono::steady_clock;

// Probing MPI this long after the last activity catches the next message of a stream without
// a sleep and a wake-up; then the thread sleeps on the doorbells.
constexpr auto kSpin = std::chrono::microseconds(100);
// The spin yields the CPU at each turn: a rank of this host may need it. But a thread that
// yields to a rank that computes then waits in that CPU's run queue, cache-hot, for up to
// milliseconds while another CPU idles (perf sched, 2 ranks on 2 CPUs: a rank's reply left
// unread for 1-2.5 ms between 4 ms tasks). So with tasks this long or longer there is no spin at
// all: their replies are milliseconds apart, and a spin would catch nothing.
constexpr auto kSpinTasksBelow = std::chrono::milliseconds(1);
// How long a death waits for the messages the dead rank had rung for.
constexpr auto kLastWords = std::chrono::milliseconds(100);

std::atomic<std::uint32_t> g_sessions{0};

// Sends that could not be completed nor cancelled (to a dead rank): MPI may still read them.
std::list<Send>* leaked_sends() {
  static auto* leaked = new std::list<Send>;
  return leaked;
}

}  // namespace

MpiTransport::MpiTransport(std::unique_ptr<Ranks> ranks) : ranks_(std::move(ranks)) {}

MpiTransport::~MpiTransport() { close(); }

void MpiTransport::open(remote::TransportEvents& events) {
  events_ = &events;
  wake_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) throw_errno("eventfd");
  ranks_->open();
  do {
    session_ = ++g_sessions;
  } while (session_ == 0);
  reply_tag_ = take_reply_tag();
}

void MpiTransport::launch(remote::WorkerId worker) {
  const auto& members = ranks_->members();
  while (launched_ < members.size() && members[launched_]->dead) ++launched_;
  if (launched_ >= members.size()) {
    throw std::runtime_error("no MPI worker rank is left to start (a rank cannot be replaced)");
  }
  Member* m = members[launched_++];
  Worker& w = workers_[worker];
  w.member = m;
  by_rank_[m->rank] = worker;
  events_->on_worker_id(worker, m->rank);
  post(w, static_cast<std::uint8_t>(Control::open), static_cast<std::uint64_t>(reply_tag_), {});
}

// Starts a send to w's rank. With `take`, a large payload is sent from that buffer, taken over
// until the send is done; otherwise it is copied.
void MpiTransport::post(Worker& w, std::uint8_t type, std::uint64_t id,
                        std::span<const std::byte> payload, codec::Buffer* take) {
  if (!w.reading) return;
  sends_.start(ranks_->comm(), w.member->rank, kTagToWorker,
               Header{.type = type, .session = session_, .id = id}, payload, take);
  w.posted = true;
  last_activity_ = Clock::now();
}

void MpiTransport::send(remote::WorkerId worker, remote::MessageType type, std::uint64_t id,
                        const codec::Buffer& payload) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  post(it->second, static_cast<std::uint8_t>(type), id, {payload.data(), payload.size()});
}

void MpiTransport::send_task(remote::WorkerId worker, std::uint64_t id, codec::Buffer& request) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  post(it->second, static_cast<std::uint8_t>(remote::MessageType::task), id,
       {request.data(), request.size()}, &request);
}

void MpiTransport::send(remote::WorkerId worker, remote::MessageType type, std::uint64_t id) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  if (type == remote::MessageType::exit) it->second.told_to_exit = true;
  post(it->second, static_cast<std::uint8_t>(type), id, {});
}

void MpiTransport::stop(remote::WorkerId worker, remote::StopSignal) {
  auto it = workers_.find(worker);
  if (it == workers_.end() || it->second.stopped) return;
  // A rank cannot be killed: it leaves after the tasks it was sent, whose replies are dropped.
  it->second.stopped = true;
  it->second.told_to_exit = true;
  post(it->second, static_cast<std::uint8_t>(remote::MessageType::exit), 0, {});
  flush();
}

void MpiTransport::flush() {
  for (auto& [id, w] : workers_) {
    if (!w.posted) continue;
    w.posted = false;
    if (!w.reading) continue;
    // First what the worker wrote (a sleep notice), so that the ring goes out if it is asleep. A
    // connection that ended is seen by hear_all.
    bool rang = false;
    if (w.member->bell.listen(&rang)) w.member->bell.sent();
    if (rang) last_activity_ = Clock::now();
  }
  progress_sends();
}

bool MpiTransport::progress_sends() { return !sends_.done(); }

bool MpiTransport::receive_all() {
  bool any = false;
  while (std::optional<Incoming> in =
             try_receive(ranks_->comm(), MPI_ANY_SOURCE, reply_tag_, scratch_)) {
    deliver(*in);
    any = true;
  }
  return any;
}

void MpiTransport::deliver(Incoming& in) {
  auto at = by_rank_.find(in.source);
  if (at == by_rank_.end()) return;  // a rank that has left this pool
  const remote::WorkerId id = at->second;
  Worker& w = workers_.at(id);
  if (in.header.session != session_) return;  // an earlier pool's
  if (in.header.type == static_cast<std::uint8_t>(Control::left)) {
    gone(id, w, "left the pool");
    return;
  }
  if (w.stopped || !w.reading) return;
  const auto type = static_cast<remote::MessageType>(in.header.type);
  if (in.is_owned) {
    remote::Message message(type, in.header.id, std::move(in.owned));
    events_->on_message(id, message);
  } else {
    remote::Message message(type, in.header.id, in.view);
    events_->on_message(id, message);
  }
}

void MpiTransport::gone(remote::WorkerId worker, Worker& w, const std::string& how) {
  if (!w.reading) return;
  w.reading = false;
  by_rank_.erase(w.member->rank);
  events_->on_stream_end(worker, "");
  events_->on_death(worker, how);
}

// Reads every worker's doorbell without blocking. Returns whether one rang or a connection
// ended; a worker whose connection ended is dead or gone (after the messages it sent are
// delivered), and the caller must then return to the dispatcher, which was told.
bool MpiTransport::hear_all() {
  bool rang = false;
  for (auto& [id, w] : workers_) {
    if (!w.reading) continue;
    if (w.member->bell.listen(&rang)) continue;
    rang = true;
    // Its process ended. First what it sent before (it may still be in flight).
    const auto until = Clock::now() + kLastWords;
    while (w.reading && Clock::now() < until) {
      if (std::optional<Incoming> in =
              try_receive(ranks_->comm(), w.member->rank, reply_tag_, scratch_)) {
        deliver(*in);
      }
    }
    if (!w.reading) continue;  // it had left: its connection closed after
    if (w.told_to_exit) {
      // Told to exit, it has gone (a spawned worker closes its connection as it ends): its last
      // word is merely later than the connection's end.
      gone(id, w, "left the pool");
      continue;
    }
    w.member->dead = true;
    note_dead_rank();
    gone(id, w, "ended: its process exited or was killed (its connection closed)");
  }
  return rang;
}

// Sleeps until a doorbell or the wake-up eventfd can be read, or `timeout_us` passes.
void MpiTransport::sleep(long long timeout_us) {
  std::vector<pollfd> fds;
  fds.push_back({wake_fd_.get(), POLLIN, 0});
  for (auto& [id, w] : workers_) {
    if (w.reading) fds.push_back({w.member->bell.fd(), POLLIN, 0});
  }
  timespec limit{};
  limit.tv_sec = static_cast<time_t>(timeout_us / 1'000'000);
  limit.tv_nsec = static_cast<long>(timeout_us % 1'000'000) * 1000;
  if (::ppoll(fds.data(), fds.size(), &limit, nullptr) > 0 && fds[0].revents != 0) {
    std::uint64_t count = 0;
    while (::read(wake_fd_.get(), &count, sizeof(count)) > 0) {
    }
  }
}

void MpiTransport::wait(std::optional<std::chrono::milliseconds> timeout) {
  const auto start = Clock::now();
  const auto deadline = timeout ? start + *timeout : Clock::time_point::max();
  auto pause = std::chrono::microseconds(1);
  bool probed_after_notice = false;
  for (;;) {
    const bool sending = progress_sends();
    if (receive_all()) {
      last_activity_ = Clock::now();
      return;
    }
    if (woken_.exchange(false, std::memory_order_acq_rel)) return;
    auto now = Clock::now();
    if (now >= deadline) return;
    if (spin_ && now < last_activity_ + kSpin) {
      std::this_thread::yield();  // a rank of this host may need the CPU (see kSpinTasksBelow)
      continue;
    }
    const std::size_t alive = live_workers();
    if (hear_all()) {
      if (live_workers() != alive) return;  // a death was delivered
      last_activity_ = Clock::now();
      probed_after_notice = false;
      continue;
    }
    // Tell the workers this side is about to sleep, then look once more before it does.
    bool fresh = false;
    for (auto& [id, w] : workers_) {
      if (!w.reading || w.member->bell.announced()) continue;
      w.member->bell.going_to_sleep();
      fresh = true;
    }
    if (fresh || !probed_after_notice) {
      probed_after_notice = true;
      continue;
    }
    // A send in progress needs this side's MPI calls: nap briefly. Otherwise sleep until rung,
    // woken or the deadline, and at most Doorbell::kNap (see link.hpp).
    now = Clock::now();
    auto nap = std::chrono::duration_cast<std::chrono::microseconds>(Doorbell::kNap);
    if (sending) {
      nap = pause;
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
    if (deadline != Clock::time_point::max()) {
      nap = std::min(nap, std::chrono::duration_cast<std::chrono::microseconds>(deadline - now));
    }
    sleep(std::max<long long>(nap.count(), 0));
  }
}

std::size_t MpiTransport::live_workers() const {
  return static_cast<std::size_t>(std::count_if(
      workers_.begin(), workers_.end(), [](const auto& entry) { return entry.second.reading; }));
}

void MpiTransport::note_task_time(Clock::duration took) noexcept { spin_ = took < kSpinTasksBelow; }

void MpiTransport::wake() noexcept {
  woken_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
}

void MpiTransport::drain(remote::WorkerId worker) {
  auto it = workers_.find(worker);
  if (it == workers_.end() || !it->second.reading) return;
  Worker& w = it->second;
  while (std::optional<Incoming> in =
             try_receive(ranks_->comm(), w.member->rank, reply_tag_, scratch_)) {
    deliver(*in);
    if (!w.reading) return;
  }
}

void MpiTransport::reap_all() {
  for (;;) {
    flush();
    const bool all_gone = std::none_of(workers_.begin(), workers_.end(),
                                       [](const auto& entry) { return entry.second.reading; });
    if (all_gone) return;
    wait(std::chrono::milliseconds(100));
  }
}

void MpiTransport::close() noexcept {
  if (!ranks_) return;
  // Sends still in progress go to ranks that died: cancel them, or let them be.
  const auto until = Clock::now() + kLastWords;
  while (!sends_.empty() && Clock::now() < until) {
    try {
      progress_sends();
    } catch (...) {
      break;
    }
  }
  std::list<Send>& active = sends_.active();
  for (auto it = active.begin(); it != active.end();) {
    for (MPI_Request& r : it->requests) {
      if (r != MPI_REQUEST_NULL) MPI_Cancel(&r);
    }
    int done = 0;
    MPI_Testall(static_cast<int>(it->requests.size()), it->requests.data(), &done,
                MPI_STATUSES_IGNORE);
    if (done) {
      it = active.erase(it);
    } else {
      ++it;
    }
  }
  leaked_sends()->splice(leaked_sends()->end(), active);
  ranks_->close();
  if (reply_tag_ >= 0) give_back_reply_tag(reply_tag_);
  ranks_.reset();
}

std::size_t MpiTransport::max_payload() const noexcept { return std::size_t{1} << 40; }

}  // namespace concurrent::futures::detail::mpi
