// cfutures_demo: the experiments of the blog posts about Python's concurrent.futures, repeated
// in C++ with cfutures, and one table of seconds and speedups: serial against each executor.
//
//   (a) is_prime by trial division over the six numbers of the Python documentation's example
//       ("Pythonのconcurrent.futuresを試す", "파이썬의 새로운 병렬처리 API")
//   (b) naive factorization of 1..200000 through map, in chunks (Eli Bendersky)
//   (c) gcd by counting down from min(a, b) over ten pairs (Effective Python)
//   (d) two one-second sleeps ("Pythonのconcurrent.futuresを試す")
//
// In Python the thread pool is no faster than serial for (a)-(c), as the GIL lets one thread
// compute at a time; only (d) gains. C++ threads run in parallel, so all four should.
//
// cfutures_demo_mpi is the same program with an MPI pool column, run by `make demo-mpi` as
// `mpiexec -n 3`: rank 0 runs the table, the two other ranks are the MPI pool's workers.
//
// Each workload is written twice: a plain serial loop, and against cf::Executor& so that it
// runs unchanged on every executor in kExecutors (one table column each). Every run returns a
// check (a short text of its results) that must equal the serial one.
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include <concurrent/futures.hpp>
#ifdef CFUTURES_DEMO_MPI
#include <concurrent/futures/mpi.hpp>
#endif

#include "seeds.hpp"

namespace cf = concurrent::futures;

namespace {

// --- The articles' functions, unchanged but for the language -------------------------------------

using seeds::factorize_naive;
using seeds::gcd_countdown;
using seeds::is_prime;
using seeds::kFactorizeUpTo;
using seeds::kGcdPairs;
using seeds::one_to;
using seeds::Pair;

void wait_one_second() { std::this_thread::sleep_for(std::chrono::seconds(1)); }

const std::vector<std::uint64_t>& kPrimes = seeds::kPrimeCandidates;

// --- Checks: what each workload computed, as a short text ----------------------------------------

std::string check_primes(const std::vector<bool>& prime) {
  std::ostringstream out;
  out << std::count(prime.begin(), prime.end(), true) << " of " << prime.size() << " prime:";
  for (bool p : prime) out << (p ? " True" : " False");
  return out.str();
}

std::string check_factors(const std::vector<std::vector<std::uint64_t>>& factors) {
  // The weights depend on n, so a factor list that landed at the wrong number changes the sum.
  std::size_t count = 0;
  std::uint64_t checksum = 0;
  for (std::size_t n = 0; n < factors.size(); ++n) {
    count += factors[n].size();
    for (std::uint64_t p : factors[n]) checksum += p * (n % 7 + 1);
  }
  std::ostringstream out;
  out << "sum of prime-factor counts of 1.." << factors.size() - 1 << " = " << count
      << ", weighted sum of factors = " << checksum;
  return out.str();
}

std::string check_gcds(const std::vector<std::uint64_t>& gcds) {
  std::ostringstream out;
  out << "gcds:";
  for (std::uint64_t g : gcds) out << ' ' << g;
  return out.str();
}

std::string check_sleeps(std::size_t count) { return std::to_string(count) + " sleeps done"; }

// --- Workloads ---------------------------------------------------------------------------------

struct Settings {
  std::size_t workers = 1;
  std::size_t chunksize = 0;
};

struct Workload {
  std::string key;  // for --only
  std::string title;
  std::function<std::string(const Settings&)> serial;
  std::function<std::string(cf::Executor&, const Settings&)> parallel;
};

std::vector<Workload> workloads() {
  std::vector<Workload> list;
  list.push_back({"a", "(a) is_prime x6",
                  [](const Settings&) {
                    std::vector<bool> prime;
                    for (std::uint64_t n : kPrimes) prime.push_back(is_prime(n));
                    return check_primes(prime);
                  },
                  [](cf::Executor& executor, const Settings&) {
                    std::vector<bool> prime;
                    for (bool p : executor.map(is_prime, kPrimes)) prime.push_back(p);
                    return check_primes(prime);
                  }});
  list.push_back({"b", "(b) factorize 1..200000",
                  [](const Settings&) {
                    // factors[n] for n in 1..N, like the article's {num: factors} dict.
                    std::vector<std::vector<std::uint64_t>> factors(1);
                    for (std::uint64_t n : one_to(kFactorizeUpTo)) {
                      factors.push_back(factorize_naive(n));
                    }
                    return check_factors(factors);
                  },
                  [](cf::Executor& executor, const Settings& settings) {
                    std::vector<std::vector<std::uint64_t>> factors(1);
                    const std::vector<std::uint64_t> nums = one_to(kFactorizeUpTo);
                    const cf::MapOptions options{.chunksize = settings.chunksize};
                    // The longest run: a progress bar on stderr when it is a terminal.
                    for (auto f : cf::progress(executor.map(factorize_naive, nums, options),
                                               {.label = "factorize"})) {
                      factors.push_back(std::move(f));
                    }
                    return check_factors(factors);
                  }});
  list.push_back({"c", "(c) gcd x10",
                  [](const Settings&) {
                    std::vector<std::uint64_t> gcds;
                    for (const Pair& pair : kGcdPairs) gcds.push_back(gcd_countdown(pair));
                    return check_gcds(gcds);
                  },
                  [](cf::Executor& executor, const Settings&) {
                    std::vector<std::uint64_t> gcds;
                    for (std::uint64_t g : executor.map(gcd_countdown, kGcdPairs))
                      gcds.push_back(g);
                    return check_gcds(gcds);
                  }});
  list.push_back({"d", "(d) sleep 1 s x2",
                  [](const Settings&) {
                    wait_one_second();
                    wait_one_second();
                    return check_sleeps(2);
                  },
                  [](cf::Executor& executor, const Settings&) {
                    cf::Future<void> f1 = executor.submit(wait_one_second);
                    cf::Future<void> f2 = executor.submit(wait_one_second);
                    f1.result();
                    f2.result();
                    return check_sleeps(2);
                  }});
  return list;
}

// --- Executors: one table column each ----------------------------------------------------------

struct ExecutorKind {
  std::string name;
  std::function<std::unique_ptr<cf::Executor>(std::size_t max_workers)> make;
};

const std::vector<ExecutorKind> kExecutors = {
    {"thread pool",
     [](std::size_t max_workers) { return std::make_unique<cf::ThreadPoolExecutor>(max_workers); }},
    {"process pool",
     [](std::size_t max_workers) {
       return std::make_unique<cf::ProcessPoolExecutor>(max_workers);
     }},
#ifdef CFUTURES_DEMO_MPI
    // cfutures_demo_mpi under `mpiexec -n <workers + 1>`: the other ranks are the workers.
    {"MPI pool",
     [](std::size_t max_workers) { return std::make_unique<cf::MPIPoolExecutor>(max_workers); }},
#endif
};

// --- Running and timing ------------------------------------------------------------------------

std::size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<std::size_t>(CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

struct Timed {
  double seconds;
  std::string check;
};

template <class F>
Timed timed(F&& run) {
  const auto start = std::chrono::steady_clock::now();
  std::string check = run();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  return {elapsed.count(), std::move(check)};
}

// One row of the table: the best time of each column (serial first, then kExecutors).
struct Row {
  std::string title;
  std::vector<double> seconds;
  bool checks_agree = true;
};

Row run_workload(const Workload& workload, const Settings& settings, int repeat) {
  Row row{workload.title,
          std::vector<double>(1 + kExecutors.size(), std::numeric_limits<double>::infinity())};
  std::string serial_check;
  // Rounds alternate the columns, so a burst of load from elsewhere hits all of them alike.
  for (int round = 0; round < repeat; ++round) {
    const Timed serial = timed([&] { return workload.serial(settings); });
    row.seconds[0] = std::min(row.seconds[0], serial.seconds);
    if (round == 0) {
      serial_check = serial.check;
      std::cout << workload.title << "\n  serial: " << serial_check << '\n';
    }
    for (std::size_t e = 0; e < kExecutors.size(); ++e) {
      // The executor is made and shut down inside the timing, as Python's `with` block does.
      const Timed run = timed([&] {
        const std::unique_ptr<cf::Executor> executor = kExecutors[e].make(settings.workers);
        return workload.parallel(*executor, settings);
      });
      row.seconds[e + 1] = std::min(row.seconds[e + 1], run.seconds);
      if (run.check != serial_check) {
        row.checks_agree = false;
        std::cout << "  " << kExecutors[e].name << ": MISMATCH: " << run.check << '\n';
      } else if (round == 0) {
        std::cout << "  " << kExecutors[e].name << ": same\n";
      }
    }
  }
  return row;
}

void print_table(const std::vector<Row>& rows) {
  constexpr int kTitle = 26;
  std::cout << '\n'
            << std::left << std::setw(kTitle) << "workload" << std::right << std::setw(10)
            << "serial s";
  std::vector<int> widths;
  for (const ExecutorKind& kind : kExecutors) {
    widths.push_back(std::max<int>(10, static_cast<int>(kind.name.size()) + 4));
    std::cout << std::setw(widths.back()) << (kind.name + " s") << std::setw(9) << "speedup";
  }
  std::cout << '\n' << std::fixed;
  for (const Row& row : rows) {
    std::cout << std::left << std::setw(kTitle) << row.title << std::right << std::setprecision(3)
              << std::setw(10) << row.seconds[0];
    for (std::size_t e = 0; e < kExecutors.size(); ++e) {
      std::cout << std::setprecision(3) << std::setw(widths[e]) << row.seconds[e + 1]
                << std::setprecision(2) << std::setw(8) << row.seconds[0] / row.seconds[e + 1]
                << 'x';
    }
    std::cout << (row.checks_agree ? "" : "  (results differ!)") << '\n';
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef CFUTURES_DEMO_MPI
  cf::mpi::serve_if_worker(argc, argv);  // ranks other than 0 serve the MPI pool from here
#endif
  cf::serve_if_worker(argc, argv);  // for ProcessPoolExecutor's spawn start method
  CLI::App app{
      "Repeats the experiments of the concurrent.futures blog posts in C++ and prints "
      "a table of seconds and speedups: serial against each executor."};
  Settings settings{.workers = usable_cpus(), .chunksize = 0};
  int repeat = 3;
  std::vector<std::string> only;
  app.add_option("-w,--workers", settings.workers, "max_workers of each executor")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-r,--repeat", repeat, "runs per measurement; the best one counts")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--only", only, "run only these workloads, e.g. --only a,c")
      ->delimiter(',')
      ->check(CLI::IsMember({"a", "b", "c", "d"}));
  app.add_option("--chunksize", settings.chunksize,
                 "items per task for (b)'s map; default: as multiprocessing.Pool.map picks, "
                 "ceil(items / (4 * workers)); 0: cfutures picks from measured item times");
  CLI11_PARSE(app, argc, argv);
  if (app.count("--chunksize") == 0) {
    settings.chunksize = (kFactorizeUpTo + 4 * settings.workers - 1) / (4 * settings.workers);
  }

  std::cout << "cfutures demo: the concurrent.futures articles' experiments in C++\n"
            << "executors: max_workers = " << settings.workers
            << (app.count("--workers") ? " (--workers)" : " (the CPUs this process may use)")
            << "; (b) maps in chunks of " << settings.chunksize
            << (settings.chunksize == 0 ? " (automatic)" : "") << " items\n"
            << "times: best of " << repeat
            << " runs, each including starting and shutting down the executor\n\n";

  std::vector<Row> rows;
  for (const Workload& workload : workloads()) {
    if (!only.empty() && std::find(only.begin(), only.end(), workload.key) == only.end()) {
      continue;
    }
    rows.push_back(run_workload(workload, settings, repeat));
  }
  print_table(rows);
  std::cout << "\nIn the articles, Python's thread pool lost to serial code on (a) (3.62 s vs "
               "2.92 s) and (c)\n(1.436 s vs 1.173 s): the GIL lets one thread compute at a time. "
               "It gained only on (d).\n";
  const bool ok =
      std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.checks_agree; });
  return ok ? 0 : 1;
}
