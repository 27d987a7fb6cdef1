// ProcessPoolExecutor on the workloads of the process-pool issue, 2 workers. Prints one line per
// measurement, "name value unit", read by bench/compare.py to set our figures beside CPython's
// ProcessPoolExecutor, multiprocessing.Pool and loky measured in the same run.
//
//   bench_process_pool [--reps=N] [--quick] [--filter=SUBSTRING] [--tag=NAME]
//
// Each figure is the median of --reps runs (default 5). --quick shrinks the sizes tenfold for a
// smoke test; the goals are stated for the full sizes. --filter runs only the rows whose name
// holds SUBSTRING; --tag=NAME appends "[NAME]" to every row's name (bench/run.sh runs the large
// rows again with glibc's malloc asked for huge pages, --tag=hugetlb).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <concurrent/futures.hpp>

#include "../demo/seeds.hpp"

namespace cf = concurrent::futures;
using Clock = std::chrono::steady_clock;

namespace {

int ident(int x) { return x; }
std::size_t length(const std::vector<char>& v) { return v.size(); }
std::vector<char> make_bytes(std::size_t n) { return std::vector<char>(n, 'x'); }
std::size_t shared_length(cf::SharedArray<char> a) { return a.size(); }
std::size_t shared_fill(cf::SharedArray<char> a, char c) {
  std::memset(a.data(), c, a.size());
  return a.size();
}

double seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double measure(int reps, const std::function<double()>& once) {
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) samples.push_back(once());
  return median(samples);
}

std::string g_filter;  // --filter=SUBSTRING
std::string g_tag;     // "[NAME]" with --tag=NAME

bool wanted(const char* name) {
  return g_filter.empty() || std::string(name).find(g_filter) != std::string::npos;
}

void report(const char* name, double value, const char* unit) {
  std::printf("%s%s %.6g %s\n", name, g_tag.c_str(), value, unit);
  std::fflush(stdout);
}

// The floors of a large transfer on this machine, measured in the same run: a copy into memory
// already faulted in, a copy into a fresh allocation (what a receiver's new std::vector costs),
// and bytes through a socketpair between two threads (into a warm buffer).
double memcpy_warm_gbs(const std::vector<char>& from, std::vector<char>& to) {
  const auto t0 = Clock::now();
  std::memcpy(to.data(), from.data(), from.size());
  const double s = seconds(t0);
  if (to[from.size() / 2] != from[from.size() / 2]) std::puts("bad copy");
  return static_cast<double>(from.size()) / s / 1e9;
}
double memcpy_fresh_gbs(const std::vector<char>& from) {
  const auto t0 = Clock::now();
  const std::vector<char> to(from);
  const double s = seconds(t0);
  if (to[from.size() / 2] != from[from.size() / 2]) std::puts("bad copy");
  return static_cast<double>(from.size()) / s / 1e9;
}
double socketpair_gbs(const std::vector<char>& from, std::vector<char>& to) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  const auto t0 = Clock::now();
  std::thread writer([&] {
    std::size_t sent = 0;
    while (sent < from.size()) {
      const ssize_t n = write(sv[0], from.data() + sent, from.size() - sent);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
  });
  std::size_t got = 0;
  while (got < from.size()) {
    const ssize_t n = read(sv[1], to.data() + got, from.size() - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  writer.join();
  const double s = seconds(t0);
  close(sv[0]);
  close(sv[1]);
  return static_cast<double>(got) / s / 1e9;
}
}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  int reps = 5;
  int scale = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--reps=", 7) == 0) reps = std::max(1, std::atoi(argv[i] + 7));
    if (std::strcmp(argv[i], "--quick") == 0) scale = 10;
    if (std::strncmp(argv[i], "--filter=", 9) == 0) g_filter = argv[i] + 9;
    if (std::strncmp(argv[i], "--tag=", 6) == 0) g_tag = std::string("[") + (argv[i] + 6) + "]";
  }
  // One row: the median of `reps` runs of `once`, if --filter wants it.
  const auto row = [&](const char* name, const std::function<double()>& once, const char* unit) {
    if (wanted(name)) report(name, measure(reps, once), unit);
  };
  const int tasks = 100'000 / scale;
  const std::size_t map_items = 10'000'000 / static_cast<std::size_t>(scale);
  const std::size_t big = (std::size_t{64} << 20) / static_cast<std::size_t>(scale);

  // First, while this process is still small: fork copies the parent's page tables, so a parent
  // holding the large buffers below would time its own size, not the pool's start-up.
  const std::pair<const char*, cf::StartMethod> methods[] = {
      {"startup_fork", cf::StartMethod::fork},
      {"startup_forkserver", cf::StartMethod::forkserver},
      {"startup_spawn", cf::StartMethod::spawn}};
  for (const auto& [name, method] : methods) {
    row(
        name,
        [&, method = method] {
          const auto t0 = Clock::now();
          cf::ProcessPoolExecutor ex({.max_workers = 2, .start_method = method});
          ex.submit(ident, 1).result();
          return seconds(t0) * 1e3;
        },
        "ms");
  }

  cf::ProcessPoolExecutor pool(2);
  pool.submit(ident, 0).result();  // workers up

  row(
      "throughput",
      [&] {
        std::vector<cf::Future<int>> fs;
        fs.reserve(static_cast<std::size_t>(tasks));
        const auto t0 = Clock::now();
        for (int i = 0; i < tasks; ++i) fs.push_back(pool.submit(ident, i));
        for (auto& f : fs) f.result();
        return tasks / seconds(t0);
      },
      "tasks/s");

  row(
      "round_trip",
      [&] {
        std::vector<double> rt;
        for (int i = 0; i < 2000; ++i) {
          const auto t0 = Clock::now();
          pool.submit(ident, i).result();
          rt.push_back(seconds(t0) * 1e6);
        }
        return median(rt);
      },
      "us");

  std::vector<int> items(map_items);
  std::iota(items.begin(), items.end(), 0);
  row(
      "map_chunk1000",
      [&] {
        const auto t0 = Clock::now();
        long long sum = 0;
        for (int x : pool.map(ident, items, cf::MapOptions{.chunksize = 1000})) sum += x;
        if (sum < 0) std::puts("");
        return static_cast<double>(map_items) / seconds(t0);
      },
      "items/s");

  const std::vector<char> payload(big, 'x');
  row(
      "arg_64MiB",
      [&] {
        const auto t0 = Clock::now();
        pool.submit(length, payload).result();
        return static_cast<double>(big) / seconds(t0) / 1e9;
      },
      "GB/s");
  row(
      "result_64MiB",
      [&] {
        const auto t0 = Clock::now();
        const std::size_t n = pool.submit(make_bytes, big).result().size();
        return static_cast<double>(n) / seconds(t0) / 1e9;
      },
      "GB/s");
  // What result_64MiB includes besides the transfer: the worker making its vector (here, in this
  // process, the same call).
  row(
      "make_bytes_64MiB_local",
      [&] {
        const auto t0 = Clock::now();
        const std::size_t n = make_bytes(big).size();
        return static_cast<double>(n) / seconds(t0) / 1e9;
      },
      "GB/s");
  {
    std::vector<char> to(big, 'y');
    row(
        "floor_memcpy_warm_64MiB", [&] { return memcpy_warm_gbs(payload, to); }, "GB/s");
    row(
        "floor_memcpy_fresh_64MiB", [&] { return memcpy_fresh_gbs(payload); }, "GB/s");
    row(
        "floor_socketpair_64MiB", [&] { return socketpair_gbs(payload, to); }, "GB/s");
  }

  // A shared array is passed, not copied: a task given 1 GiB beside one given an int (round_trip
  // above), and a worker writing 64 MiB in place beside this process writing the same pages.
  {
    const cf::SharedArray<char> gib(std::size_t{1} << 30 >> (scale == 1 ? 0 : 3));
    row(
        "shared_array_pass_1GiB",
        [&] {
          std::vector<double> rt;
          for (int i = 0; i < 200; ++i) {
            const auto t0 = Clock::now();
            if (pool.submit(shared_length, gib).result() != gib.size()) std::puts("?");
            rt.push_back(seconds(t0) * 1e6);
          }
          return median(rt);
        },
        "us");
  }
  {
    const cf::SharedArray<char> shared(big, 'a');
    row(
        "shared_array_write_64MiB",
        [&] {
          const auto t0 = Clock::now();
          const std::size_t n = pool.submit(shared_fill, shared, 'b').result();
          return static_cast<double>(n) / seconds(t0) / 1e9;
        },
        "GB/s");
    if (wanted("shared_array_write_64MiB") && shared[big / 2] != 'b') {
      std::puts("the worker's writes are not seen");
    }
    row(
        "floor_memset_shared_local_64MiB",
        [&] {
          const auto t0 = Clock::now();
          std::memset(shared.data(), 'c', big);
          return static_cast<double>(big) / seconds(t0) / 1e9;
        },
        "GB/s");
  }

  // The seed workloads on a warm pool, against the same code run serially.
  const auto seed = [&](const char* name, const std::function<void(cf::Executor*)>& run) {
    if (!wanted(name)) return;
    const double serial = measure(reps, [&] {
      const auto t0 = Clock::now();
      run(nullptr);
      return seconds(t0);
    });
    const double parallel = measure(reps, [&] {
      const auto t0 = Clock::now();
      run(&pool);
      return seconds(t0);
    });
    report(name, serial / parallel, "x");
  };
  seed("seed_a_is_prime", [&](cf::Executor* ex) {
    std::size_t primes = 0;
    if (ex == nullptr) {
      for (auto n : seeds::kPrimeCandidates) primes += seeds::is_prime(n);
    } else {
      for (bool p : ex->map(seeds::is_prime, seeds::kPrimeCandidates)) primes += p;
    }
    if (primes != seeds::kPrimesAmongCandidates) std::puts("wrong prime count");
  });
  std::vector<std::uint64_t> nums(200'000 / static_cast<std::size_t>(scale));
  std::iota(nums.begin(), nums.end(), 1);
  seed("seed_b_factorize", [&](cf::Executor* ex) {
    std::size_t count = 0;
    if (ex == nullptr) {
      for (auto n : nums) count += seeds::factorize_naive(n).size();
    } else {
      for (const auto& f : ex->map(seeds::factorize_naive, nums, cf::MapOptions{.chunksize = 0})) {
        count += f.size();
      }
    }
    if (count == 0) std::puts("no factors");
  });
  // The articles' own form of (b): chunks of 1000, each result dropped as it is read.
  seed("seed_b_factorize_chunk1000", [&](cf::Executor* ex) {
    std::size_t count = 0;
    if (ex == nullptr) {
      for (auto n : nums) count += seeds::factorize_naive(n).size();
    } else {
      for (const auto& f :
           ex->map(seeds::factorize_naive, nums, cf::MapOptions{.chunksize = 1000})) {
        count += f.size();
      }
    }
    if (count == 0) std::puts("no factors");
  });
  seed("seed_c_gcd", [&](cf::Executor* ex) {
    std::uint64_t total = 0;
    if (ex == nullptr) {
      for (const auto& p : seeds::kGcdPairs) total += seeds::gcd_countdown(p);
    } else {
      for (auto g : ex->map(seeds::gcd_countdown, seeds::kGcdPairs)) total += g;
    }
    if (total != seeds::kGcdSum) std::puts("wrong gcds");
  });
}
