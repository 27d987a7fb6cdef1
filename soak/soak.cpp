// The soak (README "Reliability"): a ProcessPoolExecutor under replace_worker, with a task_timeout
// and max_tasks_per_child, fed a seeded random mix of normal tasks, map chunks, exceptions,
// segfaults, _exit, hangs the timeout kills and cancels, with a thread pool beside it. Every
// future is checked against the outcome its kind must have; the parent's RSS, descriptors,
// threads and descendant processes are sampled throughout and must stay flat.
//
//   cfutures_soak [--minutes=M] [--tasks=N] [--seed=S] [--workers=W] [--task-timeout-ms=T]
//                 [--max-tasks-per-child=K] [--sample-seconds=P] [--round=R]
//
// The tasks go in rounds of R (default 1000), spread evenly over M minutes (M = 0: as fast as the
// pool goes); a run that falls behind goes on past M, and stops submitting at 1.5 M (said in the
// report, not a failure). Exit status 0 only if every future ended as expected (tasks seen to pass
// task_timeout because the CPUs were busy are counted apart and allowed up to a bound: see
// killed_by_task_timeout) and every metric stayed within the bounds printed at the end (see
// check_flat).
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <cereal/access.hpp>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Named namespace: the checks compare RemoteError::type_name() with these names.
namespace soak {

// Registered: comes back from a worker as itself, with its code.
class SoakError : public std::runtime_error {
 public:
  SoakError(const std::string& message, long long code) : std::runtime_error(message), code(code) {}
  long long code = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(code);
  }

 private:
  friend class cereal::access;
  SoakError() : std::runtime_error("") {}
};
inline const bool soak_error_registered = cf::register_exception<SoakError>();

// Not registered: comes back as cf::RemoteError naming this type.
class UnregisteredError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace soak

#if defined(__SANITIZE_THREAD__)
#define SOAK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SOAK_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#if defined(SOAK_TSAN) || defined(SOAK_ASAN)
// A sanitizer's allocator holds on to freed memory (ASan's quarantine) or grows shadow memory:
// the parent's RSS says nothing about leaks there, and is not checked.
constexpr bool kSanitizer = true;
#else
constexpr bool kSanitizer = false;
#endif

#if defined(SOAK_TSAN)
// ThreadSanitizer's runtime starts a thread of its own once the program has threads.
constexpr int kSanitizerThreads = 1;
#else
constexpr int kSanitizerThreads = 0;
#endif

#if defined(SOAK_TSAN)
// As in tests/process_test_util.hpp: libstdc++'s exception_ptr reference count is not
// instrumented, so TSan reports its last release in another thread as a race.
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n";
}
#endif

namespace {

// --- what runs in the workers -----------------------------------------------------------------

// Which worker ran a task: its pid and its start time (/proc/self/stat field 22), so that a reused
// pid is not taken for the same worker.
struct Reply {
  long long value;
  int pid;
  long long start_ticks;
};

long long expected_value(long long x) { return x * x + 7; }

long long own_start_ticks() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  const auto paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  // Fields from the 3rd (state) on; starttime is the 22nd.
  std::string rest = line.substr(paren + 2);
  long long value = -1;
  std::size_t pos = 0;
  for (int field = 3; field <= 22; ++field) {
    const std::size_t end = rest.find(' ', pos);
    if (field == 22) value = std::atoll(rest.c_str() + pos);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return value;
}

Reply normal_task(long long x) {
  // Read once per worker process: the first task a worker runs initialises it.
  static const long long start_ticks = own_start_ticks();
  return Reply{expected_value(x), static_cast<int>(getpid()), start_ticks};
}

long long map_item(long long x) { return expected_value(x); }

Reply throw_registered(long long x) { throw soak::SoakError("soak error " + std::to_string(x), x); }

Reply throw_std(long long x) { throw std::out_of_range("soak out_of_range " + std::to_string(x)); }

Reply throw_unregistered(long long x) {
  throw soak::UnregisteredError("soak unregistered " + std::to_string(x));
}

Reply segfault(long long /*x*/) {
  // The default action, not a sanitizer's handler that would turn the death into an exit.
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  return Reply{};
}

Reply exit_with(long long code) { _exit(static_cast<int>(code)); }

Reply hang(long long x) {
  std::this_thread::sleep_for(60s);  // far beyond any task_timeout the soak uses
  return normal_task(x);
}

// --- the mix ----------------------------------------------------------------------------------

enum Kind : int {
  kValue,
  kMapItem,
  kThrowRegistered,
  kThrowStd,
  kThrowUnregistered,
  kSegfault,
  kExit,
  kHang,
  kCancel,
  kThreadTask,
  kKinds
};

const std::array<const char*, kKinds> kKindNames = {"value",
                                                    "map item",
                                                    "throw registered",
                                                    "throw std::out_of_range",
                                                    "throw unregistered",
                                                    "segfault",
                                                    "_exit(n)",
                                                    "hang (task_timeout)",
                                                    "cancel",
                                                    "thread pool"};

// Per mille of the tasks submitted one by one (map items come on top, in one map per round).
// Chosen so that 1,000,000 tasks with the default 250 ms timeout keep 2 workers busy a fraction
// of 30 minutes: the hangs cost 250 ms of a worker each, a crash a worker restart.
const std::array<int, kKinds> kWeights = {
    900,  // value
    0,    // map item
    15,   // throw registered
    10,   // throw std
    15,   // throw unregistered
    5,    // segfault
    5,    // _exit
    4,    // hang
    30,   // cancel
    18,   // thread pool
};

enum Outcome : int {
  kGotValue,
  kRaisedItself,
  kRemoteError,
  kCrashReported,
  kTimedOut,
  kCancelled,
  kRanBeforeCancel,
  kLoadTimeout,  // see killed_by_task_timeout
  kNotReached,   // a map's items after one that raised
  kWrong,
  kOutcomes
};

const std::array<const char*, kOutcomes> kOutcomeNames = {"value",
                                                          "raised as itself",
                                                          "RemoteError",
                                                          "BrokenProcessPool",
                                                          "TimeoutError",
                                                          "cancelled",
                                                          "ran (cancel too late)",
                                                          "timed out under load",
                                                          "not reached (map stopped)",
                                                          "WRONG"};

struct Options {
  double minutes = 30;
  long long tasks = 1'000'000;
  unsigned seed = 1;
  std::size_t workers = 2;
  long long task_timeout_ms = 250;
  std::size_t max_tasks_per_child = 100;
  double sample_seconds = 5;
  long long round = 1000;
};

// --- the parent's metrics ---------------------------------------------------------------------

struct Sample {
  double seconds;
  long rss_kib;
  int fds;
  int threads;
  int processes;  // descendants of this process (workers, fork server), zombies included
};

long read_rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Entries of a /proc directory, less the descriptor used to read it when `own_fd`.
int count_entries(const char* path, bool own_fd) {
  DIR* dir = opendir(path);
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.' ? 1 : 0;
  closedir(dir);
  return own_fd ? n - 1 : n;
}

// Every process whose chain of parents leads here (the fork server's workers are its children).
int count_descendants() {
  std::map<int, int> parent_of;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const auto paren = line.rfind(')');
    if (paren == std::string::npos || paren + 4 > line.size()) continue;
    parent_of[std::atoi(e->d_name)] = std::atoi(line.c_str() + paren + 4);  // ") S ppid"
  }
  closedir(dir);
  const int self = static_cast<int>(getpid());
  int n = 0;
  for (const auto& [pid, ppid] : parent_of) {
    int p = ppid;
    for (int depth = 0; p > 1 && p != self && depth < 64; ++depth) {
      const auto it = parent_of.find(p);
      p = it == parent_of.end() ? 0 : it->second;
    }
    n += p == self && pid != self ? 1 : 0;
  }
  return n;
}

Sample take_sample(Clock::time_point t0) {
  return Sample{std::chrono::duration<double>(Clock::now() - t0).count(), read_rss_kib(),
                count_entries("/proc/self/fd", true), count_entries("/proc/self/task", false),
                count_descendants()};
}

// Samples every `period` in a thread of its own until stopped.
class Sampler {
 public:
  Sampler(Clock::time_point t0, std::chrono::duration<double> period) : t0_(t0), period_(period) {
    thread_ = std::thread([this] { run(); });
  }
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  ~Sampler() { stop(); }

  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::vector<Sample> samples() const {
    const std::lock_guard lock(mutex_);
    return samples_;
  }
  double max_late_ms() const {
    const std::lock_guard lock(mutex_);
    return std::chrono::duration<double, std::milli>(max_late_).count();
  }

 private:
  // Also measures how late its own wake-ups come: a sign of how contended the CPUs were.
  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      const Sample s = take_sample(t0_);
      lock.lock();
      samples_.push_back(s);
      const auto due = Clock::now() + std::chrono::duration_cast<Clock::duration>(period_);
      if (!wake_.wait_until(lock, due, [this] { return stopping_; })) {
        max_late_ = std::max(max_late_, Clock::now() - due);
      }
    }
  }

  Clock::time_point t0_;
  std::chrono::duration<double> period_;
  mutable std::mutex mutex_;  // guards stopping_, samples_ and max_late_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<Sample> samples_;
  Clock::duration max_late_{};
  std::thread thread_;
};

// --- checking outcomes ------------------------------------------------------------------------

struct Tally {
  std::array<std::array<long long, kOutcomes>, kKinds> counts{};
  long long mismatches = 0;
  std::vector<std::string> first_mismatches;
  long long load_timeouts = 0;
  // Value tasks per worker (pid, start time), to hold max_tasks_per_child; a worker not seen for
  // a few rounds is forgotten (a worker lives well under one round), so that the soak's own
  // bookkeeping does not grow with the run and blur the parent's RSS.
  struct WorkerCount {
    std::size_t tasks = 0;
    long long last_round = 0;
  };
  std::map<std::pair<int, long long>, WorkerCount> tasks_per_worker;
  long long round = 0;
  long long workers_seen = 0;
  std::size_t most_tasks_per_worker = 0;

  void count_worker_task(int pid, long long start_ticks) {
    const auto [it, added] = tasks_per_worker.try_emplace({pid, start_ticks});
    workers_seen += added ? 1 : 0;
    it->second.last_round = round;
    most_tasks_per_worker = std::max(most_tasks_per_worker, ++it->second.tasks);
  }
  void end_round() {
    std::erase_if(tasks_per_worker,
                  [this](const auto& entry) { return entry.second.last_round + 5 < round; });
    ++round;
  }

  void record(Kind kind, Outcome outcome) { ++counts[kind][outcome]; }
  void mismatch(Kind kind, long long id, const std::string& what) {
    ++counts[kind][kWrong];
    ++mismatches;
    if (first_mismatches.size() < 20) {
      first_mismatches.push_back(std::string(kKindNames[kind]) + " #" + std::to_string(id) + ": " +
                                 what);
      // At once too: a long run's first mismatch should not wait for its end to be seen.
      std::printf("MISMATCH %s\n", first_mismatches.back().c_str());
      std::fflush(stdout);
    }
  }
};

std::string describe(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const cf::RemoteError& r) {
    return "RemoteError(" + r.type_name() + "): " + r.what();
  } catch (const std::exception& x) {
    return std::string(typeid(x).name()) + ": " + x.what();
  } catch (...) {
    return "a non-std exception";
  }
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A future's wait is bounded: an outcome that never comes is a mismatch, never a hang.
constexpr auto kOutcomeDeadline = 5min;

struct Pending {
  Kind kind;
  long long id;
  cf::Future<Reply> future;
  bool cancel_returned = false;
};

// task_timeout is wall-clock time as the parent sees it: from the task's start (or its hand-over,
// or the reading of the reply before it) to the reading of its reply. On CPUs shared with other
// work, a task of microseconds can be seen to pass it when the worker or the parent's dispatcher
// thread waits that long to run; the pool then does what it documents (TimeoutError, and
// BrokenProcessPool naming task_timeout for a task that had started behind it). Such outcomes are
// counted apart and allowed up to a bound (see main), not taken for wrong ones.
bool proper_timeout(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const cf::TimeoutError&) {
    return true;
  } catch (...) {
  }
  return false;
}

bool killed_by_task_timeout(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const cf::TimeoutError& x) {
    return contains(x.what(), "task_timeout");
  } catch (const cf::BrokenProcessPool& x) {
    return contains(x.what(), "task_timeout");
  } catch (...) {
  }
  return false;
}

void load_timeout(Tally& tally, Kind kind, long long id, const std::string& what) {
  tally.record(kind, kLoadTimeout);
  if (++tally.load_timeouts <= 20) {
    std::printf("timed out under load: %s #%lld: %s\n", kKindNames[kind], id, what.c_str());
    std::fflush(stdout);
  }
}

void check(Pending& p, Tally& tally) {
  std::exception_ptr e;
  try {
    e = p.future.exception(kOutcomeDeadline);
  } catch (const cf::CancelledError&) {
    if (p.kind == kCancel && p.cancel_returned) {
      tally.record(p.kind, kCancelled);
    } else {
      tally.mismatch(p.kind, p.id, "cancelled, but cancel() was not called or returned false");
    }
    return;
  } catch (const cf::TimeoutError&) {
    tally.mismatch(p.kind, p.id, "not done after 5 minutes");
    return;
  }
  const std::string what = describe(e);
  const std::string id = std::to_string(p.id);
  if (killed_by_task_timeout(e) && (p.kind != kHang || !proper_timeout(e))) {
    load_timeout(tally, p.kind, p.id, what);
    return;
  }
  switch (p.kind) {
    case kValue:
    case kCancel: {
      if (p.kind == kCancel && p.cancel_returned) {
        tally.mismatch(p.kind, p.id, "cancel() returned true but the future ended with " + what);
        return;
      }
      if (e) {
        tally.mismatch(p.kind, p.id, "expected a value, got " + what);
        return;
      }
      const Reply& r = p.future.result();
      if (r.value != expected_value(p.id)) {
        tally.mismatch(p.kind, p.id, "wrong value " + std::to_string(r.value));
        return;
      }
      tally.count_worker_task(r.pid, r.start_ticks);
      tally.record(p.kind, p.kind == kCancel ? kRanBeforeCancel : kGotValue);
      return;
    }
    case kThrowRegistered:
      try {
        if (e) std::rethrow_exception(e);
      } catch (const soak::SoakError& x) {
        if (typeid(x) == typeid(soak::SoakError) && x.code == p.id &&
            std::string(x.what()) == "soak error " + id) {
          tally.record(p.kind, kRaisedItself);
          return;
        }
      } catch (...) {
      }
      tally.mismatch(p.kind, p.id, "expected SoakError(\"soak error " + id + "\"), got " + what);
      return;
    case kThrowStd:
      try {
        if (e) std::rethrow_exception(e);
      } catch (const std::out_of_range& x) {
        if (typeid(x) == typeid(std::out_of_range) &&
            std::string(x.what()) == "soak out_of_range " + id) {
          tally.record(p.kind, kRaisedItself);
          return;
        }
      } catch (...) {
      }
      tally.mismatch(p.kind, p.id, "expected std::out_of_range, got " + what);
      return;
    case kThrowUnregistered:
      try {
        if (e) std::rethrow_exception(e);
      } catch (const cf::RemoteError& x) {
        if (x.type_name() == "soak::UnregisteredError" &&
            std::string(x.what()) == "soak unregistered " + id) {
          tally.record(p.kind, kRemoteError);
          return;
        }
      } catch (...) {
      }
      tally.mismatch(p.kind, p.id, "expected RemoteError(soak::UnregisteredError), got " + what);
      return;
    case kSegfault:
    case kExit: {
      const std::string how = p.kind == kSegfault ? std::string("signal 11 (SIGSEGV)")
                                                  : "exited with code " + std::to_string(p.id % 10);
      try {
        if (e) std::rethrow_exception(e);
      } catch (const cf::BrokenProcessPool& x) {
        if (contains(x.what(), how)) {
          tally.record(p.kind, kCrashReported);
          return;
        }
      } catch (...) {
      }
      tally.mismatch(p.kind, p.id,
                     "expected BrokenProcessPool naming \"" + how + "\", got " + what);
      return;
    }
    case kHang:
      try {
        if (e) std::rethrow_exception(e);
      } catch (const cf::TimeoutError&) {
        tally.record(p.kind, kTimedOut);
        return;
      } catch (...) {
      }
      tally.mismatch(p.kind, p.id, "expected TimeoutError, got " + what);
      return;
    case kMapItem:
    case kThreadTask:
    case kKinds:
      break;
  }
  tally.mismatch(p.kind, p.id, "unexpected kind");
}

// --- one round --------------------------------------------------------------------------------

void run_round(cf::ProcessPoolExecutor& pool, cf::ThreadPoolExecutor& threads, long long size,
               long long& next_id, std::mt19937_64& rng, Tally& tally) {
  // A fifth of the round is one map call, chunks of 8 items; the rest is submitted one by one.
  const long long map_items = size / 5;
  std::discrete_distribution<int> pick(kWeights.begin(), kWeights.end());
  std::vector<Pending> pending;
  std::vector<std::pair<long long, cf::Future<long long>>> thread_tasks;
  pending.reserve(static_cast<std::size_t>(size));
  for (long long i = 0; i < size - map_items; ++i) {
    const auto kind = static_cast<Kind>(pick(rng));
    const long long id = next_id++;
    switch (kind) {
      case kValue:
      case kCancel:
        pending.push_back({kind, id, pool.submit(&normal_task, id)});
        break;
      case kThrowRegistered:
        pending.push_back({kind, id, pool.submit(&throw_registered, id)});
        break;
      case kThrowStd:
        pending.push_back({kind, id, pool.submit(&throw_std, id)});
        break;
      case kThrowUnregistered:
        pending.push_back({kind, id, pool.submit(&throw_unregistered, id)});
        break;
      case kSegfault:
        pending.push_back({kind, id, pool.submit(&segfault, id)});
        break;
      case kExit:
        pending.push_back({kind, id, pool.submit(&exit_with, id % 10)});
        break;
      case kHang:
        pending.push_back({kind, id, pool.submit(&hang, id)});
        break;
      case kThreadTask:
        thread_tasks.emplace_back(id, threads.submit([id] { return expected_value(id); }));
        break;
      case kMapItem:
      case kKinds:
        break;
    }
  }
  // Cancels come after the whole round is queued: the late ones in the round are still waiting
  // in the pool's queue (cancelled), the early ones already handed to a worker (they run).
  for (Pending& p : pending) {
    if (p.kind == kCancel) p.cancel_returned = p.future.cancel();
  }

  std::vector<long long> inputs;
  for (long long i = 0; i < map_items; ++i) inputs.push_back(next_id++);
  long long index = 0;
  try {
    for (const long long value :
         pool.map(&map_item, inputs, cf::MapOptions{.timeout = kOutcomeDeadline, .chunksize = 8})) {
      const long long id = inputs[static_cast<std::size_t>(index++)];
      if (value == expected_value(id)) {
        tally.record(kMapItem, kGotValue);
      } else {
        tally.mismatch(kMapItem, id, "wrong value " + std::to_string(value));
      }
    }
  } catch (const std::exception&) {
    // The item at `index` raised; the map yields nothing after it.
    const std::exception_ptr e = std::current_exception();
    const long long id = inputs[static_cast<std::size_t>(index)];
    if (killed_by_task_timeout(e)) {
      load_timeout(tally, kMapItem, id, describe(e));
    } else {
      tally.mismatch(kMapItem, id,
                     "the map raised " + describe(e) + " with " +
                         std::to_string(map_items - index - 1) + " items after it");
    }
    for (++index; index < map_items; ++index) tally.record(kMapItem, kNotReached);
  }

  for (Pending& p : pending) check(p, tally);
  for (auto& [id, future] : thread_tasks) {
    std::exception_ptr e;
    try {
      e = future.exception(kOutcomeDeadline);
    } catch (const std::exception& x) {
      tally.mismatch(kThreadTask, id, x.what());
      continue;
    }
    if (!e && future.result() == expected_value(id)) {
      tally.record(kThreadTask, kGotValue);
    } else {
      tally.mismatch(kThreadTask, id, "expected a value, got " + describe(e));
    }
  }
}

// --- the report -------------------------------------------------------------------------------

// A text plot of one metric over the run: `width` columns (the largest value in each slice of
// time), `height` rows from the smallest to the largest value seen; a '*' per column.
void plot(const char* title, const std::vector<Sample>& samples, double (*metric)(const Sample&),
          const char* unit) {
  constexpr int width = 64;
  constexpr int height = 8;
  if (samples.empty()) return;
  const double end = std::max(samples.back().seconds, 1e-9);
  std::array<double, width> column{};
  std::array<bool, width> has{};
  double lo = metric(samples.front());
  double hi = lo;
  for (const Sample& s : samples) {
    const int c = std::min(width - 1, static_cast<int>(s.seconds / end * width));
    const double v = metric(s);
    column[c] = has[c] ? std::max(column[c], v) : v;
    has[c] = true;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  std::printf("\n%s (%s) over %.0f s\n", title, unit, end);
  for (int row = height - 1; row >= 0; --row) {
    if (row == height - 1 || row == 0) {
      std::printf("%10.1f |", row == 0 ? lo : hi);
    } else {
      std::printf("%10s |", "");
    }
    for (int c = 0; c < width; ++c) {
      const int at =
          hi == lo ? 0 : static_cast<int>((column[c] - lo) / (hi - lo) * (height - 1) + 0.5);
      std::putchar(has[c] && at == row ? '*' : ' ');
    }
    std::putchar('\n');
  }
  std::printf("%10s +%s\n", "", std::string(width, '-').c_str());
}

// Flat: after a warm-up (the first tenth of the samples taken while the pool ran), descriptors,
// threads and processes stay within fixed bounds above the first sample after it, and the mean
// RSS of the last quarter of those samples is within 10% + 2 MiB of the mean of the first quarter.
// Returns the violations.
std::vector<std::string> check_flat(const std::vector<Sample>& run, const Options& o) {
  std::vector<std::string> problems;
  const std::size_t warm = std::max<std::size_t>(1, run.size() / 10);
  if (run.size() < warm + 4) {
    std::printf("flat: %zu samples, too few for the trend check (bounds checked only)\n",
                run.size());
  }
  if (run.size() <= warm) return problems;
  const Sample& base = run[warm];
  const int workers = static_cast<int>(o.workers);
  // A worker being replaced has a second channel and pidfd for a moment; processes: the workers,
  // the fork server, and as many workers again on their way out.
  const int fd_bound = base.fds + 2 * workers + 2;
  const int thread_bound = base.threads + 2;
  const int process_bound = 2 * workers + 1;
  for (std::size_t i = warm; i < run.size(); ++i) {
    const Sample& s = run[i];
    char line[200];
    if (s.fds > fd_bound) {
      std::snprintf(line, sizeof line, "at %.0f s: %d descriptors > bound %d", s.seconds, s.fds,
                    fd_bound);
      problems.emplace_back(line);
    }
    if (s.threads > thread_bound) {
      std::snprintf(line, sizeof line, "at %.0f s: %d threads > bound %d", s.seconds, s.threads,
                    thread_bound);
      problems.emplace_back(line);
    }
    if (s.processes > process_bound) {
      std::snprintf(line, sizeof line, "at %.0f s: %d processes > bound %d", s.seconds, s.processes,
                    process_bound);
      problems.emplace_back(line);
    }
  }
  const std::size_t n = run.size() - warm;
  if (n >= 4) {
    const std::size_t quarter = n / 4;
    double first = 0;
    double last = 0;
    for (std::size_t i = 0; i < quarter; ++i) {
      first += static_cast<double>(run[warm + i].rss_kib);
      last += static_cast<double>(run[run.size() - 1 - i].rss_kib);
    }
    first /= static_cast<double>(quarter);
    last /= static_cast<double>(quarter);
    std::printf(
        "flat: RSS mean of the first quarter %.0f KiB, of the last quarter %.0f KiB "
        "(bound %.0f KiB)\n",
        first, last, first * 1.10 + 2048);
    if (kSanitizer) {
      std::printf("flat: RSS not checked: built with a sanitizer, whose allocator keeps memory\n");
    } else if (last > first * 1.10 + 2048) {
      problems.push_back("RSS grew: " + std::to_string(static_cast<long>(first)) + " -> " +
                         std::to_string(static_cast<long>(last)) + " KiB");
    }
  }
  std::printf("flat: bounds after warm-up: fds <= %d, threads <= %d, processes <= %d\n", fd_bound,
              thread_bound, process_bound);
  return problems;
}

void print_metric(const char* name, const Sample& before, const std::vector<Sample>& run,
                  const Sample& after, long Sample::*member_long, int Sample::*member_int) {
  auto get = [&](const Sample& s) {
    return member_long != nullptr ? static_cast<long>(s.*member_long)
                                  : static_cast<long>(s.*member_int);
  };
  long mx = get(before);
  for (const Sample& s : run) mx = std::max(mx, get(s));
  std::printf("%-22s %10ld %10ld %10ld %10ld %10ld\n", name, get(before),
              run.empty() ? -1 : get(run.front()), run.empty() ? -1 : get(run.back()), mx,
              get(after));
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const char* value = eq == std::string::npos ? "" : argv[i] + eq + 1;
    if (name == "--minutes") {
      o.minutes = std::atof(value);
    } else if (name == "--tasks") {
      o.tasks = std::atoll(value);
    } else if (name == "--seed") {
      o.seed = static_cast<unsigned>(std::strtoul(value, nullptr, 10));
    } else if (name == "--workers") {
      o.workers = static_cast<std::size_t>(std::atoll(value));
    } else if (name == "--task-timeout-ms") {
      o.task_timeout_ms = std::atoll(value);
    } else if (name == "--max-tasks-per-child") {
      o.max_tasks_per_child = static_cast<std::size_t>(std::atoll(value));
    } else if (name == "--sample-seconds") {
      o.sample_seconds = std::atof(value);
    } else if (name == "--round") {
      o.round = std::atoll(value);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--minutes=M] [--tasks=N] [--seed=S] [--workers=W] "
                   "[--task-timeout-ms=T] [--max-tasks-per-child=K] [--sample-seconds=P] "
                   "[--round=R]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  if (o.tasks <= 0 || o.workers == 0 || o.task_timeout_ms <= 0 || o.max_tasks_per_child == 0 ||
      o.sample_seconds <= 0 || o.round <= 0 || o.minutes < 0) {
    std::fprintf(stderr, "%s: every option must be positive (--minutes may be 0)\n", argv[0]);
    std::exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  const Options o = parse(argc, argv);
  std::printf(
      "cfutures_soak --minutes=%g --tasks=%lld --seed=%u --workers=%zu "
      "--task-timeout-ms=%lld --max-tasks-per-child=%zu --sample-seconds=%g --round=%lld\n",
      o.minutes, o.tasks, o.seed, o.workers, o.task_timeout_ms, o.max_tasks_per_child,
      o.sample_seconds, o.round);
  std::fflush(stdout);

  const auto t0 = Clock::now();
  // Before the sampler's thread starts, and after it ends: the same threads either way.
  const Sample before = take_sample(t0);
  Sampler sampler(t0, std::chrono::duration<double>(o.sample_seconds));
  Tally tally;
  std::mt19937_64 rng(o.seed);
  long long next_id = 0;
  long long submitted = 0;
  bool cut_short = false;
  double run_end_seconds = 0;
  {
    cf::ProcessPoolOptions options;
    options.max_workers = o.workers;
    options.start_method = cf::StartMethod::forkserver;
    options.on_worker_crash = cf::CrashPolicy::replace_worker;
    options.task_timeout = std::chrono::milliseconds(o.task_timeout_ms);
    options.max_tasks_per_child = o.max_tasks_per_child;
    cf::ProcessPoolExecutor pool(options);
    cf::ThreadPoolExecutor threads(2);

    const long long rounds = (o.tasks + o.round - 1) / o.round;
    const auto run_for = std::chrono::duration<double>(o.minutes * 60);
    const auto give_up = t0 + run_for * 1.5;
    for (long long r = 0; r < rounds; ++r) {
      const long long size = std::min(o.round, o.tasks - submitted);
      if (o.minutes > 0) {
        if (Clock::now() > give_up) {
          cut_short = true;
          break;
        }
        const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                  run_for * (static_cast<double>(r) / static_cast<double>(rounds)));
        std::this_thread::sleep_until(due);
      }
      run_round(pool, threads, size, next_id, rng, tally);
      tally.end_round();
      submitted += size;
      if (r % std::max<long long>(1, rounds / 20) == 0 || r + 1 == rounds) {
        std::printf("[%7.1f s] %lld/%lld tasks, %lld mismatches, RSS %ld KiB, %d fds\n",
                    std::chrono::duration<double>(Clock::now() - t0).count(), submitted, o.tasks,
                    tally.mismatches, read_rss_kib(), count_entries("/proc/self/fd", true));
        std::fflush(stdout);
      }
    }
    run_end_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  }  // both pools shut down (wait=true): every worker and the fork server reaped

  sampler.stop();
  const Sample after = take_sample(t0);
  std::vector<Sample> run;
  for (const Sample& s : sampler.samples()) {
    if (s.seconds <= run_end_seconds) run.push_back(s);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  std::printf("\n%-26s %12s  %s\n", "kind", "tasks", "outcomes");
  long long total = 0;
  for (int k = 0; k < kKinds; ++k) {
    long long n = 0;
    std::string outcomes;
    for (int out = 0; out < kOutcomes; ++out) {
      const long long c = tally.counts[k][out];
      n += c;
      if (c > 0) {
        outcomes += (outcomes.empty() ? "" : ", ") + std::string(kOutcomeNames[out]) + " " +
                    std::to_string(c);
      }
    }
    total += n;
    std::printf("%-26s %12lld  %s\n", kKindNames[k], n, outcomes.c_str());
  }
  std::printf("%-26s %12lld  in %.1f s (%.1f min), %lld worker processes served value tasks\n",
              "total", total, seconds, seconds / 60, tally.workers_seen);
  if (cut_short) {
    std::printf("note: stopped submitting at 1.5 x --minutes, after %lld of %lld tasks\n",
                submitted, o.tasks);
  }

  const std::size_t most = tally.most_tasks_per_worker;
  if (most > o.max_tasks_per_child) {
    tally.mismatches += 1;
    tally.first_mismatches.push_back("a worker ran " + std::to_string(most) +
                                     " tasks, over max_tasks_per_child " +
                                     std::to_string(o.max_tasks_per_child));
  }
  // Timeouts under load (killed_by_task_timeout) are allowed up to one in 10,000 tasks, and at
  // least 5: more would say the pool's clock is wrong, not the machine busy.
  const long long allowed_load_timeouts = std::max<long long>(5, total / 10'000);
  std::printf(
      "timed out under load: %lld (allowed: %lld); the sampler's wake-ups came up to "
      "%.0f ms late\n",
      tally.load_timeouts, allowed_load_timeouts, sampler.max_late_ms());

  std::printf("\n%-22s %10s %10s %10s %10s %10s\n", "parent", "before", "first", "last", "max",
              "after");
  print_metric("RSS (KiB)", before, run, after, &Sample::rss_kib, nullptr);
  print_metric("descriptors", before, run, after, nullptr, &Sample::fds);
  print_metric("threads", before, run, after, nullptr, &Sample::threads);
  print_metric("processes (descendants)", before, run, after, nullptr, &Sample::processes);
  std::printf(
      "(%zu samples every %g s while the pools ran; before: no pool yet; after: both "
      "pools shut down)\n",
      run.size(), o.sample_seconds);

  plot(
      "parent RSS", run, [](const Sample& s) { return static_cast<double>(s.rss_kib) / 1024; },
      "MiB");
  plot(
      "parent descriptors", run, [](const Sample& s) { return static_cast<double>(s.fds); },
      "count");

  std::printf("\n");
  std::vector<std::string> problems = check_flat(run, o);
  if (after.fds != before.fds) {
    problems.push_back("descriptors after shutdown " + std::to_string(after.fds) + " != before " +
                       std::to_string(before.fds));
  }
  if (after.threads != before.threads + kSanitizerThreads) {
    problems.push_back("threads after shutdown " + std::to_string(after.threads) + " != before " +
                       std::to_string(before.threads));
  }
  if (after.processes != 0) {
    problems.push_back(std::to_string(after.processes) + " processes left after shutdown");
  }

  for (const std::string& m : tally.first_mismatches) std::printf("MISMATCH %s\n", m.c_str());
  for (const std::string& p : problems) std::printf("NOT FLAT %s\n", p.c_str());
  if (tally.load_timeouts > allowed_load_timeouts) {
    std::printf("TOO MANY tasks timed out under load: %lld > %lld\n", tally.load_timeouts,
                allowed_load_timeouts);
  }
  const bool ok =
      tally.mismatches == 0 && problems.empty() && tally.load_timeouts <= allowed_load_timeouts;
  std::printf("\nsoak: %s (%lld tasks, %lld mismatches, %zu metric violations)\n",
              ok ? "PASSED" : "FAILED", total, tally.mismatches, problems.size());
  return ok ? 0 : 1;
}
