// cf::MPIPoolExecutor (docs/reference.md §4.3) on real MPI ranks under mpiexec.
//
// CTest runs this program with `mpiexec -n 3` and `-n 5` (static ranks: rank 0 runs the tests,
// the others serve from mpi::serve_if_worker), with `-n 1` (the pool spawns its workers), and
// with `--enable-recovery` for the tests of a dying rank (tests/CMakeLists.txt). Every wait is
// bounded (kDeadlock) and every run has a CTest timeout.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>
#include <concurrent/futures/mpi.hpp>

#include "infinite_range.hpp"
#include "mpi/link.hpp"
#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
using ::testing::HasSubstr;

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// --- what runs on the workers ---------------------------------------------------------------

int square(int x) { return x * x; }
int rank_of_worker() {
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}
int pid_of_worker() { return static_cast<int>(getpid()); }
std::string greet(std::string name, int times) {
  std::string s;
  for (int i = 0; i < times; ++i) s += "hello " + name + ";";
  return s;
}
int fail_with(int code) { throw std::out_of_range("bad index " + std::to_string(code)); }
long add(long a, long b) { return a + b; }
void nothing() {}
int sleep_then(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int sleep_then_pid(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return static_cast<int>(getpid());
}
std::vector<char> make_bytes(std::size_t n) {
  std::vector<char> v(n);
  for (std::size_t i = 0; i < n; i += 4096) v[i] = static_cast<char>(i / 4096);
  if (n > 0) v[n - 1] = 'z';
  return v;
}
std::size_t checksum(const std::vector<char>& v) {
  std::size_t sum = v.size();
  for (std::size_t i = 0; i < v.size(); i += 4096) sum += static_cast<unsigned char>(v[i]);
  return sum + static_cast<unsigned char>(v.empty() ? 0 : v.back());
}

int g_initialized = 0;
void set_initialized() { g_initialized = 42; }
int read_initialized() { return g_initialized; }
void initializer_that_throws() { throw std::runtime_error("no database here"); }

struct InsufficientFunds : std::runtime_error {
  using std::runtime_error::runtime_error;
};
inline const bool insufficient_funds_registered = cf::register_exception<InsufficientFunds>();
int overdraw(int cents) { throw InsufficientFunds("short by " + std::to_string(cents)); }

// Code written against the abstract interface.
int sum_of_squares(cf::Executor& ex, int n) {
  std::vector<cf::Future<int>> fs;
  for (int i = 1; i <= n; ++i) fs.push_back(ex.submit(square, i));
  int total = 0;
  for (auto& f : fs) total += f.result(kDeadlock);
  return total;
}

cf::Future<int> co_sum(cf::MPIPoolExecutor& ex) {
  const int a = co_await ex.submit(square, 3);
  const int b = co_await ex.submit(square, 4);
  co_return a + b;
}

// CPU seconds (user + system) a process has used, from /proc.
double cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::size_t expected_workers() {
  return world_size() > 1 ? static_cast<std::size_t>(world_size() - 1) : 2;
}

cf::MPIPoolOptions pool_options() {
  cf::MPIPoolOptions options;
  if (world_size() == 1) options.max_workers = 2;
  return options;
}

// --- the executor ------------------------------------------------------------------------------

TEST(MPIPool, SubmitRunsOnWorkerRanksAndReturnsTheValue) {
  cf::MPIPoolExecutor ex(pool_options());
  EXPECT_EQ(ex.max_workers(), expected_workers());
  EXPECT_EQ(ex.submit(square, 7).result(kDeadlock), 49);
  EXPECT_EQ(ex.submit(greet, std::string("mpi"), 2).result(kDeadlock), "hello mpi;hello mpi;");
  EXPECT_EQ(ex.submit(add, 40L, 2L).result(kDeadlock), 42L);
  ex.submit(nothing).result(kDeadlock);
  if (world_size() > 1) {
    std::set<int> ranks;
    for (int i = 0; i < 50; ++i) ranks.insert(ex.submit(rank_of_worker).result(kDeadlock));
    EXPECT_EQ(ranks.count(0), 0u) << "rank 0 is the client, never a worker";
    const auto listed = ex.worker_ranks();
    EXPECT_EQ(std::set<int>(listed.begin(), listed.end()).size(), expected_workers());
  }
  EXPECT_NE(ex.submit(pid_of_worker).result(kDeadlock), static_cast<int>(getpid()));
}

TEST(MPIPool, ManyTasksAllComeBackRight) {
  cf::MPIPoolExecutor ex(pool_options());
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 2000; ++i) fs.push_back(ex.submit(square, i));
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(fs[i].result(kDeadlock), i * i);
}

TEST(MPIPool, EveryWorkerRankTakesWork) {
  cf::MPIPoolExecutor ex(pool_options());
  std::vector<cf::Future<int>> fs;
  for (std::size_t i = 0; i < 4 * expected_workers(); ++i)
    fs.push_back(ex.submit(sleep_then_pid, 50));
  std::set<int> seen;
  for (auto& f : fs) seen.insert(f.result(kDeadlock));
  EXPECT_EQ(seen.size(), expected_workers()) << "50 ms tasks: no worker rank may sit idle";
}

TEST(MPIPool, ExceptionsCrossRanks) {
  cf::MPIPoolExecutor ex(pool_options());
  auto f = ex.submit(fail_with, 7);
  try {
    f.result(kDeadlock);
    FAIL() << "expected std::out_of_range";
  } catch (const std::out_of_range& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad index 7"));
  }
  try {
    ex.submit(overdraw, 250).result(kDeadlock);
    FAIL() << "expected InsufficientFunds";
  } catch (const InsufficientFunds& e) {
    EXPECT_THAT(e.what(), HasSubstr("short by 250"));
  }
  EXPECT_EQ(ex.submit(square, 3).result(kDeadlock), 9) << "the pool goes on";
}

TEST(MPIPool, MapKeepsOrderAtEveryChunksize) {
  cf::MPIPoolExecutor ex(pool_options());
  std::vector<int> in(3000);
  std::iota(in.begin(), in.end(), 0);
  for (std::size_t chunksize : {std::size_t{1}, std::size_t{7}, std::size_t{1000}}) {
    std::vector<int> out;
    for (int v : ex.map(square, in, cf::MapOptions{.chunksize = chunksize})) out.push_back(v);
    ASSERT_EQ(out.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], in[i] * in[i]) << i;
  }
}

TEST(MPIPool, MapUnorderedStarmapAndBuffersizeOverAnEndlessInput) {
  cf::MPIPoolExecutor ex(pool_options());
  std::vector<int> in{1, 2, 3, 4, 5, 6};
  std::multiset<int> got;
  for (auto [index, f] : ex.map_unordered(square, in)) got.insert(f.result(kDeadlock));
  EXPECT_EQ(got, (std::multiset<int>{1, 4, 9, 16, 25, 36}));

  std::vector<std::tuple<long, long>> pairs{{1, 2}, {3, 4}, {5, 6}};
  std::vector<long> sums;
  for (long s : ex.starmap(add, pairs)) sums.push_back(s);
  EXPECT_EQ(sums, (std::vector<long>{3, 7, 11}));

  long count = 0;
  for (long v : ex.map(add, cftest::Naturals{}, cftest::Naturals{},
                       cf::MapOptions{.chunksize = 10, .buffersize = 4})) {
    ASSERT_EQ(v, 2 * count);
    if (++count == 500) break;
  }
}

TEST(MPIPool, WaitAsCompletedWhenAllThenAndCoAwait) {
  cf::MPIPoolExecutor ex(pool_options());
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(ex.submit(square, i));
  auto done = cf::wait(fs, kDeadlock, cf::ReturnWhen::all_completed);
  EXPECT_EQ(done.done.size(), 20u);
  int n = 0;
  for (auto f : cf::as_completed(fs, kDeadlock)) {
    f.result();
    ++n;
  }
  EXPECT_EQ(n, 20);
  auto both = cf::when_all(ex.submit(square, 2), ex.submit(square, 3));
  EXPECT_EQ(both.result(kDeadlock), std::make_tuple(4, 9));
  // then(executor, fn) runs fn on a worker with the value, on the concrete pool and through
  // Executor&.
  auto chained = ex.submit(square, 5).then(ex, square);
  EXPECT_EQ(chained.result(kDeadlock), 625);
  cf::Executor& abstract = ex;
  EXPECT_EQ(ex.submit(square, 2).then(abstract, square).result(kDeadlock), 16);
  EXPECT_EQ(co_sum(ex).result(kDeadlock), 25);
}

TEST(MPIPool, CodeWrittenAgainstExecutorRunsUnchanged) {
  cf::MPIPoolExecutor ex(pool_options());
  EXPECT_EQ(sum_of_squares(ex, 10), 385);
}

TEST(MPIPool, LargeValuesCrossBothWays) {
  cf::MPIPoolExecutor ex(pool_options());
  const std::size_t n = 64u << 20;
  std::vector<char> big = make_bytes(n);
  EXPECT_EQ(ex.submit(checksum, big).result(kDeadlock), checksum(big));
  std::vector<char> back = ex.submit(make_bytes, n).result(kDeadlock);
  EXPECT_EQ(back, big);
}

std::size_t shared_size(cf::SharedArray<int> a) { return a.size(); }
cf::SharedArray<int> make_shared_array(std::size_t n) { return cf::SharedArray<int>(n); }

// docs/reference.md, "Large values and cf::SharedArray": ranks may be on other hosts, so a shared
// array is refused both ways with a SerializationError that says so, and the pool goes on.
TEST(MPIPool, SharedArrayIsRefusedBothWaysWithASerializationError) {
  cf::MPIPoolExecutor ex(pool_options());
  const cf::SharedArray<int> a(16);
  const std::exception_ptr in = ex.submit(shared_size, a).exception(kDeadlock);
  ASSERT_TRUE(in != nullptr);
  EXPECT_THROW(std::rethrow_exception(in), cf::SerializationError);
  const std::exception_ptr out = ex.submit(make_shared_array, std::size_t{16}).exception(kDeadlock);
  ASSERT_TRUE(out != nullptr);
  EXPECT_THROW(std::rethrow_exception(out), cf::SerializationError);
  EXPECT_EQ(ex.submit(shared_size, cf::SharedArray<int>()).result(kDeadlock), 0u);  // no memfd
}

TEST(MPIPool, InitializerRunsOnEveryWorkerBeforeItsTasks) {
  cf::MPIPoolExecutor ex(cf::MPIPoolOptions{.max_workers = pool_options().max_workers,
                                            .initializer = set_initialized});
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(ex.submit(read_initialized));
  for (auto& f : fs) EXPECT_EQ(f.result(kDeadlock), 42);
}

TEST(MPIPool, AFailingInitializerBreaksThePool) {
  cf::MPIPoolExecutor ex(cf::MPIPoolOptions{.max_workers = pool_options().max_workers,
                                            .initializer = initializer_that_throws});
  auto f = ex.submit(square, 2);
  EXPECT_THROW(f.result(kDeadlock), cf::BrokenExecutor);
  try {
    ex.submit(square, 2).result(kDeadlock);
    FAIL() << "a broken pool takes nothing more";
  } catch (const cf::BrokenExecutor& e) {
    EXPECT_THAT(e.what(), HasSubstr("no database here"));
  }
}

TEST(MPIPool, ShutdownCancelsPendingFuturesAndRefusesMore) {
  cf::MPIPoolExecutor ex(pool_options());
  std::vector<cf::Future<int>> fs;
  // 200 ms tasks: with 50 ms ones, 40 submits on a loaded machine can take as long as the lot.
  for (int i = 0; i < 40; ++i) fs.push_back(ex.submit(sleep_then, 200));
  ex.shutdown(/*wait=*/true, /*cancel_futures=*/true);
  int cancelled = 0;
  for (auto& f : fs) {
    ASSERT_TRUE(f.done());
    if (f.cancelled()) {
      ++cancelled;
    } else {
      EXPECT_EQ(f.result(), 200);
    }
  }
  EXPECT_GT(cancelled, 0);
  EXPECT_THROW(ex.submit(square, 1), cf::ShutdownError);
}

// Open MPI's mpi_yield_when_idle as this process's MPI library uses it (read through MPI_T).
bool open_mpi_yields_when_idle() {
  int provided = 0;
  if (MPI_T_init_thread(MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
    throw std::runtime_error("MPI_T_init_thread failed");
  }
  int index = -1;
  MPI_T_cvar_handle handle = MPI_T_CVAR_HANDLE_NULL;
  int count = 0;
  alignas(8) unsigned char value[16] = {};  // a bool variable: its first byte
  // Every step checked: a read that failed would leave `value` false and pass for "no yield".
  const bool read = MPI_T_cvar_get_index("mpi_yield_when_idle", &index) == MPI_SUCCESS &&
                    MPI_T_cvar_handle_alloc(index, nullptr, &handle, &count) == MPI_SUCCESS &&
                    count == 1 && MPI_T_cvar_read(handle, value) == MPI_SUCCESS;
  if (handle != MPI_T_CVAR_HANDLE_NULL) MPI_T_cvar_handle_free(&handle);
  MPI_T_finalize();
  if (!read) throw std::runtime_error("cannot read the MPI_T variable mpi_yield_when_idle");
  return value[0] != 0;
}

// Whether this process's environment sets Open MPI's yield on idle probes.
bool yield_variable_is_set() { return std::getenv("OMPI_MCA_mpi_yield_when_idle") != nullptr; }

// No rank of a pool waits inside MPI (each spins briefly, then sleeps on its doorbell), so every
// rank of a static job turns off Open MPI's yield on each idle probe. On an oversubscribed host
// that yield handed the client's CPU to a computing rank, and let the two worker ranks of seed (b)
// share one CPU for whole maps (bench/RESULTS.md, ninth session). (Workers spawned by a pool keep
// Open MPI's choice: MPIPoolSpawn checks that.)
TEST(MPIPool, EveryStaticRankTurnsOffOpenMpisYieldOnIdleProbes) {
  if (world_size() == 1) GTEST_SKIP() << "static ranks only";
  cf::MPIPoolExecutor ex(pool_options());
  EXPECT_FALSE(open_mpi_yields_when_idle()) << "the client (rank 0)";
  EXPECT_FALSE(ex.submit(open_mpi_yields_when_idle).result(kDeadlock)) << "a worker rank";
}

TEST(MPIPool, IdleRanksAndAnIdleClientUseUnderFivePercentOfACpu) {
  cf::MPIPoolExecutor ex(pool_options());
  std::vector<int> pids;
  for (std::size_t i = 0; i < 4 * expected_workers(); ++i) {
    pids.push_back(ex.submit(pid_of_worker).result(kDeadlock));
  }
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  std::map<int, double> worker_before;
  for (int pid : pids) worker_before[pid] = cpu_seconds(pid);
  const double seconds = 10.0;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  const double client = (secs(after.ru_utime) + secs(after.ru_stime) - secs(before.ru_utime) -
                         secs(before.ru_stime)) /
                        seconds;
  EXPECT_LT(client, 0.05) << "the client's share of a CPU while idle";
  for (int pid : pids) {
    EXPECT_LT((cpu_seconds(pid) - worker_before[pid]) / seconds, 0.05)
        << "worker process " << pid << " while idle";
  }
  EXPECT_EQ(ex.submit(square, 6).result(kDeadlock), 36) << "and it wakes up";
}

// The link layer on this rank alone (MPI_COMM_SELF). A worker rank whose completed sends gave
// their buffers back to malloc let it give the top of its heap back and take it again for the
// next reply: a brk and fresh pages per reply. The buffer goes to the next message through the
// codec's spare blocks, which are off under AddressSanitizer.
TEST(MPILink, ACompletedSendsBufferGoesToTheNextMessage) {
  if (!cf::detail::codec::keeps_spare_blocks()) {
    GTEST_SKIP() << "spare blocks are off under AddressSanitizer";
  }
  namespace link = cf::detail::mpi;
  constexpr int kTag = 77;
  link::Sends sends;
  const std::byte* first = nullptr;
  // Blocks of the buffer's size taken after each send: memory the send gave back would be
  // handed out again here, and the next message would need other memory.
  std::vector<std::unique_ptr<std::byte[]>> fillers;
  for (int i = 1; i <= 3; ++i) {
    const std::vector<std::byte> payload(40'000, static_cast<std::byte>(i));
    sends.start(MPI_COMM_SELF, 0, kTag,
                link::Header{.type = 1, .id = static_cast<std::uint64_t>(i)}, payload);
    const std::byte* buffer = sends.active().back().bytes.data();
    std::vector<std::byte> got(sizeof(link::Header) + payload.size());
    ASSERT_EQ(MPI_Recv(got.data(), static_cast<int>(got.size()), MPI_BYTE, 0, kTag, MPI_COMM_SELF,
                       MPI_STATUS_IGNORE),
              MPI_SUCCESS);
    const auto deadline = std::chrono::steady_clock::now() + kDeadlock;
    while (!sends.done()) ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    // What arrived is this message, header and payload, not the one before it.
    EXPECT_EQ(link::read_header(got).id, static_cast<std::uint64_t>(i));
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), got.begin() + sizeof(link::Header)));
    for (int k = 0; k < 4; ++k) fillers.push_back(std::make_unique<std::byte[]>(got.size()));
    if (i == 1) {
      first = buffer;
    } else {
      EXPECT_EQ(buffer, first) << "message " << i << " was copied into a new buffer";
    }
  }
}

// Spawned workers, with one pool: Open MPI 4.1 with PMIx 4.2 (Debian 12) now and then hangs in
// MPI_Comm_spawn itself (openpmix issue 2735), so CTest's mpi.spawn spawns once.
TEST(MPIPoolSpawn, OneSpawnedPoolDoesTheWholeInterface) {
  if (world_size() != 1) GTEST_SKIP() << "spawned workers only";
  cf::MPIPoolExecutor ex(2);
  EXPECT_EQ(ex.max_workers(), 2u);
  EXPECT_EQ(ex.submit(square, 7).result(kDeadlock), 49);
  std::set<int> pids;
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(ex.submit(sleep_then_pid, 50));
  for (auto& f : fs) pids.insert(f.result(kDeadlock));
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_EQ(pids.count(static_cast<int>(getpid())), 0u);
  // The variable is left alone in a job of one rank and in the workers it spawns.
  EXPECT_FALSE(yield_variable_is_set()) << "the client";
  EXPECT_FALSE(ex.submit(yield_variable_is_set).result(kDeadlock)) << "a spawned worker";
  std::vector<int> in(3000);
  std::iota(in.begin(), in.end(), 0);
  std::size_t i = 0;
  for (int v : ex.map(square, in, cf::MapOptions{.chunksize = 100})) {
    ASSERT_EQ(v, in[i] * in[i]);
    ++i;
  }
  EXPECT_EQ(i, in.size());
  EXPECT_THROW(ex.submit(fail_with, 3).result(kDeadlock), std::out_of_range);
  EXPECT_EQ(ex.submit(square, 5).then(ex, square).result(kDeadlock), 625);
  ex.shutdown();
  EXPECT_THROW(ex.submit(square, 1), cf::ShutdownError);
}

TEST(MPIPoolStatic, PoolsOneAfterAnotherReuseTheRanks) {
  if (world_size() == 1) GTEST_SKIP() << "static ranks only";
  for (int round = 0; round < 3; ++round) {
    cf::MPIPoolExecutor ex;
    EXPECT_EQ(ex.max_workers(), expected_workers());
    EXPECT_EQ(ex.submit(square, round).result(kDeadlock), round * round);
  }
}

TEST(MPIPoolStatic, TwoPoolsAtOnceShareTheRanksOut) {
  if (world_size() < 3) GTEST_SKIP() << "needs 2 worker ranks";
  cf::MPIPoolExecutor one(1);
  EXPECT_EQ(one.max_workers(), 1u);
  cf::MPIPoolExecutor rest;
  EXPECT_EQ(rest.max_workers(), expected_workers() - 1);
  EXPECT_NE(one.submit(rank_of_worker).result(kDeadlock),
            rest.submit(rank_of_worker).result(kDeadlock));
  try {
    cf::MPIPoolExecutor none;
    FAIL() << "every rank is in use";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no free worker rank"));
  }
}

TEST(MPIPoolStatic, AskingForMoreRanksThanThereAreIsAnError) {
  if (world_size() == 1) GTEST_SKIP() << "static ranks only";
  try {
    cf::MPIPoolExecutor ex(expected_workers() + 1);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("mpiexec -n N gives N - 1"));
  }
}

// Over 2 GiB in one value: MPI counts are ints, so the payload goes in parts (its own CTest run,
// mpi.large: it needs about 9 GB of memory for a moment).
std::size_t size_and_ends(const std::string& s) {
  return s.size() + static_cast<unsigned char>(s.front()) + static_cast<unsigned char>(s.back());
}
TEST(MPIPoolLarge, AValueOverTwoGiBCrosses) {
  if (std::getenv("CF_TEST_MPI_LARGE") == nullptr) GTEST_SKIP() << "run by mpi.large only";
  cf::MPIPoolExecutor ex(1);
  std::string big((std::size_t{1} << 31) + 4096 + 7, 'm');
  big.front() = 'a';
  big.back() = 'z';
  EXPECT_EQ(ex.submit(size_and_ends, big).result(std::chrono::minutes(5)), big.size() + 'a' + 'z');
}

// Run with `mpiexec --enable-recovery` only (label mpi_recovery): without it Open MPI ends the
// whole job when a rank dies.
void die_now() { std::raise(SIGKILL); }
TEST(MPIPoolDeath, ARankThatDiesBreaksThePoolAndNothingHangs) {
  if (std::getenv("CF_TEST_MPI_RECOVERY") == nullptr) GTEST_SKIP() << "needs --enable-recovery";
  cf::MPIPoolExecutor ex(pool_options());
  EXPECT_EQ(ex.submit(square, 2).result(kDeadlock), 4);
  auto dying = ex.submit(die_now);
  try {
    dying.result(kDeadlock);
    FAIL() << "expected BrokenExecutor";
  } catch (const cf::BrokenExecutor& e) {
    EXPECT_THAT(e.what(), HasSubstr("ended"));
  }
  EXPECT_THROW(ex.submit(square, 1), cf::BrokenExecutor);
}

// The rank goes 300 ms after its reply: between pools.
int die_soon() {
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::raise(SIGKILL);
  }).detach();
  return rank_of_worker();
}
TEST(MPIPoolDeath, ARankThatDiesBetweenPoolsIsNotLentAgain) {
  if (std::getenv("CF_TEST_MPI_RECOVERY") == nullptr) GTEST_SKIP() << "needs --enable-recovery";
  if (world_size() < 3) GTEST_SKIP() << "needs 2 worker ranks";
  int doomed = -1;
  {
    cf::MPIPoolExecutor ex(1);
    doomed = ex.submit(die_soon).result(kDeadlock);
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the rank is gone by now
  cf::MPIPoolExecutor ex;
  for (int i = 0; i < 20; ++i) EXPECT_NE(ex.submit(rank_of_worker).result(kDeadlock), doomed);
}

}  // namespace

int main(int argc, char** argv) {
  cf::mpi::serve_if_worker(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
