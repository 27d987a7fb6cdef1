// Helpers for the process pool tests (test_process_*.cpp): the start methods as a test
// parameter, a gate that worker processes can block on, and views of processes and descriptors
// through /proc.
//
// Workers share no memory with the test, so the in-process tools of test_util.hpp (Event, Gate)
// cannot reach them. ProcessGate uses two FIFOs in a private temporary directory instead: a task
// reports "started" (with its pid) on one and waits for a byte on the other. The test holds both
// FIFOs open read-write, so a worker never blocks opening them, and every wait on either side is
// bounded. Workers do not inherit the test's descriptors (they open the FIFOs by path).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <typeinfo>
#include <vector>

#include <gtest/gtest.h>

#include "concurrent/futures.hpp"
#include "test_util.hpp"

namespace proctest {

using Clock = std::chrono::steady_clock;

inline const char* method_name(cf::StartMethod method) {
  switch (method) {
    case cf::StartMethod::fork:
      return "Fork";
    case cf::StartMethod::forkserver:
      return "Forkserver";
    case cf::StartMethod::spawn:
      return "Spawn";
  }
  return "Unknown";
}

// The start method named so by method_name (a scenario child gets its method by name).
inline cf::StartMethod method_from_name(std::string_view name) {
  if (name == "Fork") return cf::StartMethod::fork;
  if (name == "Forkserver") return cf::StartMethod::forkserver;
  return cf::StartMethod::spawn;
}

// Every start method, but fork where cftest::kForkUnsafeRuntime says it cannot be tested.
inline const std::vector<cf::StartMethod> kAllMethodList =
    cftest::kForkUnsafeRuntime
        ? std::vector<cf::StartMethod>{cf::StartMethod::forkserver, cf::StartMethod::spawn}
        : std::vector<cf::StartMethod>{cf::StartMethod::fork, cf::StartMethod::forkserver,
                                       cf::StartMethod::spawn};
inline const auto kAllMethods = ::testing::ValuesIn(kAllMethodList);
// max_tasks_per_child is refused with fork (as in CPython).
inline const auto kNonForkMethods =
    ::testing::Values(cf::StartMethod::forkserver, cf::StartMethod::spawn);

// A test run once per start method, with the pool options that go with it.
class StartMethodTest : public ::testing::TestWithParam<cf::StartMethod> {
 protected:
  cf::ProcessPoolOptions options(std::size_t workers = 2) const {
    cf::ProcessPoolOptions o;
    o.max_workers = workers;
    o.start_method = GetParam();
    return o;
  }
  bool is_fork() const { return GetParam() == cf::StartMethod::fork; }
};

struct MethodParamName {
  std::string operator()(const ::testing::TestParamInfo<cf::StartMethod>& info) const {
    return method_name(info.param);
  }
};

using cftest::kAsan;
using cftest::kTsan;

// --- tasks that run in workers --------------------------------------------------------------
// Plain functions, sent by name. Each returns the worker's pid where that helps a test tell
// workers apart.

inline int worker_pid() { return static_cast<int>(getpid()); }

inline int square(int x) { return x * x; }

inline int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return static_cast<int>(getpid());
}

// Real crashes. SIGSEGV is raised with its default action: a sanitizer's own SEGV handler
// would otherwise turn the death into an exit with a report.
inline int crash_abort() { std::abort(); }
inline int crash_segv() {
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  return 0;
}
inline int crash_exit3() { _exit(3); }
inline int crash_exit0() { std::exit(0); }

// The worker's open descriptors, each as "<fd> -> <link target>".
inline std::vector<std::string> open_fds_here() {
  std::vector<std::string> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == own) continue;
    char target[512] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    fds.push_back(std::to_string(fd) + " -> " + (n > 0 ? std::string(target, n) : "?"));
  }
  closedir(dir);
  return fds;
}

// --- ProcessGate ----------------------------------------------------------------------------

namespace gate_detail {

inline std::string started_path(const std::string& dir) { return dir + "/started"; }
inline std::string release_path(const std::string& dir) { return dir + "/release"; }
inline std::string open_path(const std::string& dir) { return dir + "/open"; }

inline bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

}  // namespace gate_detail

// In a worker: tells the gate this task started (with the worker's pid).
inline void report_started(const std::string& dir) {
  const int fd = open(gate_detail::started_path(dir).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  const std::int32_t pid = getpid();
  // 4 bytes < PIPE_BUF: the write is atomic, records never interleave.
  [[maybe_unused]] const ssize_t n = write(fd, &pid, sizeof pid);
  close(fd);
}

// In a worker: waits until the gate lets one task through (or is opened for good, or is gone,
// or kDeadlock passes: a worker never waits forever on a test that failed).
inline void wait_gate(const std::string& dir) {
  const int fd = open(gate_detail::release_path(dir).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  const auto give_up = Clock::now() + cftest::kDeadlock;
  while (Clock::now() < give_up) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) > 0 && (p.revents & POLLIN) != 0) {
      char byte;
      if (read(fd, &byte, 1) == 1) break;  // another waiter may have taken it: go on waiting
    }
    if (gate_detail::exists(gate_detail::open_path(dir)) || !gate_detail::exists(dir)) break;
  }
  close(fd);
}

// A task: reports that it started, then blocks on the gate. Returns the worker's pid.
inline int block_on_gate(std::string dir) {
  report_started(dir);
  wait_gate(dir);
  return static_cast<int>(getpid());
}

// A task: reports that it started, then sleeps (a task the pool has to kill). Returns the pid.
inline int report_then_sleep(std::string dir, int ms) {
  report_started(dir);
  return sleep_ms(ms);
}

// A task: reports that it started, then dies of SIGABRT.
inline int report_then_abort(std::string dir) {
  report_started(dir);
  std::abort();
}

class ProcessGate {
 public:
  ProcessGate() {
    std::string pattern = (std::filesystem::temp_directory_path() / "cftest-gate-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    if (mkfifo(gate_detail::started_path(dir_).c_str(), 0600) != 0 ||
        mkfifo(gate_detail::release_path(dir_).c_str(), 0600) != 0) {
      throw std::runtime_error("mkfifo failed");
    }
    // Read-write opens of a FIFO never block, and keep a reader and a writer present.
    started_fd_ = open(gate_detail::started_path(dir_).c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    release_fd_ = open(gate_detail::release_path(dir_).c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (started_fd_ < 0 || release_fd_ < 0) throw std::runtime_error("open of a FIFO failed");
  }
  ProcessGate(const ProcessGate&) = delete;
  ProcessGate& operator=(const ProcessGate&) = delete;
  // Opens the gate for good, so that a failed test never leaves a worker blocked.
  ~ProcessGate() {
    open_all();
    close(started_fd_);
    close(release_fd_);
    unlink(gate_detail::started_path(dir_).c_str());
    unlink(gate_detail::release_path(dir_).c_str());
    unlink(gate_detail::open_path(dir_).c_str());
    rmdir(dir_.c_str());
  }

  const std::string& dir() const { return dir_; }

  // Lets `n` waiting (or future) tasks through.
  void release(int n = 1) {
    const std::string bytes(static_cast<std::size_t>(n), 'x');
    [[maybe_unused]] const ssize_t written = write(release_fd_, bytes.data(), bytes.size());
  }
  // Lets every task through, now and later.
  void open_all() {
    const int fd = open(gate_detail::open_path(dir_).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
  }

  // The pids of the next `n` tasks to start; fewer if `timeout` runs out first.
  std::vector<int> wait_started(std::size_t n,
                                std::chrono::milliseconds timeout = cftest::kDeadlock) {
    std::vector<int> pids;
    const auto give_up = Clock::now() + timeout;
    while (pids.size() < n) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{started_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      std::int32_t pid;
      if (read(started_fd_, &pid, sizeof pid) == static_cast<ssize_t>(sizeof pid)) {
        pids.push_back(pid);
      }
    }
    return pids;
  }

 private:
  std::string dir_;
  int started_fd_ = -1;
  int release_fd_ = -1;
};

// --- processes and descriptors, seen from the test ------------------------------------------

// The state letter of /proc/<pid>/stat (R, S, Z, ...) and the parent pid; nullopt if gone.
struct ProcStat {
  char state;
  int ppid;
};
inline std::optional<ProcStat> proc_stat(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // "pid (comm) S ppid ...": comm may contain spaces and parentheses; the last ')' ends it.
  const auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close_paren + 1));
  ProcStat s{};
  rest >> s.state >> s.ppid;
  return s;
}

// The process no longer runs: gone, or a zombie that some other process must reap.
inline bool process_ended(int pid) {
  const auto s = proc_stat(pid);
  return !s || (s->state == 'Z' && s->ppid != getpid()) || s->state == 'X';
}

// Polls (no event exists for another process's death) until every pid has ended.
inline bool all_ended_within(const std::vector<int>& pids, std::chrono::milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  for (;;) {
    bool all = true;
    for (const int pid : pids) all = all && process_ended(pid);
    if (all) return true;
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// For what no event signals (another process's state): polls `condition` until it holds, for
// at most `timeout`.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = cftest::kDeadlock) {
  const auto give_up = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// A child of this process that has died and has not been reaped (without reaping it).
inline bool has_zombie_child() {
  siginfo_t info{};
  if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return false;  // ECHILD
  return info.si_pid != 0;
}

// Whether this process has any child at all.
inline bool has_children() {
  siginfo_t info{};
  const int rc = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
  return !(rc != 0 && errno == ECHILD);
}

// This process's open descriptors (as "<fd> -> <target>").
inline std::vector<std::string> open_fds() { return open_fds_here(); }

inline std::size_t count_fds_to(const std::string& needle) {
  std::size_t n = 0;
  for (const std::string& fd : open_fds()) n += fd.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

// Mappings of this process whose line contains `needle` (e.g. the pool's memfd payloads).
inline std::size_t count_mappings_of(const std::string& needle) {
  std::ifstream in("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// Resident memory in KiB.
inline long vm_rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

using cftest::dynamic_type;
using cftest::what_of;

// Whether `e` is (or derives from) E.
template <class E>
bool holds(const std::exception_ptr& e) {
  if (!e) return false;  // rethrowing a null exception_ptr is undefined (it crashes)
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace proctest

#if defined(CFTEST_TSAN)
// ThreadSanitizer: std::exception_ptr counts its references with atomics inside libstdc++, which
// is not instrumented, so TSan cannot see that the last release (often in the pool's manager
// thread, dropping a finished task) comes after the test thread's last read of the exception,
// and reports the free as a race. These reports are about that blind spot only. (This header
// is included by one translation unit per test program, so the hook is defined once.)
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n";
}
#endif
