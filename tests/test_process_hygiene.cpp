// Process hygiene of cf::ProcessPoolExecutor (docs/reference.md §4.2: "Workers never outlive the
// parent, are reaped (no zombies), and inherit none of the parent's file descriptors beyond their
// own channel"), for each start method: the parent SIGKILLed, zombies, descriptor and memory leaks
// over a pool's life and over many worker replacements, a crash with a large payload in
// flight, a stream of crashing tasks under replace_worker, SIGPIPE, and spawn without
// serve_if_worker.
//
// Some checks need a parent process that can be killed, or a main() without serve_if_worker:
// this program re-executes itself with CFTEST_SCENARIO set, and main() runs that scenario
// instead of the tests (see the end of the file).
//
// The full soak (10,000 worker replacements) runs with CFUTURES_SOAK=1; by default 1,000.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <concurrent/futures.hpp>

#include "concurrent/futures/detail/codec.hpp"
#include "process_test_util.hpp"
#include "scenario_process.hpp"
#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
using proctest::Clock;
using proctest::ProcessGate;
using proctest::square;

constexpr const char* kGateEnv = "CFTEST_GATE_DIR";
// Set by a scenario's parent before it makes its pool, so that its spawned workers (which
// inherit the environment) know they are not the parent.
constexpr const char* kSpawnedEnv = "CFTEST_SPAWNED";

// --- tasks ----------------------------------------------------------------------------------

std::size_t abort_after_receiving(std::vector<std::uint8_t> data) {
  if (!data.empty()) std::abort();
  return data.size();
}

int crash_every_tenth(int i) {
  if (i % 10 == 9) std::abort();
  return i * 3;
}

std::vector<std::string> worker_fds() { return proctest::open_fds_here(); }

std::size_t length_of(std::string s) { return s.size(); }

// --- running this program as a child --------------------------------------------------------

using scenario::describe_status;
using scenario::ScenarioProcess;

// --- descriptors ----------------------------------------------------------------------------

std::string join(const std::vector<std::string>& lines) {
  std::string all;
  for (const std::string& l : lines) all += "  " + l + "\n";
  return all;
}

// The pool's large payloads live in memfds named so (see detail/codec.hpp).
constexpr const char* kPayloadName = "cfutures-payload";

// This process's descriptors once the sender's idle segments are let go: a sender keeps a few
// (open and mapped) for its next large payload on purpose, see detail/codec.hpp.
std::vector<std::string> fds_without_idle_segments() {
  cf::detail::codec::release_idle_segments();
  return proctest::open_fds();
}

void expect_no_payload_left() {
  cf::detail::codec::release_idle_segments();
  EXPECT_EQ(proctest::count_fds_to(kPayloadName), 0u) << join(proctest::open_fds());
  EXPECT_EQ(proctest::count_mappings_of(kPayloadName), 0u) << "a payload is still mapped";
}

bool soak() {
  const char* s = std::getenv("CFUTURES_SOAK");
  return s != nullptr && std::string_view(s) == "1";
}

// --- fixture --------------------------------------------------------------------------------

class ProcessHygieneTest : public proctest::StartMethodTest {
 protected:
  const char* method() const { return proctest::method_name(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessHygieneTest, proctest::kAllMethods,
                         proctest::MethodParamName());

// --- workers never outlive the parent -------------------------------------------------------

TEST_P(ProcessHygieneTest, WorkersAreGoneWithin5sOfTheParentBeingSigkilled) {
  ProcessGate gate;  // the child's tasks report to us and block here
  ScenarioProcess child(std::string("parent-killed:") + method(),
                        {.env = {std::string(kGateEnv) + "=" + gate.dir()}});
  const auto server_line = child.read_line_starting("server ", kDeadlock);
  ASSERT_TRUE(server_line.has_value()) << "the child did not start its pool";
  const int server = std::atoi(server_line->c_str() + std::strlen("server "));
  std::vector<int> pids = gate.wait_started(2);
  ASSERT_EQ(pids.size(), 2u) << "the child's tasks did not start";
  if (server > 0) pids.push_back(server);
  ASSERT_EQ(kill(child.pid(), SIGKILL), 0);
  const int status = child.wait_or_kill(kDeadlock);
  ASSERT_TRUE(WIFSIGNALED(status)) << describe_status(status);
  const auto t0 = Clock::now();
  EXPECT_TRUE(proctest::all_ended_within(pids, 5s)) << "workers outlived their parent";
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  RecordProperty("workers_gone_ms", static_cast<int>(took.count()));
}

// --- no zombies, no leaked descriptors or mappings ------------------------------------------

TEST_P(ProcessHygieneTest, DeadWorkersAreReapedWhileThePoolLives) {
  cf::ProcessPoolOptions o = options(2);
  o.on_worker_crash = cf::CrashPolicy::replace_worker;
  cf::ProcessPoolExecutor ex(o);
  // Whoever its parent is (this process or the fork server), the dead worker must be reaped:
  // its /proc entry disappears.
  std::vector<int> crashed;
  for (int i = 0; i < 3; ++i) {
    ProcessGate gate;
    (void)ex.submit(&proctest::report_then_abort, gate.dir()).exception(kDeadlock);
    const auto started = gate.wait_started(1, 1s);
    if (!started.empty()) crashed.push_back(started[0]);
  }
  ASSERT_EQ(crashed.size(), 3u);
  for (const int dead : crashed) {
    EXPECT_TRUE(proctest::eventually([&] { return !proctest::proc_stat(dead).has_value(); }))
        << "worker " << dead << " was not reaped: state "
        << (proctest::proc_stat(dead) ? proctest::proc_stat(dead)->state : '-');
  }
}

TEST_P(ProcessHygieneTest, NoZombieOrChildIsLeftAfterThePoolIsDestroyed) {
  std::vector<int> seen;
  int server = -1;
  {
    cf::ProcessPoolOptions o = options(2);
    o.on_worker_crash = cf::CrashPolicy::replace_worker;
    o.task_timeout = std::chrono::milliseconds(500);
    cf::ProcessPoolExecutor ex(o);
    server = ex.forkserver_pid();
    for (int i = 0; i < 4; ++i) seen.push_back(ex.submit(&proctest::worker_pid).result(kDeadlock));
    (void)ex.submit(&proctest::crash_abort).exception(kDeadlock);       // a crash
    (void)ex.submit(&proctest::sleep_ms, 20'000).exception(kDeadlock);  // a timeout kill
    for (int i = 0; i < 4; ++i) seen.push_back(ex.submit(&proctest::worker_pid).result(kDeadlock));
    const auto live = ex.worker_pids();
    seen.insert(seen.end(), live.begin(), live.end());
  }
  EXPECT_FALSE(proctest::has_zombie_child());
  EXPECT_FALSE(proctest::has_children()) << "a child process outlived the pool";
  for (const int pid : seen) EXPECT_TRUE(proctest::process_ended(pid)) << "worker " << pid;
  if (server > 0) {
    EXPECT_FALSE(proctest::proc_stat(server).has_value()) << "fork server " << server;
  }
}

TEST_P(ProcessHygieneTest, DescriptorCountIsUnchangedAfterAPoolsWholeLife) {
  const auto before = fds_without_idle_segments();
  {
    cf::ProcessPoolOptions o = options(2);
    o.on_worker_crash = cf::CrashPolicy::replace_worker;
    cf::ProcessPoolExecutor ex(o);
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < 20; ++i) futures.push_back(ex.submit(&square, i));
    for (auto& f : futures) (void)f.result(kDeadlock);
    // Payloads above the shared-memory threshold, both ways.
    const std::string big(std::size_t{1} << 20, 'x');
    EXPECT_EQ(ex.submit([](std::string s) { return s + s; }, big).result(kDeadlock).size(),
              big.size() * 2);
    (void)ex.submit(&proctest::crash_abort).exception(kDeadlock);
    std::vector<int> mapped;
    for (int v : ex.map(&square, std::vector<int>{1, 2, 3, 4, 5}, cf::MapOptions{.chunksize = 2})) {
      mapped.push_back(v);
    }
    EXPECT_EQ(mapped.size(), 5u);
  }
  const auto after = fds_without_idle_segments();
  EXPECT_EQ(after.size(), before.size()) << "before:\n"
                                         << join(before) << "after:\n"
                                         << join(after);
  expect_no_payload_left();
}

TEST_P(ProcessHygieneTest, ManyWorkerReplacementsLeakNothing) {
  if (GetParam() == cf::StartMethod::fork) {
    GTEST_SKIP() << "max_tasks_per_child is refused with fork";
  }
  // 10,000 replacements (the figure) under CFUTURES_SOAK=1; by default fewer, so that
  // the suite stays fast (spawn execs the whole test program for every worker).
  const bool spawn = GetParam() == cf::StartMethod::spawn;
  const int replacements = soak() ? 10'000 : (spawn ? 300 : 1'000);
  cf::ProcessPoolOptions o = options(2);
  o.max_tasks_per_child = 1;
  const auto fds_before = fds_without_idle_segments();
  long rss_warm = 0;
  long rss_after = 0;
  const auto t0 = Clock::now();
  {
    cf::ProcessPoolExecutor ex(o);
    auto run_batch = [&](int count) {
      std::vector<cf::Future<int>> futures;
      for (int i = 0; i < count; ++i) futures.push_back(ex.submit(&square, i));
      for (int i = 0; i < count; ++i) {
        ASSERT_EQ(futures[static_cast<std::size_t>(i)].result(kDeadlock), i * i);
      }
    };
    run_batch(100);  // warm-up: first-use allocations are not leaks
    rss_warm = proctest::vm_rss_kib();
    for (int done = 100; done < replacements; done += 100) {
      run_batch(std::min(100, replacements - done));
      if (HasFatalFailure()) return;
    }
    rss_after = proctest::vm_rss_kib();
    // Each worker leaves after its task: none is left over (and none was started idle).
    EXPECT_TRUE(proctest::eventually([&] { return ex.worker_pids().empty(); }))
        << ex.worker_pids().size() << " workers left";
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  RecordProperty("replacements", replacements);
  RecordProperty("milliseconds", static_cast<int>(took.count()));
  std::cout << "[          ] " << replacements << " worker replacements (" << method() << ") in "
            << took.count() << " ms; VmRSS " << rss_warm << " -> " << rss_after << " KiB\n";
  const auto fds_after = fds_without_idle_segments();
  EXPECT_EQ(fds_after.size(), fds_before.size()) << join(fds_after);
  EXPECT_FALSE(proctest::has_zombie_child());
  if (!proctest::kAsan && !proctest::kTsan) {
    // Sanitizer runtimes hold freed memory (quarantine, shadow), so RSS says nothing there.
    EXPECT_LT(rss_after - rss_warm, 8 * 1024) << "VmRSS grew by " << (rss_after - rss_warm)
                                              << " KiB over " << replacements << " replacements";
  }
}

// --- crashes ----------------------------------------------------------------------------------

TEST_P(ProcessHygieneTest, CrashWithA65MiBPayloadInFlightIsHandledAndLeaksNothing) {
  const auto before = fds_without_idle_segments();
  for (const auto policy : {cf::CrashPolicy::break_pool, cf::CrashPolicy::replace_worker}) {
    cf::ProcessPoolOptions o = options(1);
    o.on_worker_crash = policy;
    cf::ProcessPoolExecutor ex(o);
    const std::vector<std::uint8_t> big(std::size_t{65} << 20, 7);
    auto f = ex.submit(&abort_after_receiving, big);
    const std::exception_ptr e = f.exception(kDeadlock);
    EXPECT_TRUE(proctest::holds<cf::BrokenProcessPool>(e)) << proctest::what_of(e);
    EXPECT_TRUE(proctest::what_of(e).find("SIGABRT") != std::string::npos) << proctest::what_of(e);
    if (policy == cf::CrashPolicy::replace_worker) {
      // The next large payload goes through a new worker.
      const std::vector<std::uint8_t> small_again(std::size_t{1} << 20, 1);
      EXPECT_EQ(ex.submit([](std::vector<std::uint8_t> v) { return v.size(); }, small_again)
                    .result(kDeadlock),
                small_again.size());
    } else {
      EXPECT_THROW((void)ex.submit(&square, 1), cf::BrokenProcessPool);
    }
  }
  const auto after = fds_without_idle_segments();
  EXPECT_EQ(after.size(), before.size()) << "before:\n"
                                         << join(before) << "after:\n"
                                         << join(after);
  expect_no_payload_left();
}

TEST_P(ProcessHygieneTest, ReplaceWorkerUnderAStreamOfCrashesLosesNoNormalResult) {
  cf::ProcessPoolOptions o = options(4);
  o.on_worker_crash = cf::CrashPolicy::replace_worker;
  cf::ProcessPoolExecutor ex(o);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(ex.submit(&crash_every_tenth, i));
  std::size_t crashed = 0;
  for (int i = 0; i < 200; ++i) {
    auto& f = futures[static_cast<std::size_t>(i)];
    const std::exception_ptr e = f.exception(kDeadlock);
    if (i % 10 == 9) {
      EXPECT_TRUE(proctest::holds<cf::BrokenProcessPool>(e)) << "task " << i;
      ++crashed;
    } else {
      ASSERT_EQ(e, nullptr) << "normal task " << i << " lost: " << proctest::what_of(e);
      EXPECT_EQ(f.result(), i * 3);
    }
  }
  EXPECT_EQ(crashed, 20u);
  EXPECT_EQ(ex.submit(&square, 12).result(kDeadlock), 144);
}

// --- descriptors a worker inherits ------------------------------------------------------------

TEST_P(ProcessHygieneTest, WorkersInheritNoDescriptorButTheirChannel) {
  // Descriptors without close-on-exec, which a careless fork or exec would hand down.
  const int null_fd = open("/dev/null", O_RDONLY);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  ASSERT_GE(null_fd, 0);
  std::vector<std::string> fds;
  {
    cf::ProcessPoolExecutor ex(options(1));
    fds = ex.submit(&worker_fds).result(kDeadlock);
  }
  close(null_fd);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  std::size_t sockets = 0;
  for (const std::string& fd : fds) {
    const int number = std::atoi(fd.c_str());
    if (number <= 2) continue;
    if (fd.find("socket:") != std::string::npos) {
      ++sockets;
    } else {
      ADD_FAILURE() << "the worker inherited " << fd;
    }
  }
  EXPECT_EQ(sockets, 1u) << join(fds);
}

// --- SIGPIPE ----------------------------------------------------------------------------------

TEST_P(ProcessHygieneTest, SigpipeNeverKillsTheParent) {
  // The child writes to dead workers (and a dead fork server) with SIGPIPE at its default
  // action; it must survive and see every future end.
  ScenarioProcess child(std::string("sigpipe:") + method());
  const std::string output = child.read_all(kDeadlock);
  const int status = child.wait_or_kill(kDeadlock);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status) << "\n"
                                                             << output;
  EXPECT_NE(output.find("sigpipe scenario ok"), std::string::npos) << output;
}

// --- spawn without serve_if_worker --------------------------------------------------------------

TEST(ProcessSpawnWithoutServeTest, WorkerReachingAPoolGivesBrokenProcessPoolNamingTheFix) {
  // The spawned copy of a program whose main lacks serve_if_worker runs main again and makes a
  // pool of its own.
  ScenarioProcess child("spawn-without-serve:pool");
  const std::string output = child.read_all(kDeadlock);
  const int status = child.wait_or_kill(kDeadlock);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status) << "\n"
                                                             << output;
  EXPECT_NE(output.find("BrokenProcessPool"), std::string::npos) << output;
  EXPECT_NE(output.find("serve_if_worker"), std::string::npos) << output;
}

TEST(ProcessSpawnWithoutServeTest, WorkerEndingWithoutServingGivesBrokenProcessPoolNamingTheFix) {
  // The spawned copy does something else and exits without ever serving.
  ScenarioProcess child("spawn-without-serve:exit");
  const std::string output = child.read_all(kDeadlock);
  const int status = child.wait_or_kill(kDeadlock);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status) << "\n"
                                                             << output;
  EXPECT_NE(output.find("serve_if_worker"), std::string::npos) << output;
}

TEST(ProcessSpawnWithoutServeTest, WorkerThatNeverServesGivesBrokenProcessPoolWithinSeconds) {
  if (!soak()) {
    GTEST_SKIP() << "waits out the pool's start-up timeout (10 s); runs with CFUTURES_SOAK=1";
  }
  ScenarioProcess child("spawn-without-serve:hang");
  const std::string output = child.read_all(kDeadlock);
  const int status = child.wait_or_kill(kDeadlock);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status) << "\n"
                                                             << output;
  EXPECT_NE(output.find("serve_if_worker"), std::string::npos) << output;
}

// --- scenarios: what the re-executed program runs ----------------------------------------------

// Makes a pool with two workers blocked on the test's gate, says where its fork server is,
// then waits to be killed.
int parent_killed_scenario(cf::StartMethod method) {
  const char* gate = std::getenv(kGateEnv);
  if (gate == nullptr) return 2;
  cf::ProcessPoolOptions o;
  o.max_workers = 2;
  o.start_method = method;
  cf::ProcessPoolExecutor ex(o);
  std::printf("server %d\n", ex.forkserver_pid());
  std::fflush(stdout);
  auto a = ex.submit(&proctest::block_on_gate, std::string(gate));
  auto b = ex.submit(&proctest::block_on_gate, std::string(gate));
  std::this_thread::sleep_for(kDeadlock);  // the test kills us long before
  return 3;
}

// Every future ends (by value or BrokenProcessPool); returns how many ended otherwise.
template <class R>
int count_unended(std::vector<cf::Future<R>>& futures) {
  int bad = 0;
  for (auto& f : futures) {
    try {
      (void)f.result(kDeadlock);
    } catch (const cf::BrokenProcessPool&) {
    } catch (const std::exception& e) {
      std::printf("unexpected: %s\n", e.what());
      ++bad;
    }
  }
  return bad;
}

int sigpipe_scenario(cf::StartMethod method) {
  signal(SIGPIPE, SIG_DFL);
  int bad = 0;
  if (method == cf::StartMethod::forkserver) {
    // The fork server dies; the pool still writes to it to start a worker.
    cf::ProcessPoolOptions o;
    o.max_workers = 4;
    o.start_method = method;
    cf::ProcessPoolExecutor ex(o);
    kill(ex.forkserver_pid(), SIGKILL);
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < 8; ++i) {
      try {
        futures.push_back(ex.submit(&square, i));
      } catch (const cf::BrokenProcessPool&) {
      }
    }
    bad += count_unended(futures);
  }
  {
    // A worker dies while the pool is writing large frames to it.
    cf::ProcessPoolOptions o;
    o.max_workers = 1;
    o.start_method = method;
    o.on_worker_crash = cf::CrashPolicy::replace_worker;
    cf::ProcessPoolExecutor ex(o);
    const int pid = ex.submit(&proctest::worker_pid).result(kDeadlock);
    auto busy = ex.submit(&proctest::sleep_ms, 100);
    kill(pid, SIGKILL);
    std::vector<cf::Future<std::size_t>> futures;
    const std::string payload(200 << 10, 'p');  // below the shared-memory threshold: inline
    for (int i = 0; i < 20; ++i) futures.push_back(ex.submit(&length_of, payload));
    bad += count_unended(futures);
    try {
      (void)busy.result(kDeadlock);
    } catch (const cf::BrokenProcessPool&) {
    }
  }
  std::printf(bad == 0 ? "sigpipe scenario ok\n" : "sigpipe scenario: %d futures misbehaved\n",
              bad);
  return bad == 0 ? 0 : 1;
}

// Runs in a program whose main has no serve_if_worker: its spawned workers run this too.
int spawn_without_serve_scenario(std::string_view variant) {
  if (std::getenv(kSpawnedEnv) != nullptr) {
    // A spawned copy (the parent set kSpawnedEnv before making its pool).
    if (variant == "exit") return 0;
    if (variant == "hang") {
      std::this_thread::sleep_for(std::chrono::seconds(60));
      return 0;
    }
    // "pool": it goes on into the program, which makes a pool of its own.
  }
  setenv(kSpawnedEnv, "1", 1);
  cf::ProcessPoolOptions o;
  o.max_workers = 1;
  o.start_method = cf::StartMethod::spawn;
  cf::ProcessPoolExecutor ex(o);
  const auto t0 = Clock::now();
  try {
    auto f = ex.submit(&square, 2);
    (void)f.result(std::chrono::seconds(60));
    std::printf("no error: the task ran\n");
    return 1;
  } catch (const cf::BrokenProcessPool& e) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    std::printf("BrokenProcessPool after %lld ms: %s\n", static_cast<long long>(ms), e.what());
    return 0;
  } catch (const std::exception& e) {
    std::printf("unexpected: %s\n", e.what());
    return 1;
  }
}

int run_scenario(std::string_view scenario) {
  const auto colon = scenario.find(':');
  const std::string_view name = scenario.substr(0, colon);
  const std::string_view arg = colon == std::string_view::npos ? "" : scenario.substr(colon + 1);
  try {
    if (name == "parent-killed") return parent_killed_scenario(proctest::method_from_name(arg));
    if (name == "sigpipe") return sigpipe_scenario(proctest::method_from_name(arg));
    if (name == "spawn-without-serve") return spawn_without_serve_scenario(arg);
  } catch (const std::exception& e) {
    std::printf("scenario %s failed: %s\n", std::string(scenario).c_str(), e.what());
    return 1;
  }
  std::printf("unknown scenario %s\n", std::string(scenario).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const char* name = scenario::requested();
  // The one program here whose main deliberately lacks serve_if_worker (see above).
  if (name != nullptr && std::string_view(name).starts_with("spawn-without-serve")) {
    return run_scenario(name);
  }
  cf::serve_if_worker(argc, argv);
  if (name != nullptr) return run_scenario(name);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
