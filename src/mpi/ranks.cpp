#include "mpi/ranks.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <limits>
#include <list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "process/launcher.hpp"
#include "remote/protocol.hpp"

namespace concurrent::futures::detail::mpi {

namespace {

using Clock = std::chrono::steady_clock;
using remote::MessageType;

// How long a side that was just busy probes MPI before it sleeps on its doorbell: long enough to
// catch the next task of a stream without a wake-up, short enough to cost little when idle.
constexpr auto kSpin = std::chrono::microseconds(100);
// While a worker rank spins for its next message it yields the CPU at each turn only if its last
// task was shorter than this. Short tasks come in streams whose messages the client's threads
// must make, on the CPUs the ranks share. After longer tasks a yield was measured to do harm: on
// 2 CPUs the two worker ranks of seed (b) (300 us chunks) then shared one CPU for whole maps in
// about a quarter of the runs (bench/RESULTS.md, ninth session). Open MPI's own yield on an
// idle probe is turned off in every rank of a static job (initialize()), so this is the only one.
constexpr auto kYieldTasksBelow = std::chrono::microseconds(100);
constexpr auto kConnectTimeout = std::chrono::milliseconds(60'000);
constexpr auto kSpawnTimeout = std::chrono::seconds(30);  // see initialize()
constexpr const char* kSpawnedFlag = "--cfutures-mpi-worker";
// Open MPI's switch for giving up the CPU on every probe that finds nothing (see initialize).
constexpr const char* kYieldVariable = "OMPI_MCA_mpi_yield_when_idle";

std::mutex g_mu;  // the world group and the state of MPI below
bool g_we_initialized = false;
bool g_world_set_up = false;
std::string g_world_error;  // why setting up the static ranks failed (rank 0), for later pools
// A rank of this job died (seen by a client) or the client said so: MPI_Finalize would wait for
// it for ever (Open MPI 4.1 under --enable-recovery), so the process ends without it.
std::atomic<bool> g_skip_finalize{false};
MPI_Comm g_world = MPI_COMM_NULL;               // rank 0's duplicate of MPI_COMM_WORLD
std::vector<std::unique_ptr<Member>> g_static;  // rank 0: the serving ranks

[[noreturn]] void leave_process(int code) {
  std::fflush(nullptr);
  std::_Exit(code);
}

// --- the worker's side ---------------------------------------------------------------------

// One worker rank's conversation with its client (remote/protocol.hpp), session after session.
class Server {
 public:
  Server(MPI_Comm comm, int client, UniqueFd doorbell, bool one_session)
      : comm_(comm), client_(client), bell_(std::move(doorbell)), one_session_(one_session) {}

  // Returns when told to finish (or, for a spawned worker, when its session ends).
  void run() {
    for (;;) {
      Incoming in = next();
      const auto type = in.header.type;
      if (type == static_cast<std::uint8_t>(Control::finish)) {
        if (in.header.id == kFinishWithoutFinalize) g_skip_finalize = true;
        finish_sends();
        return;
      }
      if (type == static_cast<std::uint8_t>(Control::open)) {
        session_ = in.header.session;
        reply_tag_ = static_cast<int>(in.header.id);
        init_error_ = nullptr;
        say(static_cast<std::uint8_t>(MessageType::hello), static_cast<std::uint64_t>(getpid()),
            {});
        continue;
      }
      if (session_ == 0 || in.header.session != session_) continue;  // another pool's
      switch (static_cast<MessageType>(type)) {
        case MessageType::config:
          configure(in.view);
          break;
        case MessageType::task: {
          const std::uint64_t id = in.header.id;
          // After a failed initializer the pool breaks and fails its tasks itself.
          if (init_error_) break;
          const auto started = Clock::now();
          codec::Buffer reply = remote::run_task(in.view);
          short_tasks_ = Clock::now() - started < kYieldTasksBelow;
          remote::refuse_descriptors(reply);
          in = Incoming();  // a large request goes before the reply is sent
          say(static_cast<std::uint8_t>(MessageType::reply), id, {reply.data(), reply.size()},
              &reply);
          break;
        }
        case MessageType::exit:
          say(static_cast<std::uint8_t>(Control::left), 0, {});
          session_ = 0;
          if (one_session_) {
            finish_sends();
            return;
          }
          break;
        default:
          break;  // nothing else is sent to workers
      }
    }
  }

 private:
  void configure(std::span<const std::byte> payload) {
    std::exception_ptr error;
    try {
      config_ = remote::decode_config(payload);
    } catch (...) {
      error = std::current_exception();
    }
    if (!error) error = remote::run_initializer(config_);
    if (error) {
      init_error_ = error;  // tasks that still come are not run
      codec::Buffer b = remote::encode_exception(error);
      say(static_cast<std::uint8_t>(MessageType::init_failed), 0, {b.data(), b.size()});
      return;
    }
    say(static_cast<std::uint8_t>(MessageType::ready), 0, {});
  }

  // Starts sending one message (ringing if the client may be asleep). The send completes in the
  // background (next() and finish_sends() see to it): a reply larger than Open MPI's eager limit
  // is only taken when the client's dispatcher thread gets to it, and waiting for that here (as
  // MPI_Wait does, spinning) would keep this rank from its next task, and take a CPU that the
  // client's threads may need. `keep`: a large payload's buffer, taken over until the send is done.
  void say(std::uint8_t type, std::uint64_t id, std::span<const std::byte> payload,
           codec::Buffer* keep = nullptr) {
    sends_.start(comm_, client_, reply_tag_, Header{.type = type, .session = session_, .id = id},
                 payload, keep);
    bool rang = false;
    if (!bell_.listen(&rang) || !bell_.sent()) leave_process(1);  // the client is gone
    sends_.done();
  }

  void finish_sends() {
    while (!sends_.done()) std::this_thread::yield();
  }

  // The next message from the client; sleeps on the doorbell when there is none for a while.
  Incoming next() {
    auto spin_until = Clock::now() + kSpin;
    bool probed_after_notice = false;
    for (;;) {
      if (std::optional<Incoming> in = try_receive(comm_, client_, kTagToWorker, scratch_)) {
        return std::move(*in);
      }
      const auto now = Clock::now();
      if (!sends_.done()) {  // never asleep with a send in flight: it may need this side's progress
        spin_until = now + kSpin;
        std::this_thread::yield();
        continue;
      }
      if (now < spin_until) {
        if (short_tasks_) std::this_thread::yield();  // see kYieldTasksBelow
        continue;
      }
      bool rang = false;
      if (!bell_.listen(&rang)) return last_words();
      if (rang) {
        spin_until = now + kSpin;
        probed_after_notice = false;
        continue;
      }
      if (!bell_.announced()) {
        if (!bell_.going_to_sleep()) return last_words();
        probed_after_notice = false;
      }
      if (!probed_after_notice) {
        probed_after_notice = true;  // one more look after the notice went out
        continue;
      }
      pollfd pfd{bell_.fd(), POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>(Doorbell::kNap.count()));
    }
  }

  // The client has gone. What it sent before still counts (its last word is finish); else leave.
  Incoming last_words() {
    const auto until = Clock::now() + std::chrono::milliseconds(500);
    while (Clock::now() < until) {
      if (std::optional<Incoming> in = try_receive(comm_, client_, kTagToWorker, scratch_)) {
        return std::move(*in);
      }
    }
    leave_process(1);
  }

  MPI_Comm comm_;
  int client_;
  Doorbell bell_;
  bool one_session_;
  std::uint32_t session_ = 0;
  int reply_tag_ = kFirstReplyTag;
  std::exception_ptr init_error_;
  remote::WorkerConfig config_;
  codec::Buffer scratch_;
  Sends sends_;
  bool short_tasks_ = true;  // whether the last task took less than kYieldTasksBelow
};

// --- the client's side ---------------------------------------------------------------------

void send_control(MPI_Comm comm, Member& m, Control what, std::uint64_t id = 0) {
  if (m.dead) return;
  Send send;
  start_send(send, comm, m.rank, kTagToWorker,
             Header{.type = static_cast<std::uint8_t>(what), .session = 0, .id = id}, {}, true);
  bool rang = false;
  if (m.bell.listen(&rang)) m.bell.sent();
  wait_send(send);  // a header alone: sent eagerly, whether or not the rank still listens
}

// Sets up doorbells from the client (rank `client` of comm) to every other rank of `comm`.
std::vector<std::unique_ptr<Member>> connect_members(MPI_Comm comm, int client, int size,
                                                     bool inter) {
  Listener listener;
  const int peers = inter ? size : size - 1;
  for (int r = 0; r < size; ++r) {
    if (inter || r != client) send_setup(comm, r, listener.address());
  }
  auto accepted = listener.accept(static_cast<std::size_t>(peers), kConnectTimeout);
  std::sort(accepted.begin(), accepted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::unique_ptr<Member>> members;
  for (auto& [rank, fd] : accepted) {
    auto m = std::make_unique<Member>();
    m->rank = rank;
    m->bell = Doorbell(std::move(fd));
    members.push_back(std::move(m));
  }
  return members;
}

// The worker's end of connect_members: serves, then returns when told to finish.
void serve_client(MPI_Comm comm, int client, int my_rank, bool one_session) {
  const std::string address = receive_setup(comm, client);
  UniqueFd doorbell = connect_doorbell(address, my_rank);
  Server(comm, client, std::move(doorbell), one_session).run();
}

// Rank 0 of a static world: the serving ranks finish (and end their processes). Runs at exit, or
// first thing in MPI_Finalize if the program finalizes MPI itself (an attribute of MPI_COMM_SELF).
void release_static_ranks() noexcept {
  // Taken out under the lock, released outside it: no MPI call is made while g_mu is held.
  MPI_Comm world = MPI_COMM_NULL;
  std::vector<std::unique_ptr<Member>> members;
  {
    std::lock_guard lock(g_mu);
    std::swap(world, g_world);
    members.swap(g_static);
  }
  if (world == MPI_COMM_NULL) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  const std::uint64_t how = g_skip_finalize ? kFinishWithoutFinalize : 0;
  for (auto& m : members) {
    try {
      send_control(world, *m, Control::finish, how);
    } catch (...) {
    }
  }
  MPI_Comm_free(&world);
}

int release_at_finalize(MPI_Comm, int, void*, void*) {
  release_static_ranks();
  return MPI_SUCCESS;
}

void finalize_at_exit() {
  release_static_ranks();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && !g_skip_finalize) MPI_Finalize();
}

// Whether this process was started by a pool's MPI_Comm_spawn (its command line ends with the
// flag SpawnedRanks gives it), not by the program's own MPI_Comm_spawn.
bool spawned_by_a_pool() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return line.find(std::string(kSpawnedFlag) + '\0') != std::string::npos;
}

// A worker rank's life after MPI is up: serves its client, then leaves MPI and ends.
[[noreturn]] void serve_and_end(MPI_Comm comm, bool one_session) {
  try {
    serve_client(comm, 0, world_rank(), one_session);
  } catch (const std::exception& e) {
    // Cannot reach its client (an address it cannot connect to, ...): say why. Open MPI ends
    // the job, as it does for any rank that fails.
    std::fprintf(stderr, "cfutures: MPI worker rank %d cannot serve: %s\n", world_rank(), e.what());
    leave_process(1);
  }
  if (one_session) {
    MPI_Comm_disconnect(&comm);
  } else {
    MPI_Comm_free(&comm);
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && !g_skip_finalize) MPI_Finalize();
  std::exit(0);
}

class StaticRanks final : public Ranks {
 public:
  explicit StaticRanks(std::vector<Member*> members) : members_(std::move(members)) {}
  ~StaticRanks() override { close(); }
  void open() override {}
  void close() noexcept override {
    std::lock_guard lock(g_mu);
    for (Member* m : members_) m->in_use = false;
    members_.clear();
  }
  MPI_Comm comm() const noexcept override { return g_world; }
  const std::vector<Member*>& members() const noexcept override { return members_; }

 private:
  std::vector<Member*> members_;
};

class SpawnedRanks final : public Ranks {
 public:
  explicit SpawnedRanks(std::size_t count) : count_(count) {}
  ~SpawnedRanks() override { close(); }

  void open() override {
    char path[4096] = {};
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0) throw_errno("readlink /proc/self/exe (the program to spawn)");
    std::string flag_text = kSpawnedFlag;
    char* flag = flag_text.data();
    char* args[] = {flag, nullptr};
    // MPI_COMM_SELF returns errors during the spawn (to throw them), then gets its handler back.
    MPI_Errhandler before = MPI_ERRHANDLER_NULL;
    check(MPI_Comm_get_errhandler(MPI_COMM_SELF, &before), "MPI_Comm_get_errhandler");
    check(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    // Twice at most: see kSpawnTimeout.
    std::string why;
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::vector<int> errors(count_, MPI_SUCCESS);
      const int rc = MPI_Comm_spawn(path, args, static_cast<int>(count_), MPI_INFO_NULL, 0,
                                    MPI_COMM_SELF, &comm_, errors.data());
      if (rc == MPI_SUCCESS) break;
      comm_ = MPI_COMM_NULL;  // nothing to disconnect
      char text[MPI_MAX_ERROR_STRING] = {};
      int length = 0;
      MPI_Error_string(rc, text, &length);
      why = std::string(text, length);
    }
    MPI_Comm_set_errhandler(MPI_COMM_SELF, before);
    MPI_Errhandler_free(&before);
    if (comm_ == MPI_COMM_NULL) {
      throw std::runtime_error("MPI_Comm_spawn of " + std::to_string(count_) + " workers (" + path +
                               ") failed twice: " + why);
    }
    try {
      owned_ = connect_members(comm_, 0, static_cast<int>(count_), /*inter=*/true);
    } catch (...) {
      MPI_Comm_free(&comm_);
      throw;
    }
    for (auto& m : owned_) members_.push_back(m.get());
  }

  void close() noexcept override {
    // Disconnecting waits for every child; one that died never comes (Open MPI 4.1).
    const bool any_dead =
        std::any_of(owned_.begin(), owned_.end(), [](const auto& m) { return m->dead; });
    members_.clear();
    owned_.clear();
    if (comm_ == MPI_COMM_NULL) return;
    if (any_dead) {
      MPI_Comm_free(&comm_);
    } else {
      MPI_Comm_disconnect(&comm_);
    }
  }
  MPI_Comm comm() const noexcept override { return comm_; }
  const std::vector<Member*>& members() const noexcept override { return members_; }
  bool one_session() const noexcept override { return true; }

 private:
  std::size_t count_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::vector<std::unique_ptr<Member>> owned_;
  std::vector<Member*> members_;
};

class CommRanks final : public Ranks {
 public:
  CommRanks(MPI_Comm comm, std::vector<std::unique_ptr<Member>> owned)
      : comm_(comm), owned_(std::move(owned)) {
    for (auto& m : owned_) members_.push_back(m.get());
  }
  ~CommRanks() override { close(); }
  void open() override {}
  // The other ranks' constructors return: they serve no more.
  void close() noexcept override {
    if (comm_ == MPI_COMM_NULL) return;
    const std::uint64_t how = g_skip_finalize ? kFinishWithoutFinalize : 0;
    for (auto& m : owned_) {
      try {
        send_control(comm_, *m, Control::finish, how);
      } catch (...) {
      }
    }
    members_.clear();
    owned_.clear();
    MPI_Comm_free(&comm_);
  }
  MPI_Comm comm() const noexcept override { return comm_; }
  const std::vector<Member*>& members() const noexcept override { return members_; }

 private:
  MPI_Comm comm_;
  std::vector<std::unique_ptr<Member>> owned_;
  std::vector<Member*> members_;
};

}  // namespace

void note_dead_rank() noexcept { g_skip_finalize = true; }

void initialize(int* argc, char*** argv) {
  // A lock of its own: g_mu is never held across an MPI call (Open MPI takes its own locks).
  static std::mutex init_mu;
  std::lock_guard lock(init_mu);
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = 0;
  if (!initialized) {
    // Open MPI 4.1 with PMIx 4 (Debian 12's) now and then hangs for ever in MPI_Comm_spawn's
    // connect step (openpmix issue 2735). With this bound the spawn fails with an error instead,
    // and the pool tries again (SpawnedRanks::open). The program's own setting wins.
    setenv("OMPI_MCA_pmix_base_exchange_timeout", std::to_string(kSpawnTimeout.count()).c_str(),
           /*overwrite=*/0);
    // On an oversubscribed host (more ranks than cores, as in `mpiexec --oversubscribe -n 3` on
    // two) Open MPI makes every probe that finds nothing give up the CPU. No rank of a pool waits
    // inside MPI: each probes while it spins (yielding there itself when that helps) and
    // otherwise sleeps on its doorbell. For the client, a probe that yields hands the CPU to a
    // rank that computes, and the client then waits behind it for up to milliseconds while
    // another CPU idles. For the worker ranks, the yield on every empty probe let the two workers
    // of seed (b) share one CPU for whole maps in about a quarter of the runs on 2 CPUs; with it
    // off, 2 of 24 runs were slow instead of 7 of 24 (bench/RESULTS.md, ninth session; the
    // worker's own spin yields after short tasks, kYieldTasksBelow). So every rank of a static
    // job of several ranks turns it off. A job of one rank (dynamic spawn) is not oversubscribed,
    // so Open MPI does not yield there; the variable is left alone, because Open MPI would pass
    // it on to the workers it spawns. The program's own setting wins.
    const char* job_size = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (job_size != nullptr && std::string_view(job_size) != "1" && !spawned_by_a_pool()) {
      setenv(kYieldVariable, "0", /*overwrite=*/0);
    }
    check(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    g_we_initialized = true;
    std::atexit(finalize_at_exit);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_MULTIPLE) {
    throw std::runtime_error(
        "cfutures' MPI pools call MPI from their own threads and need MPI_THREAD_MULTIPLE; this "
        "MPI library gave level " +
        std::to_string(provided) +
        (initialized ? " (initialize MPI with MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...))"
                     : ""));
  }
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

void serve_or_return(int* argc, char*** argv) {
  // A process pool's spawn worker runs this program too, with the parent's environment: it is
  // not an MPI rank (cf::serve_if_worker serves it).
  if (process::is_spawned_worker()) return;
  initialize(argc, argv);
  MPI_Comm parent = MPI_COMM_NULL;
  check(MPI_Comm_get_parent(&parent), "MPI_Comm_get_parent");
  if (parent != MPI_COMM_NULL) {
    if (!spawned_by_a_pool()) return;  // a child the program spawned itself
    serve_and_end(parent, /*one_session=*/true);
  }
  if (world_size() == 1) return;
  {
    std::lock_guard lock(g_mu);
    if (!g_world_error.empty()) throw std::runtime_error(g_world_error);
    if (g_world_set_up) return;  // rank 0, already set up
    g_world_set_up = true;
  }
  MPI_Comm comm = MPI_COMM_NULL;
  check(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  if (world_rank() != 0) serve_and_end(comm, /*one_session=*/false);
  std::vector<std::unique_ptr<Member>> members;
  try {
    members = connect_members(comm, 0, world_size(), /*inter=*/false);
  } catch (const std::exception& e) {
    MPI_Comm_free(&comm);
    std::lock_guard lock(g_mu);
    g_world_error = std::string("setting up the static MPI worker ranks failed: ") + e.what();
    throw std::runtime_error(g_world_error);
  }
  {
    std::lock_guard lock(g_mu);
    g_static = std::move(members);
    g_world = comm;
  }
  // If the program finalizes MPI itself, the serving ranks are released first.
  int key = MPI_KEYVAL_INVALID;
  check(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, release_at_finalize, &key, nullptr),
        "MPI_Comm_create_keyval");
  check(MPI_Comm_set_attr(MPI_COMM_SELF, key, nullptr), "MPI_Comm_set_attr");
}

std::unique_ptr<Ranks> lease_static(std::size_t count) {
  if (world_size() == 1) return nullptr;
  std::lock_guard lock(g_mu);
  std::vector<Member*> free;
  for (auto& m : g_static) {
    if (m->in_use || m->dead) continue;
    // A rank that died since the last pool closed its connection: not lent again. (Reading its
    // connection here is safe: no pool holds it.)
    bool rang = false;
    if (!m->bell.listen(&rang)) {
      m->dead = true;
      note_dead_rank();
      continue;
    }
    free.push_back(m.get());
  }
  if (free.empty()) {
    throw std::runtime_error(
        "no free worker rank in this MPI world: every one is in use by another MPIPoolExecutor "
        "or has died");
  }
  if (count == 0) count = free.size();
  if (count > free.size()) {
    throw std::invalid_argument("max_workers is " + std::to_string(count) + " but only " +
                                std::to_string(free.size()) +
                                " worker ranks are free (mpiexec -n N gives N - 1)");
  }
  free.resize(count);
  for (Member* m : free) m->in_use = true;
  return std::make_unique<StaticRanks>(std::move(free));
}

std::unique_ptr<Ranks> spawn(std::size_t count) { return std::make_unique<SpawnedRanks>(count); }

std::unique_ptr<Ranks> comm_ranks(MPI_Comm comm, int root) {
  initialize(nullptr, nullptr);
  int size = 0;
  check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  if (root < 0 || root >= size) {
    throw std::invalid_argument("root " + std::to_string(root) +
                                " is not a rank of the communicator (size " + std::to_string(size) +
                                ")");
  }
  MPI_Comm dup = MPI_COMM_NULL;
  check(MPI_Comm_dup(comm, &dup), "MPI_Comm_dup");
  int rank = 0;
  MPI_Comm_rank(dup, &rank);
  if (rank == root) {
    try {
      auto members = connect_members(dup, root, size, /*inter=*/false);
      return std::make_unique<CommRanks>(dup, std::move(members));
    } catch (...) {
      MPI_Comm_free(&dup);
      throw;
    }
  }
  serve_client(dup, root, rank, /*one_session=*/false);
  MPI_Comm_free(&dup);
  return nullptr;
}

}  // namespace concurrent::futures::detail::mpi
