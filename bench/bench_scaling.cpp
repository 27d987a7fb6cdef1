// How the executors scale, for the charts of `make bench` (bench/plot.sh draws them):
//
//   1. speed-up against the number of workers: the seed workloads (a) is_prime x6, (b) factorize
//      1..200000 through map with chunksize 1000, (c) gcd x10, on ThreadPoolExecutor and on
//      ProcessPoolExecutor (forkserver) with 1..--max-workers workers, against the serial loop;
//   2. cost per item against chunksize: map of a trivial function over --items integers on each
//      executor (2 workers), chunksize 1, 2, 4, ... 8192, and chunksize 0 (automatic).
//
//   bench_scaling [--reps=N] [--quick] [--max-workers=N] [--items=N]
//
// Each figure is the median of --reps runs (default 5) on a warm pool (started, and the workload
// run once, before timing). --quick: 2 repetitions and a tenth of the items. With the environment
// variable CFUTURES_BENCH_OUT set to a directory, the figures are also written there as
// scaling.csv and overhead.csv. Every result is checked; a wrong one exits with status 1.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <concurrent/futures.hpp>

#include "../demo/seeds.hpp"
#include "seed_runs.hpp"

namespace cf = concurrent::futures;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int reps = 5;
  std::size_t max_workers = 4;
  std::size_t items = 200'000;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Median seconds of `reps` calls of run(), after one untimed call that warms the pool.
double timed(int reps, const std::function<void()>& run) {
  run();
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    run();
    samples.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return median(samples);
}

using seed_runs::wrong_result;

// A CSV file in $CFUTURES_BENCH_OUT, or nothing when it is not set.
std::unique_ptr<std::ofstream> csv_file(const char* name, const char* header) {
  const char* dir = std::getenv("CFUTURES_BENCH_OUT");
  if (dir == nullptr || *dir == '\0') return nullptr;
  auto out = std::make_unique<std::ofstream>(std::string(dir) + "/" + name);
  if (!*out) {
    std::fprintf(stderr, "cannot write %s/%s\n", dir, name);
    std::exit(2);
  }
  *out << header << '\n';
  return out;
}

// --- 1. speed-up against workers ----------------------------------------------------------------

struct Workload {
  const char* name;
  // Runs the workload on `executor`, or serially when it is null, and checks the result.
  std::function<void(cf::Executor*)> run;
};

std::vector<Workload> workloads() {
  static const std::vector<std::uint64_t> numbers = seeds::one_to(seeds::kFactorizeUpTo);
  return {
      {"(a) is_prime x6", seed_runs::is_prime},
      {"(b) factorize 1..200000",
       [](cf::Executor* ex) { seed_runs::factorize(ex, numbers, seeds::kFactorCount); }},
      {"(c) gcd x10", seed_runs::gcd},
  };
}

using MakeExecutor = std::function<std::unique_ptr<cf::Executor>(std::size_t workers)>;

struct ExecutorKind {
  const char* name;
  MakeExecutor make;
};

std::vector<ExecutorKind> executor_kinds() {
  return {
      {"ThreadPoolExecutor",
       [](std::size_t w) { return std::make_unique<cf::ThreadPoolExecutor>(w); }},
      {"ProcessPoolExecutor",
       [](std::size_t w) { return std::make_unique<cf::ProcessPoolExecutor>(w); }},
  };
}

void bench_scaling(const Options& options) {
  auto csv =
      csv_file("scaling.csv", "executor,workload,workers,seconds,serial_seconds,speedup,cpus");
  const unsigned cpus = std::thread::hardware_concurrency();
  std::printf("\n[1] speed-up against workers (serial seconds / executor seconds, medians of %d)\n",
              options.reps);
  std::printf("%-20s %-24s %7s %10s %10s %8s\n", "executor", "workload", "workers", "ms",
              "serial ms", "speed-up");
  for (const Workload& work : workloads()) {
    const double serial = timed(options.reps, [&] { work.run(nullptr); });
    for (const ExecutorKind& kind : executor_kinds()) {
      for (std::size_t w = 1; w <= options.max_workers; ++w) {
        const auto executor = kind.make(w);
        const double seconds = timed(options.reps, [&] { work.run(executor.get()); });
        std::printf("%-20s %-24s %7zu %10.2f %10.2f %7.2fx\n", kind.name, work.name, w,
                    seconds * 1e3, serial * 1e3, serial / seconds);
        std::fflush(stdout);
        if (csv) {
          *csv << kind.name << ',' << work.name << ',' << w << ',' << seconds << ',' << serial
               << ',' << serial / seconds << ',' << cpus << '\n';
        }
      }
    }
  }
}

// --- 2. cost per item against chunksize --------------------------------------------------------

int increment(int x) { return x + 1; }

void bench_overhead(const Options& options) {
  auto csv = csv_file("overhead.csv", "executor,chunksize,items,seconds,ns_per_item");
  std::vector<int> items(options.items);
  for (std::size_t i = 0; i < items.size(); ++i) items[i] = static_cast<int>(i);
  long long expected = 0;
  for (int x : items) expected += increment(x);

  std::printf("\n[2] map(increment, %zu ints) on 2 workers: ns per item (median of %d)\n",
              items.size(), options.reps);
  std::printf("%-20s %10s %12s\n", "executor", "chunksize", "ns/item");
  std::vector<std::size_t> chunksizes = {0};
  for (std::size_t c = 1; c <= 8192; c *= 2) chunksizes.push_back(c);
  for (const ExecutorKind& kind : executor_kinds()) {
    const auto executor = kind.make(2);
    for (std::size_t chunksize : chunksizes) {
      const double seconds = timed(options.reps, [&] {
        long long sum = 0;
        for (int y : executor->map(increment, items, cf::MapOptions{.chunksize = chunksize})) {
          sum += y;
        }
        if (sum != expected) wrong_result("map sum");
      });
      const double ns = seconds * 1e9 / static_cast<double>(items.size());
      std::printf("%-20s %10s %12.1f\n", kind.name,
                  chunksize == 0 ? "0 (auto)" : std::to_string(chunksize).c_str(), ns);
      std::fflush(stdout);
      if (csv) {
        *csv << kind.name << ',' << chunksize << ',' << items.size() << ',' << seconds << ',' << ns
             << '\n';
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--reps=", 0) == 0) {
      options.reps = std::max(1, std::atoi(arg.c_str() + 7));
    } else if (arg.rfind("--max-workers=", 0) == 0) {
      options.max_workers = static_cast<std::size_t>(std::max(1, std::atoi(arg.c_str() + 14)));
    } else if (arg.rfind("--items=", 0) == 0) {
      options.items = static_cast<std::size_t>(std::max(1, std::atoi(arg.c_str() + 8)));
    } else if (arg == "--quick") {
      options.reps = 2;
      options.items /= 10;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--reps=N] [--quick] [--max-workers=N] [--items=N]\n"
                   "unknown argument: %s\n",
                   argv[0], arg.c_str());
      return 2;
    }
  }
  std::printf("cfutures scaling: %u hardware threads\n", std::thread::hardware_concurrency());
  bench_scaling(options);
  bench_overhead(options);
  return 0;
}
