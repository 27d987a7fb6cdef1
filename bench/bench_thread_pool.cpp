// ThreadPoolExecutor against its anchors, measured in the same run, all pools with 2 workers:
//
//   1. throughput: 1,000,000 trivial tasks, submit all, then result() each
//      (anchors: Boost.Asio thread_pool + std::promise, oneTBB task_arena::enqueue + std::promise)
//   2. latency: one task at a time, submit then result(); the median round trip
//   3. the seed workloads (is_prime, naive factorization through map, gcd by counting down)
//      against the same code run serially, with their results checked
//   4. map over 1,000,000 items of about 1 us each with chunksize = 0, against a serial loop
//
// A plain harness rather than Google Benchmark: each measurement is a whole workload, repeated
// --reps times with ours and its anchor interleaved (so a burst of load elsewhere hits both),
// and the table reports medians, their ratio and whether the goal is met.
//
//   bench_thread_pool [--reps=N] [--filter=SUBSTRING] [--quick] [--tag=NAME]
//
// --tag=NAME marks every row "[NAME]" and writes the table as anchors_thread_NAME.csv: bench/run.sh
// runs seed (b) again with jemalloc preloaded (--tag=jemalloc) to show what the allocator costs.
// --reps defaults to 5. --quick divides the task counts of sections 1, 2, 3b and 4 by 10 (a
// smoke test; the goals are stated for the full sizes). The exit status is 0 even when a goal is
// missed: a missed goal is a finding to report, a wrong result (exit 1) is a bug.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <future>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <concurrent/futures.hpp>

#include "../demo/seeds.hpp"

namespace cf = concurrent::futures;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kWorkers = 2;

// --- options and helpers ----------------------------------------------------------------------

struct Options {
  int reps = 5;
  std::string filter;
  bool quick = false;
  std::string tag;  // --tag=NAME: rows marked "[NAME]", table written as anchors_thread_NAME.csv
  std::string command;
};

Options g_options;
std::string g_tag;  // " [NAME]" with --tag=NAME, else empty

bool selected(const std::string& name) {
  return g_options.filter.empty() || name.find(g_options.filter) != std::string::npos;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  if (!(in >> one >> five >> fifteen)) return "unknown";
  return one + " " + five + " " + fifteen;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  return buffer;
}

// How much of the machine other processes used while a section ran: the busy time of all CPUs
// minus this process's own, as a share of all CPU time. On a shared 2-core machine one busy
// neighbour takes a whole core from a pool of 2 workers, so every section reports this figure.
class CpuMeter {
 public:
  CpuMeter() : start_(sample()) {}
  // Percent of the machine's CPU time used by other processes since construction (-1: unknown).
  double others_percent() const {
    const Sample now = sample();
    const double all = now.all - start_.all;
    if (all <= 0 || start_.all == 0) return -1;
    const double others = (now.busy - start_.busy) - (now.self - start_.self);
    return std::clamp(100.0 * others / all, 0.0, 100.0);
  }

 private:
  struct Sample {
    double busy = 0, all = 0, self = 0;  // clock ticks
  };
  static Sample sample() {
    Sample s;
    std::ifstream stat("/proc/stat");
    std::string cpu;
    double user, nice, system, idle, iowait, irq, softirq, steal;
    if (stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) {
      s.busy = user + nice + system + irq + softirq + steal;
      s.all = s.busy + idle + iowait;
    }
    std::ifstream self("/proc/self/stat");
    std::string line;
    if (std::getline(self, line)) {
      // Fields 14 and 15 (utime, stime) follow the command name, which ends with ')'.
      std::istringstream rest(line.substr(line.rfind(')') + 2));
      std::string field;
      for (int i = 3; i <= 13 && rest >> field; ++i) {
      }
      double utime = 0, stime = 0;
      if (rest >> utime >> stime) s.self = utime + stime;
    }
    return s;
  }
  Sample start_;
};

void print_others(const CpuMeter& meter) {
  std::printf("  CPU used by other processes during this section: %.0f%%\n",
              meter.others_percent());
}

// Lets the threads of the pool measured last go to sleep (TBB workers and ours spin for a while
// when they run out of work) before the next measurement starts.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

[[noreturn]] void wrong_result(const std::string& what) {
  std::fprintf(stderr, "WRONG RESULT: %s\n", what.c_str());
  std::exit(1);
}

// --- the table ----------------------------------------------------------------------------------

struct Row {
  std::string measurement;
  std::string anchor_name;
  std::string unit;
  double ours = 0;
  double anchor = 0;
  bool higher_is_better = false;  // throughput: yes; time: no
  std::string goal;               // e.g. ">= 3x", "<= 5 us", "info"
  double goal_factor = 0;         // speed-up needed (>= goal_factor), 0: see goal_limit
  double goal_limit = 0;          // absolute limit on ours (<= goal_limit), 0: none
  double raw_threads = 0;         // time of the same work on 2 hand-made std::threads, 0: none

  // How many times better ours is than the anchor (> 1: ours wins).
  double speedup() const {
    if (ours <= 0 || anchor <= 0) return 0;
    return higher_is_better ? ours / anchor : anchor / ours;
  }
  std::string status() const {
    if (goal_factor > 0) return speedup() >= goal_factor ? "met" : "MISSED";
    if (goal_limit > 0) return ours <= goal_limit ? "met" : "MISSED";
    return "-";
  }
};

std::vector<Row> g_rows;

std::string format_value(double v) {
  char buffer[32];
  if (v >= 100) {
    std::snprintf(buffer, sizeof buffer, "%.0f", v);
  } else if (v >= 10) {
    std::snprintf(buffer, sizeof buffer, "%.1f", v);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.2f", v);
  }
  return buffer;
}

void print_table() {
  std::printf(
      "\n| measurement | unit | ours | anchor | anchor value | ours/anchor | speed-up | goal | "
      "status | 2 raw threads |\n|---|---|---:|---|---:|---:|---:|---|---|---:|\n");
  for (const Row& row : g_rows) {
    const double ratio = row.anchor > 0 ? row.ours / row.anchor : 0;
    char raw[32] = "-";
    if (row.raw_threads > 0) std::snprintf(raw, sizeof raw, "%.2fx", row.anchor / row.raw_threads);
    std::printf("| %s | %s | %s | %s | %s | %.2f | %.2fx | %s | %s | %s |\n",
                row.measurement.c_str(), row.unit.c_str(), format_value(row.ours).c_str(),
                row.anchor_name.c_str(), format_value(row.anchor).c_str(), ratio, row.speedup(),
                row.goal.c_str(), row.status().c_str(), raw);
  }
  std::printf(
      "\nours, anchor: medians over %d repetitions, ours and anchor interleaved. ours/anchor: "
      "ratio of the medians; speed-up: how many times better ours is (time: anchor/ours, "
      "throughput: ours/anchor). 2 raw threads: the speed-up over the serial loop of the same work "
      "split between 2 plain std::threads that claim items from an atomic counter (no futures, no "
      "pool): what this machine allowed at that moment, not a goal.\n",
      g_options.reps);
}

// The table as anchors_thread.csv in $CFUTURES_BENCH_OUT, when it is set, for bench/plot.sh.
// goal_speedup restates the goal as a speed-up over that row's anchor (a limit such as "<= 5 us"
// becomes anchor / 5); 0 when the row has no goal. Commas in names become semicolons (gnuplot
// splits quoted fields at commas too).
void write_csv() {
  auto field = [](std::string text) {
    std::replace(text.begin(), text.end(), ',', ';');
    return text;
  };
  const char* dir = std::getenv("CFUTURES_BENCH_OUT");
  if (dir == nullptr || *dir == '\0') return;
  const std::string path = std::string(dir) + "/anchors_thread" +
                           (g_options.tag.empty() ? "" : "_" + g_options.tag) + ".csv";
  std::ofstream out(path);
  out << "measurement,anchor,unit,ours,anchor_value,speedup,goal_speedup\n";
  for (const Row& row : g_rows) {
    double goal = row.goal_factor;
    if (goal == 0 && row.goal_limit > 0) {
      goal = row.higher_is_better ? row.goal_limit / row.anchor : row.anchor / row.goal_limit;
    }
    out << field(row.measurement) << ',' << field(row.anchor_name) << ',' << field(row.unit) << ','
        << row.ours << ',' << row.anchor << ',' << row.speedup() << ',' << goal << '\n';
  }
  if (!out) std::fprintf(stderr, "cannot write %s\n", path.c_str());
}

// Prints the per-repetition figures so that the spread is visible next to the median.
void print_samples(const char* label, const std::vector<double>& samples, const char* unit) {
  std::printf("  %-44s median %9s %-7s  [", label, format_value(median(samples)).c_str(), unit);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    std::printf("%s%s", i ? " " : "", format_value(samples[i]).c_str());
  }
  std::printf("]\n");
}

// --- 1. throughput of trivial tasks -------------------------------------------------------------

// The task body every pool runs: trivial, but its result is checked so nothing is optimised away.
int trivial(int i) { return i ^ 0x5a5a; }

long long expected_sum(int n) {
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += trivial(i);
  return sum;
}

long long ours_submit_all(cf::ThreadPoolExecutor& pool, int n) {
  std::vector<cf::Future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) futures.push_back(pool.submit(trivial, i));
  long long sum = 0;
  for (const cf::Future<int>& future : futures) sum += future.result();
  return sum;
}

// What the anchors run: the same body, its value or exception set on a std::promise, as a
// packaged_task would. `mutable` because TBB calls an enqueued functor through a const
// reference; Asio gets the same functor so both anchors do the same work.
struct PromiseTask {
  mutable std::promise<int> promise;
  int i;
  void operator()() const {
    try {
      promise.set_value(trivial(i));
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
  }
};

template <class Post>
long long promise_submit_all(Post&& post, int n) {
  std::vector<std::future<int>> futures;
  futures.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    PromiseTask task{std::promise<int>(), i};
    futures.push_back(task.promise.get_future());
    post(std::move(task));
  }
  long long sum = 0;
  for (std::future<int>& future : futures) sum += future.get();
  return sum;
}

// TBB's own idiom without any future, the rate the issue asks ours to reach with one: a
// task_group run from inside arena(2), whose one reserved slot the calling thread takes while it
// waits (so the caller and TBB's one worker run the tasks). Each result goes into its slot.
long long tbb_group_all(tbb::task_arena& arena, int n) {
  std::vector<int> results(static_cast<std::size_t>(n));
  arena.execute([&] {
    tbb::task_group group;
    for (int i = 0; i < n; ++i) {
      group.run([&results, i] { results[static_cast<std::size_t>(i)] = trivial(i); });
    }
    group.wait();
  });
  long long sum = 0;
  for (int r : results) sum += r;
  return sum;
}

// The three pools of sections 1 and 2. TBB: task_arena(2) as the issue states it reserves one of
// its two slots for an application thread that joins the arena (execute/wait), which enqueue-only
// code never does, and TBB's global scheduler has hardware_concurrency - 1 = 1 worker on this
// machine; so that arena runs enqueued tasks on ONE thread. The second TBB anchor lifts both
// limits (global_control 3 = main + 2 workers, arena(2, 0)) to get 2 worker threads like the
// others; both are reported and the goals are checked against the stronger.
struct Pools {
  cf::ThreadPoolExecutor ours{static_cast<std::size_t>(kWorkers)};
  boost::asio::thread_pool asio{kWorkers};
  tbb::global_control tbb_threads{tbb::global_control::max_allowed_parallelism, kWorkers + 1};
  tbb::task_arena tbb_default{kWorkers};
  tbb::task_arena tbb_two_workers{kWorkers, 0};

  auto asio_post() {
    return [this](auto&& task) { boost::asio::post(asio, std::move(task)); };
  }
  static auto tbb_post(tbb::task_arena& arena) {
    return [&arena](auto&& task) { arena.enqueue(std::move(task)); };
  }

  Pools() {
    // Start every thread (ours start lazily, TBB's on first use) before anything is timed.
    const int n = 20000;
    const long long expected = expected_sum(n);
    if (ours_submit_all(ours, n) != expected || promise_submit_all(asio_post(), n) != expected ||
        promise_submit_all(tbb_post(tbb_default), n) != expected ||
        promise_submit_all(tbb_post(tbb_two_workers), n) != expected) {
      wrong_result("warm-up sums");
    }
    if (ours.thread_count() != static_cast<std::size_t>(kWorkers)) {
      wrong_result("ThreadPoolExecutor(2) started " + std::to_string(ours.thread_count()) +
                   " threads");
    }
  }
};

// The four pools' samples of one section, printed, then recorded as three rows: ours against
// Asio (with `asio_goal`) and against each TBB arena (with `tbb_goal`).
struct PoolSamples {
  std::vector<double> ours, asio, tbb1, tbb2;
};
struct Goal {
  const char* text;
  double factor;  // speed-up needed, 0: see limit
  double limit;   // absolute limit on ours, 0: none
};

void report_pools(const CpuMeter& meter, const PoolSamples& s, const char* sample_unit,
                  const std::string& what, const char* unit, bool higher_is_better, Goal asio_goal,
                  Goal tbb_goal) {
  print_samples("cfutures ThreadPoolExecutor(2)", s.ours, sample_unit);
  print_samples("Boost.Asio thread_pool(2) + promise", s.asio, sample_unit);
  print_samples("oneTBB task_arena(2) + promise", s.tbb1, sample_unit);
  print_samples("oneTBB task_arena(2, 0), 2 workers + promise", s.tbb2, sample_unit);
  print_others(meter);
  const double ours = median(s.ours);
  const auto row = [&](const char* anchor, const std::vector<double>& samples, Goal goal) {
    g_rows.push_back({what, anchor, unit, ours, median(samples), higher_is_better, goal.text,
                      goal.factor, goal.limit});
  };
  row("Asio thread_pool + promise", s.asio, asio_goal);
  row("TBB task_arena(2) + promise", s.tbb1, tbb_goal);
  row("TBB task_arena(2,0), 2 workers", s.tbb2, tbb_goal);
}

void bench_throughput(Pools& pools) {
  if (!selected("throughput")) return;
  const int n = g_options.quick ? 100000 : 1000000;
  const long long expected = expected_sum(n);
  PoolSamples s;
  std::vector<double> group;
  auto measure = [&](std::vector<double>& out, auto&& run) {
    settle();
    const auto start = Clock::now();
    const long long sum = run();
    out.push_back(n / seconds_since(start) / 1e6);
    if (sum != expected) wrong_result("sum of the trivial tasks");
  };
  std::printf("\n[1] throughput: %d trivial tasks, submit all then result() each (M tasks/s)\n", n);
  const CpuMeter meter;
  for (int r = 0; r < g_options.reps; ++r) {
    measure(s.ours, [&] { return ours_submit_all(pools.ours, n); });
    measure(s.asio, [&] { return promise_submit_all(pools.asio_post(), n); });
    measure(s.tbb1, [&] { return promise_submit_all(Pools::tbb_post(pools.tbb_default), n); });
    measure(s.tbb2, [&] { return promise_submit_all(Pools::tbb_post(pools.tbb_two_workers), n); });
    measure(group, [&] { return tbb_group_all(pools.tbb_default, n); });
  }
  report_pools(meter, s, "M/s", "1M trivial tasks, submit all, result() each", "M tasks/s", true,
               {">= 3x", 3.0, 0}, {">= 1.5x", 1.5, 0});
  print_samples("oneTBB task_group in arena(2), no future", group, "M/s");
  g_rows.push_back({"1M trivial tasks, submit all, result() each", "TBB task_group, no future",
                    "M tasks/s", median(s.ours), median(group), true, ">= 1x", 1.0, 0});
}

// --- 2. round trip ------------------------------------------------------------------------------

// One sample per round trip; the median of a repetition's samples is that repetition's figure.
template <class RoundTrip>
double median_round_trip_us(int samples, RoundTrip&& round_trip) {
  std::vector<double> times;
  times.reserve(static_cast<std::size_t>(samples));
  for (int i = 0; i < samples; ++i) {
    const auto start = Clock::now();
    if (round_trip(i) != trivial(i)) wrong_result("round trip value");
    times.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  return median(std::move(times));
}

template <class Post>
int promise_round_trip(Post&& post, int i) {
  PromiseTask task{std::promise<int>(), i};
  std::future<int> future = task.promise.get_future();
  post(std::move(task));
  return future.get();
}

void bench_round_trip(Pools& pools) {
  if (!selected("round")) return;
  const int samples = g_options.quick ? 2000 : 20000;
  PoolSamples s;
  std::printf("\n[2] round trip: submit one task, result(); %d samples per repetition (us)\n",
              samples);
  const CpuMeter meter;
  for (int r = 0; r < g_options.reps; ++r) {
    settle();
    s.ours.push_back(median_round_trip_us(
        samples, [&](int i) { return pools.ours.submit(trivial, i).result(); }));
    settle();
    s.asio.push_back(median_round_trip_us(
        samples, [&](int i) { return promise_round_trip(pools.asio_post(), i); }));
    settle();
    s.tbb1.push_back(median_round_trip_us(
        samples, [&](int i) { return promise_round_trip(Pools::tbb_post(pools.tbb_default), i); }));
    settle();
    s.tbb2.push_back(median_round_trip_us(samples, [&](int i) {
      return promise_round_trip(Pools::tbb_post(pools.tbb_two_workers), i);
    }));
  }
  report_pools(meter, s, "us", "round trip: submit 1 task, result()", "us (median)", false,
               {"<= 5 us", 0, 5.0}, {"<= 5 us", 0, 5.0});
}

// --- 3. seed workloads --------------------------------------------------------------------------

using seeds::factorize_naive;
using seeds::gcd_countdown;
using seeds::is_prime;
using seeds::Pair;

// The best a pool that runs each item as one task in FIFO order on 2 workers can do: the
// makespan of that list schedule, from the serial time of each item.
double fifo_bound(const std::vector<double>& item_seconds) {
  double total = 0, worker[kWorkers] = {};
  for (double t : item_seconds) {
    *std::min_element(worker, worker + kWorkers) += t;
    total += t;
  }
  return total / *std::max_element(worker, worker + kWorkers);
}

// The sum of fn(0) ... fn(n - 1) on 2 plain std::threads that claim runs of `grain` indices from
// an atomic counter: the reference for what the machine allows, without futures or a pool. Each
// thread adds into its own total, and the two are added once at the end (an atomic add per item
// would bounce one cache line between the CPUs on every item, and understate the machine).
template <class Fn>
std::uint64_t sum_on_two_threads(std::size_t n, std::size_t grain, Fn&& fn) {
  std::atomic<std::size_t> next{0};
  std::uint64_t totals[2] = {0, 0};
  auto body = [&](std::uint64_t& total) {
    std::uint64_t sum = 0;
    for (;;) {
      const std::size_t begin = next.fetch_add(grain, std::memory_order_relaxed);
      if (begin >= n) break;
      for (std::size_t i = begin; i < std::min(n, begin + grain); ++i) sum += fn(i);
    }
    total = sum;
  };
  std::thread other(body, std::ref(totals[1]));
  body(totals[0]);
  other.join();
  return totals[0] + totals[1];
}

// fn(0) ... fn(n - 1) the same way, for work whose results are stored rather than summed.
template <class Fn>
void on_two_threads(std::size_t n, std::size_t grain, Fn&& fn) {
  sum_on_two_threads(n, grain, [&](std::size_t i) {
    fn(i);
    return std::uint64_t{0};
  });
}

struct Medians {
  double serial_ms, pool_ms, raw_ms;
};

// Runs `serial`, `parallel` (the pool) and `raw` (2 plain threads) interleaved, checks each
// result against the serial one with `check`, and returns the medians in milliseconds.
template <class Serial, class Parallel, class Raw, class Check>
Medians serial_vs_pool(const char* label, Serial&& serial, Parallel&& parallel, Raw&& raw,
                       Check&& check) {
  std::vector<double> serial_times, pool_times, raw_times;
  auto timed = [](std::vector<double>& times, auto&& run) {
    settle();
    const auto start = Clock::now();
    auto result = run();
    times.push_back(seconds_since(start) * 1e3);
    return result;
  };
  for (int r = 0; r < g_options.reps; ++r) {
    auto expected = timed(serial_times, serial);
    check(expected, timed(pool_times, parallel));
    check(expected, timed(raw_times, raw));
  }
  print_samples((std::string(label) + ", serial").c_str(), serial_times, "ms");
  print_samples((std::string(label) + ", ThreadPoolExecutor(2)").c_str(), pool_times, "ms");
  print_samples((std::string(label) + ", 2 raw std::threads").c_str(), raw_times, "ms");
  return {median(serial_times), median(pool_times), median(raw_times)};
}

void bench_is_prime(cf::ThreadPoolExecutor& pool) {
  if (!selected("is_prime")) return;
  const std::vector<std::uint64_t>& numbers = seeds::kPrimeCandidates;
  std::printf("\n[3a] is_prime by trial division over %zu numbers, pool.map(is_prime, numbers)\n",
              numbers.size());
  auto serial = [&] {
    std::vector<bool> out;
    for (std::uint64_t n : numbers) out.push_back(is_prime(n));
    return out;
  };
  auto parallel = [&] {
    std::vector<bool> out;
    for (bool prime : pool.map(is_prime, numbers)) out.push_back(prime);
    return out;
  };
  auto raw = [&] {
    std::vector<char> primes(numbers.size());
    on_two_threads(numbers.size(), 1, [&](std::size_t i) { primes[i] = is_prime(numbers[i]); });
    return std::vector<bool>(primes.begin(), primes.end());
  };
  const std::vector<bool> known = {true, true, true, true, true, false};
  auto check = [&](const std::vector<bool>& a, const std::vector<bool>& b) {
    if (a != known || b != known) wrong_result("is_prime");
  };
  const CpuMeter meter;
  const Medians m = serial_vs_pool("is_prime", serial, parallel, raw, check);
  print_others(meter);

  std::vector<double> item_seconds;
  for (std::uint64_t n : numbers) {
    const auto start = Clock::now();
    if (is_prime(n) != (n != 1099726899285419)) wrong_result("is_prime");
    item_seconds.push_back(seconds_since(start));
  }
  std::printf("  results:");
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    std::printf(" %llu:%s", static_cast<unsigned long long>(numbers[i]),
                is_prime(numbers[i]) ? "prime" : "composite");
  }
  std::printf("\n  per-number serial ms:");
  for (double s : item_seconds) std::printf(" %.1f", s * 1e3);
  std::printf("\n  ceiling for one task per number on 2 workers (FIFO list schedule): %.2fx\n",
              fifo_bound(item_seconds));
  // The goal is issue 10's: one task per number cannot beat the FIFO ceiling printed above
  // (about 1.77x), so ">= 1.8x" of an earlier issue could never be met.
  g_rows.push_back({"seed (a): is_prime x6, map", "serial loop", "ms", m.pool_ms, m.serial_ms,
                    false, ">= 1.74x", 1.74, 0, m.raw_ms});
}

void bench_factorize(cf::ThreadPoolExecutor& pool) {
  if (!selected("factorize")) return;
  const std::uint64_t last = g_options.quick ? 20000 : 200000;
  const std::size_t chunksize = 1000;
  std::vector<std::uint64_t> numbers(last);
  std::iota(numbers.begin(), numbers.end(), std::uint64_t{1});
  std::printf(
      "\n[3b] naive factorization of 1..%llu, pool.map(factorize_naive, numbers, "
      "{.chunksize = %zu}) and {.chunksize = 0}\n",
      static_cast<unsigned long long>(last), chunksize);
  using Factors = std::vector<std::vector<std::uint64_t>>;
  auto serial = [&] {
    Factors out;
    out.reserve(numbers.size());
    for (std::uint64_t n : numbers) out.push_back(factorize_naive(n));
    return out;
  };
  auto through_map = [&](std::size_t chunk) {
    return [&pool, &numbers, chunk] {
      Factors out;
      out.reserve(numbers.size());
      for (auto&& factors :
           pool.map(factorize_naive, numbers, cf::MapOptions{.chunksize = chunk})) {
        out.push_back(std::move(factors));
      }
      return out;
    };
  };
  auto raw = [&] {
    Factors out(numbers.size());
    on_two_threads(numbers.size(), chunksize,
                   [&](std::size_t i) { out[i] = factorize_naive(numbers[i]); });
    return out;
  };
  auto check = [&](const Factors& a, const Factors& b) {
    if (a != b || a.size() != numbers.size()) wrong_result("factorization differs from serial");
    for (std::size_t i = 0; i < a.size(); ++i) {
      std::uint64_t product = 1;
      for (std::uint64_t f : a[i]) product *= f;
      if (product != (numbers[i] < 2 ? 1 : numbers[i]) ||
          !std::is_sorted(a[i].begin(), a[i].end())) {
        wrong_result("factors of " + std::to_string(numbers[i]));
      }
    }
  };
  const CpuMeter meter;
  const Medians m =
      serial_vs_pool("factorize, chunksize 1000", serial, through_map(chunksize), raw, check);
  const Medians m0 = serial_vs_pool("factorize, chunksize 0", serial, through_map(0), raw, check);

  // The shape: each result is dropped as soon as it is read (its factors counted), so
  // the iterating thread frees 200,000 small vectors that the workers allocated meanwhile.
  auto count_serial = [&] {
    std::size_t count = 0;
    for (std::uint64_t n : numbers) count += factorize_naive(n).size();
    return count;
  };
  auto count_through_map = [&] {
    std::size_t count = 0;
    for (const auto& factors :
         pool.map(factorize_naive, numbers, cf::MapOptions{.chunksize = chunksize})) {
      count += factors.size();
    }
    return count;
  };
  auto count_raw = [&] {
    return static_cast<std::size_t>(
        sum_on_two_threads(numbers.size(), chunksize,
                           [&](std::size_t i) { return factorize_naive(numbers[i]).size(); }));
  };
  auto same_count = [](std::size_t a, std::size_t b) {
    if (a != b || a == 0) wrong_result("count of factors differs from serial");
  };
  const Medians md = serial_vs_pool("factorize, chunksize 1000, dropped as read", count_serial,
                                    count_through_map, count_raw, same_count);
  print_others(meter);

  const Factors factors = serial();
  std::size_t primes = 0, prime_factors = 0;
  for (const auto& f : factors) {
    primes += f.size() == 1;
    prime_factors += f.size();
  }
  std::printf("  results: %zu primes up to %llu, %zu prime factors in all; factors of %llu:",
              primes, static_cast<unsigned long long>(last), prime_factors,
              static_cast<unsigned long long>(last - 1));
  for (std::uint64_t f : factors[last - 2])
    std::printf(" %llu", static_cast<unsigned long long>(f));
  std::printf("\n");
  g_rows.push_back({"seed (b): factorize 1..200000, map chunksize 1000, dropped as read" + g_tag,
                    "serial loop", "ms", md.pool_ms, md.serial_ms, false, ">= 1.8x", 1.8, 0,
                    md.raw_ms});
  g_rows.push_back({"seed (b): same, every result kept" + g_tag, "serial loop", "ms", m.pool_ms,
                    m.serial_ms, false, "info", 0, 0, m.raw_ms});
  g_rows.push_back({"seed (b'): kept, map chunksize 0 (auto)" + g_tag, "serial loop", "ms",
                    m0.pool_ms, m0.serial_ms, false, "info", 0, 0, m0.raw_ms});
}

void bench_gcd(cf::ThreadPoolExecutor& pool) {
  if (!selected("gcd")) return;
  const std::vector<Pair>& pairs = seeds::kGcdPairs;
  std::printf("\n[3c] gcd by counting down over %zu pairs, pool.map(gcd_countdown, pairs)\n",
              pairs.size());
  auto serial = [&] {
    std::vector<std::uint64_t> out;
    for (const Pair& p : pairs) out.push_back(gcd_countdown(p));
    return out;
  };
  auto parallel = [&] {
    std::vector<std::uint64_t> out;
    for (std::uint64_t g : pool.map(gcd_countdown, pairs)) out.push_back(g);
    return out;
  };
  auto raw = [&] {
    std::vector<std::uint64_t> out(pairs.size());
    on_two_threads(pairs.size(), 1, [&](std::size_t i) { out[i] = gcd_countdown(pairs[i]); });
    return out;
  };
  auto check = [&](const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      if (a[i] != std::gcd(pairs[i].first, pairs[i].second) || b[i] != a[i]) {
        wrong_result("gcd of pair " + std::to_string(i));
      }
    }
  };
  const CpuMeter meter;
  const Medians m = serial_vs_pool("gcd", serial, parallel, raw, check);
  print_others(meter);
  std::vector<double> item_seconds;
  std::printf("  results: gcds");
  for (const Pair& p : pairs) {
    const auto start = Clock::now();
    const std::uint64_t g = gcd_countdown(p);
    item_seconds.push_back(seconds_since(start));
    std::printf(" %llu", static_cast<unsigned long long>(g));
  }
  std::printf("\n  ceiling for one task per pair on 2 workers (FIFO list schedule): %.2fx\n",
              fifo_bound(item_seconds));
  g_rows.push_back({"seed (c): gcd countdown x10, map", "serial loop", "ms", m.pool_ms, m.serial_ms,
                    false, ">= 1.8x", 1.8, 0, m.raw_ms});
}

// --- 4. map with automatic chunks ---------------------------------------------------------------

// About 1 us of work on this machine: a dependent chain of xorshift64* steps. Not inlined, so
// the serial loop cannot be vectorised across items any more than the pool's tasks can.
constexpr int kWorkRounds = 420;

[[gnu::noinline]] std::uint64_t one_microsecond(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  for (int k = 0; k < kWorkRounds; ++k) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x *= 0x2545F4914F6CDD1Dull;
  }
  return x;
}

void bench_map_auto(cf::ThreadPoolExecutor& pool) {
  if (!selected("map")) return;
  const std::uint64_t n = g_options.quick ? 100000 : 1000000;
  std::printf("\n[4] map over %llu items of ~1 us, pool.map(fn, items, {.chunksize = 0})\n",
              static_cast<unsigned long long>(n));
  // A vector rather than std::views::iota: Clang 14 cannot compile libstdc++ 12's <ranges>.
  std::vector<std::uint64_t> items(n);
  std::iota(items.begin(), items.end(), std::uint64_t{0});
  auto serial = [&] {
    std::uint64_t sum = 0;
    for (std::uint64_t i : items) sum += one_microsecond(i);
    return sum;
  };
  auto parallel = [&] {
    std::uint64_t sum = 0;
    for (std::uint64_t v : pool.map(one_microsecond, items, cf::MapOptions{.chunksize = 0})) {
      sum += v;
    }
    return sum;
  };
  auto raw = [&] {
    return sum_on_two_threads(n, 1000, [&](std::size_t i) { return one_microsecond(i); });
  };
  auto check = [](std::uint64_t a, std::uint64_t b) {
    if (a != b) wrong_result("map sum differs from serial");
  };
  const CpuMeter meter;
  const Medians m = serial_vs_pool("map 1us x N", serial, parallel, raw, check);
  print_others(meter);
  std::printf("  work per item (serial): %.2f us\n", m.serial_ms * 1e3 / static_cast<double>(n));
  g_rows.push_back({"map 1M items x ~1 us, chunksize 0", "serial loop", "ms", m.pool_ms,
                    m.serial_ms, false, ">= 1.7x", 1.7, 0, m.raw_ms});
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    g_options.command += (i ? " " : "") + arg;
    if (i == 0) continue;
    if (arg.rfind("--reps=", 0) == 0) {
      g_options.reps = std::max(1, std::atoi(arg.c_str() + 7));
    } else if (arg.rfind("--filter=", 0) == 0) {
      g_options.filter = arg.substr(9);
    } else if (arg == "--quick") {
      g_options.quick = true;
    } else if (arg.rfind("--tag=", 0) == 0) {
      g_options.tag = arg.substr(6);
      g_tag = " [" + g_options.tag + "]";
    } else {
      std::fprintf(stderr, "usage: %s [--reps=N] [--filter=SUBSTRING] [--quick] [--tag=NAME]\n",
                   argv[0]);
      return 2;
    }
  }
  std::printf("cfutures ThreadPoolExecutor benchmarks\ncommand: %s\ndate: %s\n",
              g_options.command.c_str(), now_text().c_str());
  std::printf("cpu: %s, %u hardware threads; compiler: %s%s\n", cpu_model().c_str(),
              std::thread::hardware_concurrency(),
#if defined(__clang__)
              "clang " __clang_version__,
#elif defined(__GNUC__)
              "GCC " __VERSION__,
#else
              "unknown",
#endif
#if defined(NDEBUG) && defined(__OPTIMIZE__)
              ", optimised, NDEBUG"
#else
              ", WARNING: not an optimised NDEBUG build"
#endif
  );
  std::printf("load average at start: %s\n", load_average().c_str());
  const CpuMeter whole_run;

  if (selected("throughput") || selected("round")) {
    Pools pools;
    bench_throughput(pools);
    bench_round_trip(pools);
  }
  {
    cf::ThreadPoolExecutor pool(kWorkers);
    bench_is_prime(pool);
    bench_factorize(pool);
    bench_gcd(pool);
    bench_map_auto(pool);
  }

  std::printf(
      "\nload average at end: %s; CPU used by other processes during the whole run: %.0f%%\n",
      load_average().c_str(), whole_run.others_percent());
  print_table();
  write_csv();
  return 0;
}
