// MPIPoolExecutor on static ranks, the C++ half of the comparison with mpi4py.futures
// (bench/mpi_compare.py runs this program and bench/mpi4py_bench.py alternately and sets the
// figures side by side). Run it under mpiexec with 3 ranks: rank 0 measures, ranks 1 and 2 are
// the pool's workers.
//
//   mpiexec -n 3 bench_mpi [--reps=N] [--quick] [--only=throughput,round_trip,map,seeds]
//
//   1. throughput: submit 20,000 trivial tasks (ident(int) -> int), then result() each: tasks/s;
//   2. round trip: submit one trivial task and wait for it, 1,000 times: the median, us;
//   3. map at chunksize 1000 over 1,000,000 ints of ident, every result read: items/s;
//   4. the seed workloads (demo/seeds.hpp) on a new MPI pool and on ProcessPoolExecutor(2), both
//      in this process, against the serial loop: (a) is_prime over kPrimeCandidates, one task per
//      number; (b) factorize_naive of 1..200000 through map at chunksize 1000, each result dropped
//      as it is read; (c) gcd_countdown over kGcdPairs, one task per pair. While the process pool
//      runs, the worker ranks wait for work asleep in poll(), so they use no CPU.
//
// Every pool is warmed up before timing with the same untimed work that mpi4py_bench.py does
// (a tenth of each of 1-3; one small call of each seed function). Each figure is the median of
// --reps samples (default 5); the seeds' serial, MPI and process runs of one sample are
// interleaved, their order rotating from one sample to the next. --quick: a tenth of the sizes
// ((b) over 1..20000), for a smoke test; the figures then mean nothing. --only: the sections to
// run (all by default; mpi_compare.py runs all).
//
// Output: one line per figure, "name value unit" (the median; what mpi_compare.py reads), then a
// table. With the environment variable CFUTURES_BENCH_OUT set to a directory, the medians are
// also written there as mpi.csv. Every result is checked; a wrong one exits with status 1.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include <concurrent/futures.hpp>
#include <concurrent/futures/mpi.hpp>

#include "../demo/seeds.hpp"
#include "seed_runs.hpp"

namespace cf = concurrent::futures;
using Clock = std::chrono::steady_clock;

namespace {

int ident(int x) { return x; }

struct Sizes {
  int tasks = 20'000;
  int round_trips = 1'000;
  int map_items = 1'000'000;
  std::uint64_t factorize_up_to = seeds::kFactorizeUpTo;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

using seed_runs::wrong_result;

struct Figure {
  std::string name;
  std::string unit;
  std::vector<double> samples;
  double value() const { return median(samples); }
};
std::vector<Figure> g_figures;

void report(std::string name, std::string unit, std::vector<double> samples) {
  g_figures.push_back({std::move(name), std::move(unit), std::move(samples)});
  const Figure& f = g_figures.back();
  std::printf("%s %.6g %s\n", f.name.c_str(), f.value(), f.unit.c_str());
  std::fflush(stdout);
}

double find(const std::string& name) {
  for (const Figure& f : g_figures) {
    if (f.name == name) return f.value();
  }
  return 0;
}

// --- 1-3: what one task costs -------------------------------------------------------------------

double throughput(cf::Executor& ex, int tasks) {
  std::vector<cf::Future<int>> futures;
  futures.reserve(static_cast<std::size_t>(tasks));
  const auto start = Clock::now();
  for (int i = 0; i < tasks; ++i) futures.push_back(ex.submit(ident, i));
  long long sum = 0;
  for (auto& f : futures) sum += f.result();
  const double rate = tasks / seconds_since(start);
  if (sum != static_cast<long long>(tasks) * (tasks - 1) / 2) wrong_result("throughput sum");
  return rate;
}

double round_trip_us(cf::Executor& ex, int trips) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(trips));
  for (int i = 0; i < trips; ++i) {
    const auto start = Clock::now();
    const int back = ex.submit(ident, i).result();
    us.push_back(seconds_since(start) * 1e6);
    if (back != i) wrong_result("round trip value");
  }
  return median(us);
}

double map_rate(cf::Executor& ex, const std::vector<int>& items) {
  const auto start = Clock::now();
  long long sum = 0;
  for (int x : ex.map(ident, items, cf::MapOptions{.chunksize = 1000})) sum += x;
  const double rate = static_cast<double>(items.size()) / seconds_since(start);
  const auto n = static_cast<long long>(items.size());
  if (sum != n * (n - 1) / 2) wrong_result("map sum");
  return rate;
}

// --- 4: the seed workloads ----------------------------------------------------------------------

struct Seed {
  const char* name;   // figure names: <name>_serial, _mpi, _process (seconds), _*_speedup
  std::string title;  // for the table
  // Runs the workload on `ex`, or serially when it is null, and checks the result.
  std::function<void(cf::Executor*)> run;
};

std::vector<Seed> seed_workloads(const Sizes& sizes) {
  const std::size_t expected_factors =
      sizes.factorize_up_to == seeds::kFactorizeUpTo ? seeds::kFactorCount : 0;
  return {
      {"seed_a_is_prime", "(a) is_prime x6, one task each", seed_runs::is_prime},
      {"seed_b_factorize",
       "(b) factorize 1.." + std::to_string(sizes.factorize_up_to) + ", map chunksize 1000",
       [numbers = seeds::one_to(sizes.factorize_up_to), expected_factors](cf::Executor* ex) {
         seed_runs::factorize(ex, numbers, expected_factors);
       }},
      {"seed_c_gcd", "(c) gcd_countdown x10, one task each", seed_runs::gcd},
  };
}

// One small call of each seed function: the pool has run every entry once before timing.
void warm_seeds(cf::Executor& ex) {
  if (!ex.submit(seeds::is_prime, std::uint64_t{97}).result()) wrong_result("warm-up is_prime");
  if (ex.submit(seeds::factorize_naive, std::uint64_t{12}).result().size() != 3) {
    wrong_result("warm-up factorize");
  }
  if (ex.submit(seeds::gcd_countdown, seeds::Pair{12, 18}).result() != 6) {
    wrong_result("warm-up gcd");
  }
}

void write_csv(int reps) {
  const char* dir = std::getenv("CFUTURES_BENCH_OUT");
  if (dir == nullptr || *dir == '\0') return;
  const std::string path = std::string(dir) + "/mpi.csv";
  std::ofstream out(path);
  out << "measurement,unit,median,reps\n";
  for (const Figure& f : g_figures) {
    out << f.name << ',' << f.unit << ',' << f.value() << ',' << reps << '\n';
  }
  if (!out) std::fprintf(stderr, "cannot write %s\n", path.c_str());
}

void print_table(const std::vector<Seed>& seeds, int reps) {
  std::printf("\n| measurement | unit | median | samples |\n|---|---|---:|---|\n");
  for (const Figure& f : g_figures) {
    if (f.name.rfind("seed_", 0) == 0) continue;
    std::string samples;
    for (double s : f.samples) {
      char text[32];
      std::snprintf(text, sizeof text, "%s%.4g", samples.empty() ? "" : " ", s);
      samples += text;
    }
    std::printf("| %s | %s | %.4g | %s |\n", f.name.c_str(), f.unit.c_str(), f.value(),
                samples.c_str());
  }
  if (seeds.empty()) return;
  std::printf(
      "\n| seed workload | serial ms | MPI pool ms | MPI x serial | process pool ms | "
      "process x serial | MPI / process | goal | status |\n"
      "|---|---:|---:|---:|---:|---:|---:|---|---|\n");
  for (const Seed& seed : seeds) {
    const std::string name = seed.name;
    const double serial = find(name + "_serial");
    const double mpi = find(name + "_mpi");
    const double process = find(name + "_process");
    const double ratio = (serial / mpi) / (serial / process);
    std::printf("| %s | %.1f | %.1f | %.2fx | %.1f | %.2fx | %.2f | >= 0.90 | %s |\n",
                seed.title.c_str(), serial * 1e3, mpi * 1e3, serial / mpi, process * 1e3,
                serial / process, ratio, ratio >= 0.9 ? "met" : "MISSED");
  }
  std::printf(
      "\nMedians of %d samples. Speed-ups are the serial median over the pool's median; MPI / "
      "process is the MPI pool's speed-up over the process pool's (goal: within 10%%).\n",
      reps);
}

}  // namespace

int main(int argc, char** argv) {
  cf::mpi::serve_if_worker(argc, argv);  // ranks other than 0 serve the MPI pool from here
  cf::serve_if_worker(argc, argv);       // for ProcessPoolExecutor's spawn start method
  int reps = 5;
  Sizes sizes;
  std::string only = "throughput,round_trip,map,seeds";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--reps=", 7) == 0) {
      reps = std::max(1, std::atoi(argv[i] + 7));
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      sizes = {.tasks = 2'000, .round_trips = 100, .map_items = 100'000, .factorize_up_to = 20'000};
    } else if (std::strncmp(argv[i], "--only=", 7) == 0) {
      only = argv[i] + 7;
    } else {
      std::fprintf(stderr,
                   "usage: mpiexec -n 3 %s [--reps=N] [--quick] "
                   "[--only=throughput,round_trip,map,seeds]\n",
                   argv[0]);
      return 2;
    }
  }
  const auto selected = [&only](const char* section) {
    return ("," + only + ",").find("," + std::string(section) + ",") != std::string::npos;
  };
  for (std::size_t start = 0; start <= only.size();) {
    const std::size_t end = std::min(only.find(',', start), only.size());
    const std::string section = only.substr(start, end - start);
    if (section != "throughput" && section != "round_trip" && section != "map" &&
        section != "seeds") {
      std::fprintf(stderr, "bench_mpi: --only: no section \"%s\"\n", section.c_str());
      return 2;
    }
    start = end + 1;
  }
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world != 3) {
    std::fprintf(stderr, "bench_mpi: run me as mpiexec -n 3 (2 worker ranks); this job has %d\n",
                 world);
    return 2;
  }

  std::vector<int> items(static_cast<std::size_t>(sizes.map_items));
  std::iota(items.begin(), items.end(), 0);
  std::vector<int> warm_items(items.begin(), items.begin() + sizes.map_items / 10);

  if (selected("throughput") || selected("round_trip") || selected("map")) {
    cf::MPIPoolExecutor pool;
    if (pool.max_workers() != 2) wrong_result("max_workers is not 2");
    if (selected("throughput")) throughput(pool, sizes.tasks / 10);
    if (selected("round_trip")) round_trip_us(pool, sizes.round_trips / 10);
    if (selected("map")) map_rate(pool, warm_items);

    std::vector<double> samples;
    if (selected("throughput")) {
      for (int r = 0; r < reps; ++r) samples.push_back(throughput(pool, sizes.tasks));
      report("throughput", "tasks/s", samples);
    }
    if (selected("round_trip")) {
      samples.clear();
      for (int r = 0; r < reps; ++r) samples.push_back(round_trip_us(pool, sizes.round_trips));
      report("round_trip", "us", samples);
    }
    if (selected("map")) {
      samples.clear();
      for (int r = 0; r < reps; ++r) samples.push_back(map_rate(pool, items));
      report("map_chunk1000", "items/s", samples);
    }
  }

  // The seeds on fresh pools, so that neither starts with what the other learnt from 1-3.
  std::vector<Seed> seeds;
  if (selected("seeds")) seeds = seed_workloads(sizes);
  if (!seeds.empty()) {
    cf::MPIPoolExecutor mpi_pool;
    cf::ProcessPoolExecutor process_pool(2);
    warm_seeds(mpi_pool);
    warm_seeds(process_pool);
    cf::Executor* const runners[] = {nullptr, &mpi_pool, &process_pool};
    for (const Seed& seed : seeds) {
      std::vector<double> times[3];
      for (int r = 0; r < reps; ++r) {
        for (int k = 0; k < 3; ++k) {
          const int which = (r + k) % 3;
          const auto start = Clock::now();
          seed.run(runners[which]);
          times[which].push_back(seconds_since(start));
        }
      }
      const std::string name = seed.name;
      report(name + "_serial", "s", times[0]);
      report(name + "_mpi", "s", times[1]);
      report(name + "_process", "s", times[2]);
      report(name + "_mpi_speedup", "x", {median(times[0]) / median(times[1])});
      report(name + "_process_speedup", "x", {median(times[0]) / median(times[2])});
    }
  }

  print_table(seeds, reps);
  write_csv(reps);
  return 0;
}
