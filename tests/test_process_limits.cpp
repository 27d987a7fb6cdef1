// A process pool at the system's limits (issue 11, "Limits"): more workers than the user may have
// processes (RLIMIT_NPROC), no descriptor left (EMFILE) when a pool starts or replaces a worker,
// fork failing with ENOMEM, and a /dev/shm that is missing or full. Each must give an exception
// whose message names the cause, leak nothing (descriptors, threads, processes), and leave the
// program able to run a later pool.
//
// Each case changes what the test process must not change for itself (its limits, its user, its
// system calls, its mounts): this program runs again as a child (scenario_process.hpp) that sets
// the limit, plays the case, checks it, and prints "ok: ..." or "FAIL: ..." lines and the
// messages it saw. The test passes on the child's exit code; exit code 77 means the case cannot
// run on this system (the child says why) and the test is skipped.
//
// How each limit is reached for real:
// - RLIMIT_NPROC is not enforced for root, so a child running as root first gives itself a user
//   id nobody else has (100000 + its pid) and then lowers the limit: every fork and thread of
//   that user counts, as for any unprivileged user.
// - EMFILE: the child lowers RLIMIT_NOFILE and fills its descriptor table.
// - ENOMEM: RLIMIT_AS does not make fork fail (Linux does not count a fork's copy against it), and
//   a memory cgroup kills rather than fails. So a seccomp filter hands every fork (clone without
//   CLONE_THREAD, the fork server's and posix_spawn's included) to a thread of the child, which
//   fails it with ENOMEM while the case runs and lets it through afterwards; threads are not
//   concerned.
// - /dev/shm: the child unmounts it, or mounts a full one, in a mount namespace of its own.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <concurrent/futures.hpp>

#include "process_test_util.hpp"
#include "scenario_process.hpp"
#include "test_util.hpp"

namespace {

using cftest::kDeadlock;

// --- in the child: checks and what a leak would be -------------------------------------------

class Checks {
 public:
  void expect(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAIL", what.c_str());
    std::fflush(stdout);
    failures_ += ok ? 0 : 1;
  }
  void note(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  int exit_code() const { return failures_ == 0 ? 0 : 1; }

 private:
  int failures_ = 0;
};

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::size_t count_dir_entries(const char* path) {
  std::size_t n = 0;
  DIR* dir = opendir(path);
  if (dir == nullptr) return 0;
  while (dirent* e = readdir(dir)) n += e->d_name[0] == '.' ? 0 : 1;
  closedir(dir);
  return n;
}

// What a pool could leak: descriptors, threads, child processes.
struct Resources {
  std::size_t fds = 0;
  std::size_t threads = 0;
  bool children = false;

  static Resources now() {
    Resources r;
    r.fds = count_dir_entries("/proc/self/fd") - 1;  // less opendir's own
    r.threads = count_dir_entries("/proc/self/task");
    r.children = proctest::has_children();
    return r;
  }
};

void expect_nothing_leaked(Checks& checks, const Resources& before) {
  // Threads end a little after they are joined (the kernel's side): give them a moment.
  Resources after = Resources::now();
  for (int i = 0; i < 200 && after.threads > before.threads; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    after = Resources::now();
  }
  checks.expect(after.fds == before.fds, "descriptors: " + std::to_string(before.fds) +
                                             " before, " + std::to_string(after.fds) + " after");
  checks.expect(after.threads == before.threads, "threads: " + std::to_string(before.threads) +
                                                     " before, " + std::to_string(after.threads) +
                                                     " after");
  checks.expect(!after.children, "no child process is left");
}

cf::ProcessPoolOptions pool_options(cf::StartMethod method, std::size_t workers) {
  cf::ProcessPoolOptions o;
  o.max_workers = workers;
  o.start_method = method;
  return o;
}

// A later pool of `workers` workers works.
void expect_later_pool_works(Checks& checks, cf::StartMethod method, std::size_t workers = 1) {
  try {
    cf::ProcessPoolExecutor ex(pool_options(method, workers));
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < 8; ++i) futures.push_back(ex.submit(&proctest::square, i));
    int sum = 0;
    for (auto& f : futures) sum += f.result(kDeadlock);
    checks.expect(sum == 140, "a later pool runs its tasks");
  } catch (const std::exception& e) {
    checks.expect(false, std::string("a later pool works, but: ") + e.what());
  }
}

// Every future of `futures` ends; at least one with BrokenProcessPool whose message has every
// part of `needles`, the others with a value or BrokenProcessPool; then submit throws it too.
void expect_start_failure(Checks& checks, cf::ProcessPoolExecutor& ex,
                          std::vector<cf::Future<int>>& futures,
                          const std::vector<std::string_view>& needles) {
  std::string named;
  bool all_ended = true;
  for (auto& f : futures) {
    try {
      const std::exception_ptr e = f.exception(kDeadlock);
      if (e == nullptr) continue;
      std::rethrow_exception(e);
    } catch (const cf::BrokenProcessPool& e) {
      bool all = true;
      for (const auto part : needles) all = all && contains(e.what(), part);
      if (all) named = e.what();
    } catch (const std::exception& e) {
      checks.expect(false, std::string("a future failed with something else: ") + e.what());
      all_ended = false;
    }
  }
  checks.expect(all_ended, "every future ended");
  checks.note("message: " + named);
  checks.expect(!named.empty(), "a future failed with BrokenProcessPool naming the cause");
  try {
    (void)ex.submit(&proctest::square, 1);
    checks.expect(false, "submit after the failure throws");
  } catch (const cf::BrokenProcessPool& e) {
    bool all = true;
    for (const auto part : needles) all = all && contains(e.what(), part);
    checks.expect(all,
                  std::string("submit throws BrokenProcessPool naming the cause: ") + e.what());
  } catch (const std::exception& e) {
    checks.expect(false, std::string("submit threw something else: ") + e.what());
  }
}

// The pool's constructor throws std::system_error with `code` and a message with every needle.
void expect_constructor_fails(Checks& checks, const cf::ProcessPoolOptions& options, int code,
                              const std::vector<std::string_view>& needles) {
  try {
    cf::ProcessPoolExecutor ex(options);
    checks.expect(false, "the pool's constructor throws");
  } catch (const std::system_error& e) {
    checks.note(std::string("message: ") + e.what());
    bool all = true;
    for (const auto part : needles) all = all && contains(e.what(), part);
    checks.expect(e.code().value() == code && all,
                  std::string("the constructor throws std::system_error naming the cause"));
  } catch (const std::exception& e) {
    checks.expect(false, std::string("the constructor threw something else: ") + e.what());
  }
}

// A submit may already see the pool broken and throw: its future then holds what it threw.
std::vector<cf::Future<int>> submit_sleepers(cf::ProcessPoolExecutor& ex, int n, int ms) {
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < n; ++i) {
    try {
      futures.push_back(ex.submit(&proctest::sleep_ms, ms));
    } catch (const cf::BrokenProcessPool&) {
      cf::Future<int> refused;
      refused.set_exception(std::current_exception());
      futures.push_back(refused);
    }
  }
  return futures;
}

// --- RLIMIT_NPROC -----------------------------------------------------------------------------

void set_soft_limit(int resource, rlim_t soft) {
  rlimit lim{};
  getrlimit(resource, &lim);
  lim.rlim_cur = soft;
  setrlimit(resource, &lim);
}

int nproc_scenario(cf::StartMethod method) {
  Checks checks;
  if (geteuid() != 0) {
    std::printf(
        "skip: RLIMIT_NPROC counts every process of the user; run as root, the test "
        "gives itself a user of its own\n");
    return scenario::kSkipped;
  }
  const auto uid = static_cast<uid_t>(100000 + getpid());
  if (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0) {
    std::printf("skip: cannot become user %u: %s\n", uid, std::strerror(errno));
    return scenario::kSkipped;
  }
  // This process's threads are the user's only tasks now (a sanitizer may have its own).
  const Resources before = Resources::now();
  const auto tasks = static_cast<rlim_t>(before.threads);

  // No room even for the pool's dispatcher thread.
  set_soft_limit(RLIMIT_NPROC, tasks);
  expect_constructor_fails(checks, pool_options(method, 2), EAGAIN,
                           {"dispatcher thread", "EAGAIN", "RLIMIT_NPROC"});
  expect_nothing_leaked(checks, before);

  // Room for the dispatcher, the fork server and two workers; the pool wants eight.
  const bool server = method == cf::StartMethod::forkserver;
  set_soft_limit(RLIMIT_NPROC, tasks + 1 + (server ? 1 : 0) + 2);
  {
    cf::ProcessPoolExecutor ex(pool_options(method, 8));
    auto futures = submit_sleepers(ex, 8, 300);
    expect_start_failure(
        checks, ex, futures,
        {"could not be started", "Resource temporarily unavailable", "EAGAIN", "RLIMIT_NPROC"});
  }
  expect_nothing_leaked(checks, before);
  expect_later_pool_works(checks, method, 1);
  expect_nothing_leaked(checks, before);
  return checks.exit_code();
}

// --- EMFILE -----------------------------------------------------------------------------------

// Fills this process's descriptor table (under a lowered limit); the descriptors close with it.
class FullDescriptorTable {
 public:
  FullDescriptorTable() {
    set_soft_limit(RLIMIT_NOFILE, 512);
    for (;;) {
      const int fd = dup(0);
      if (fd < 0) break;
      fds_.push_back(fd);
    }
    error_ = errno;
  }
  ~FullDescriptorTable() { release(); }
  void release() {
    for (const int fd : fds_) close(fd);
    fds_.clear();
  }
  bool full() const { return error_ == EMFILE; }

 private:
  std::vector<int> fds_;
  int error_ = 0;
};

int emfile_scenario(cf::StartMethod method) {
  if (proctest::kAsan) {
    // The asan preset has UndefinedBehaviorSanitizer too, whose check of an object's dynamic type
    // (vptr) probes memory through a pipe: with no descriptor left, it reports a false error.
    std::printf("skip: UBSan's vptr check needs descriptors of its own\n");
    return scenario::kSkipped;
  }
  Checks checks;
  // ThreadSanitizer starts a thread of its own with the first thread of the program: let it
  // start before counting.
  std::thread([] {}).join();
  const Resources before = Resources::now();
  const std::vector<std::string_view> needles = {"could not be started", "Too many open files",
                                                 "EMFILE", "RLIMIT_NOFILE"};

  // While the pool is made.
  {
    FullDescriptorTable table;
    checks.expect(table.full(), "the descriptor table is full");
    expect_constructor_fails(checks, pool_options(method, 2), EMFILE,
                             {"cannot start the pool", "EMFILE", "RLIMIT_NOFILE"});
  }
  expect_nothing_leaked(checks, before);

  // While it starts its workers.
  {
    cf::ProcessPoolExecutor ex(pool_options(method, 2));
    FullDescriptorTable table;
    checks.expect(table.full(), "the descriptor table is full");
    auto futures = submit_sleepers(ex, 2, 100);
    for (auto& f : futures) (void)f.exception(kDeadlock);
    table.release();
    expect_start_failure(checks, ex, futures, needles);
  }
  expect_nothing_leaked(checks, before);

  // While it replaces a worker that crashed.
  {
    cf::ProcessPoolOptions o = pool_options(method, 1);
    o.on_worker_crash = cf::CrashPolicy::replace_worker;
    cf::ProcessPoolExecutor ex(o);
    checks.expect(ex.submit(&proctest::square, 3).result(kDeadlock) == 9, "the first worker runs");
    FullDescriptorTable table;
    checks.expect(table.full(), "the descriptor table is full");
    const std::exception_ptr crash = ex.submit(&proctest::crash_abort).exception(kDeadlock);
    checks.expect(proctest::holds<cf::BrokenProcessPool>(crash), "the crash fails its own task");
    std::vector<cf::Future<int>> futures;
    futures.push_back(ex.submit(&proctest::square, 4));
    (void)futures.back().exception(kDeadlock);
    table.release();
    expect_start_failure(checks, ex, futures, needles);
  }
  expect_nothing_leaked(checks, before);
  expect_later_pool_works(checks, method, 2);
  expect_nothing_leaked(checks, before);
  return checks.exit_code();
}

// --- fork failing with ENOMEM -----------------------------------------------------------------

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr std::uint32_t kAuditArch = 0;
#endif

// Every fork of this process and of its children (clone without CLONE_THREAD, and but for
// posix_spawn's without CLONE_VM) is handed to a
// supervising thread, which fails it with ENOMEM while failing() is set and lets it through
// otherwise. clone3 fails with ENOSYS, which glibc answers by using clone (its arguments are
// in memory, where a filter cannot read the flags).
//
// A fork waits for the supervisor while it holds glibc's locks (malloc's among them) and a
// sanitizer's: once ready, the supervisor makes raw system calls only, never a library call that
// might take one of those locks.
class ForkFault {
 public:
  ForkFault() {
    std::promise<void> ready;
    std::promise<int> listener;
    auto ready_future = ready.get_future();
    auto listener_future = listener.get_future();
    // Started before the filter exists, so that its own system calls are not filtered.
    supervisor_ = std::thread([this, &ready, &listener_future] {
      prepare();
      ready.set_value();
      supervise(listener_future.get());
    });
    ready_future.get();
    listener.set_value(install());
    // The supervisor has taken its listener before the promises above go out of scope.
    while (!supervising_) std::this_thread::yield();
  }
  ~ForkFault() {
    stop_ = true;
    supervisor_.join();
  }
  bool installed() const { return listener_ >= 0; }
  void fail(bool on) { failing_ = on; }

 private:
  int install() {
    if (kAuditArch == 0) return -1;
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        // The low half of the flags (both architectures are little-endian). A fork has neither
        // CLONE_THREAD nor CLONE_VM; posix_spawn has CLONE_VM and CLONE_VFORK; a thread, or
        // LeakSanitizer's helper at exit, has CLONE_VM alone or with CLONE_THREAD.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_VFORK, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_VM, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    listener_ = static_cast<int>(
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &program));
    return listener_;
  }

  // Everything that allocates, before any fork can wait for us.
  void prepare() {
    seccomp_notif_sizes sizes{};
    syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes);
    request_.resize(std::max<std::size_t>(sizes.seccomp_notif, sizeof(seccomp_notif)));
    response_.resize(std::max<std::size_t>(sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp)));
  }

  void supervise(int listener) {
    supervising_ = true;
    if (listener < 0) return;
    auto* req = reinterpret_cast<seccomp_notif*>(request_.data());
    auto* resp = reinterpret_cast<seccomp_notif_resp*>(response_.data());
    while (!stop_) {
      pollfd p{listener, POLLIN, 0};
      const timespec tick{0, 20'000'000};
      if (syscall(SYS_ppoll, &p, 1, &tick, nullptr, 0) <= 0) continue;
      std::memset(req, 0, request_.size());
      if (syscall(SYS_ioctl, listener, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) continue;
      std::memset(resp, 0, response_.size());
      resp->id = req->id;
      if (failing_) {
        resp->error = -ENOMEM;
      } else {
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      }
      syscall(SYS_ioctl, listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
    }
    syscall(SYS_close, listener);
  }

  std::thread supervisor_;
  int listener_ = -1;
  std::vector<std::byte> request_;
  std::vector<std::byte> response_;
  std::atomic<bool> supervising_{false};
  std::atomic<bool> failing_{false};
  std::atomic<bool> stop_{false};
};

int enomem_scenario(cf::StartMethod method) {
  Checks checks;
  ForkFault fault;
  if (!fault.installed()) {
    std::printf("skip: no seccomp user notification here (%s)\n", std::strerror(errno));
    return scenario::kSkipped;
  }
  const Resources before = Resources::now();
  const std::vector<std::string_view> needles = {"could not be started", "Cannot allocate memory",
                                                 "ENOMEM"};
  if (method == cf::StartMethod::forkserver) {
    // The fork server itself cannot be made.
    fault.fail(true);
    expect_constructor_fails(checks, pool_options(method, 2), ENOMEM,
                             {"fork of the fork server failed", "ENOMEM"});
    fault.fail(false);
    expect_nothing_leaked(checks, before);
  }
  {
    cf::ProcessPoolExecutor ex(pool_options(method, 2));
    fault.fail(true);
    auto futures = submit_sleepers(ex, 2, 100);
    for (auto& f : futures) (void)f.exception(kDeadlock);
    fault.fail(false);
    expect_start_failure(checks, ex, futures, needles);
  }
  expect_nothing_leaked(checks, before);
  expect_later_pool_works(checks, method, 2);
  expect_nothing_leaked(checks, before);
  return checks.exit_code();
}

// --- /dev/shm ---------------------------------------------------------------------------------

std::string grow(std::string s) { return s + s; }

// Large values (past the size that travels as a memfd) and small ones, both ways.
void expect_pools_work_with_large_values(Checks& checks, const std::string& where) {
  for (const auto method : proctest::kAllMethodList) {
    try {
      cf::ProcessPoolExecutor ex(pool_options(method, 2));
      const std::string big(std::size_t{3} << 20, 'x');
      const std::string doubled = ex.submit(&grow, big).result(kDeadlock);
      checks.expect(doubled.size() == big.size() * 2 &&
                        ex.submit(&proctest::square, 7).result(kDeadlock) == 49,
                    std::string(proctest::method_name(method)) + " pool works with " + where);
    } catch (const std::exception& e) {
      checks.expect(false, std::string(proctest::method_name(method)) + " pool with " + where +
                               " failed: " + e.what());
    }
  }
}

// Whether something is mounted on `path` in this mount namespace.
bool mounted_on(std::string_view path) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    // "id parent major:minor root mount-point ...": the fifth field.
    std::istringstream fields(line);
    std::string field;
    for (int i = 0; i < 5 && fields >> field; ++i) {
    }
    if (field == path) return true;
  }
  return false;
}

int devshm_scenario(std::string_view variant) {
  Checks checks;
  if (unshare(CLONE_NEWNS) != 0 ||
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::printf("skip: no mount namespace of our own here (%s)\n", std::strerror(errno));
    return scenario::kSkipped;
  }
  // Every mount on /dev/shm goes (there may be several, stacked).
  while (umount2("/dev/shm", MNT_DETACH) == 0) {
  }
  if (variant == "missing") {
    checks.expect(!mounted_on("/dev/shm"), "/dev/shm is not mounted");
    expect_pools_work_with_large_values(checks, "no /dev/shm");
  } else {
    if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64k") != 0) {
      std::printf("skip: cannot mount a small tmpfs on /dev/shm (%s)\n", std::strerror(errno));
      return scenario::kSkipped;
    }
    const int fd = open("/dev/shm/filler", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    const std::string block(4096, 'f');
    while (write(fd, block.data(), block.size()) > 0) {
    }
    checks.expect(errno == ENOSPC, "/dev/shm is full");
    close(fd);
    expect_pools_work_with_large_values(checks, "a full /dev/shm");
  }
  return checks.exit_code();
}

// --- the tests: each runs a scenario in a child --------------------------------------------------

void run_scenario_child(const std::string& name) {
  scenario::ScenarioProcess child(name);
  const std::string& output = child.read_all(std::chrono::seconds(100));
  const auto status = child.wait_for(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value()) << "the scenario did not end\n" << output;
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == scenario::kSkipped) GTEST_SKIP() << output;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << scenario::describe_status(*status) << "\n"
      << output;
  // The messages a user would read, in the test's log.
  std::size_t start = 0;
  for (std::size_t nl; (nl = output.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = output.substr(start, nl - start);
    if (line.starts_with("message: ")) std::cout << "[          ] " << line << '\n';
  }
}

class ProcessLimitsTest : public proctest::StartMethodTest {
 protected:
  std::string scenario(const char* name) const {
    return std::string(name) + ":" + proctest::method_name(GetParam());
  }
};

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessLimitsTest, proctest::kAllMethods,
                         proctest::MethodParamName());

TEST_P(ProcessLimitsTest, MoreWorkersThanRlimitNprocAllowsGiveBrokenProcessPoolNamingIt) {
  run_scenario_child(scenario("nproc"));
}

TEST_P(ProcessLimitsTest, NoDescriptorLeftWhenStartingOrReplacingAWorkerGivesAnErrorNamingEmfile) {
  run_scenario_child(scenario("emfile"));
}

TEST_P(ProcessLimitsTest, ForkFailingWithEnomemGivesAnErrorNamingIt) {
  run_scenario_child(scenario("enomem"));
}

TEST(ProcessLimitsDevShmTest, PoolsDoNotNeedDevShm) { run_scenario_child("devshm:missing"); }

TEST(ProcessLimitsDevShmTest, PoolsWorkWithAFullDevShm) { run_scenario_child("devshm:full"); }

int run_scenario(std::string_view scenario) {
  const auto colon = scenario.find(':');
  const std::string_view name = scenario.substr(0, colon);
  const std::string_view arg = colon == std::string_view::npos ? "" : scenario.substr(colon + 1);
  try {
    if (name == "nproc") return nproc_scenario(proctest::method_from_name(arg));
    if (name == "emfile") return emfile_scenario(proctest::method_from_name(arg));
    if (name == "enomem") return enomem_scenario(proctest::method_from_name(arg));
    if (name == "devshm") return devshm_scenario(arg);
  } catch (const std::exception& e) {
    std::printf("FAIL: scenario %s threw: %s\n", std::string(scenario).c_str(), e.what());
    return 1;
  }
  std::printf("FAIL: unknown scenario %s\n", std::string(scenario).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  if (const char* name = scenario::requested()) return run_scenario(name);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
