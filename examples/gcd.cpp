// "Consider concurrent.futures for True Parallelism" (Effective Python): a deliberately slow gcd
// over ten pairs, run serially (run_serial.py), on a pool of two threads (run_threads.py) and on
// two processes (run_parallel.py: the one-line change). In Python the threads are slower because
// of the GIL; in C++ both pools share the work. Built as gcd_mpi (with the MPI component), it runs
// once more across MPI ranks: `mpiexec -n 3 gcd_mpi`.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <stdexcept>
#include <utility>
#include <vector>

#include <concurrent/futures.hpp>
#ifdef CFUTURES_EXAMPLE_MPI
#include <concurrent/futures/mpi.hpp>
#endif

namespace cf = concurrent::futures;

using Pair = std::pair<std::uint64_t, std::uint64_t>;

std::uint64_t gcd(Pair pair) {
  auto [a, b] = pair;
  const std::uint64_t low = std::min(a, b);
  for (std::uint64_t i = low; i > 0; --i) {
    if (a % i == 0 && b % i == 0) return i;
  }
  throw std::logic_error("Not reachable");
}

const std::vector<Pair> NUMBERS = {
    {1963309, 2265973}, {2030677, 3814172}, {1551645, 2229620}, {2039045, 2020802},
    {1823712, 1924928}, {2293129, 1020491}, {1281238, 2273782}, {3823812, 4237281},
    {3812741, 4729139}, {1292391, 2123811},
};

void report(const char* how, std::chrono::steady_clock::time_point start,
            const std::vector<std::uint64_t>& results) {
  const std::chrono::duration<double> delta = std::chrono::steady_clock::now() - start;
  std::cout << how << ": Took " << std::fixed << std::setprecision(3) << delta.count()
            << " seconds; gcds:";
  for (std::uint64_t r : results) std::cout << ' ' << r;
  std::cout << '\n';
}

int main(int argc, char** argv) {
#ifdef CFUTURES_EXAMPLE_MPI
  cf::mpi::serve_if_worker(argc, argv);  // ranks other than 0 serve the MPI pool
#endif
  cf::serve_if_worker(argc, argv);  // needed only for the spawn start method
  auto start = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> results;  // list(map(gcd, NUMBERS))
  for (const Pair& pair : NUMBERS) results.push_back(gcd(pair));
  report("serial", start, results);

  start = std::chrono::steady_clock::now();
  cf::ThreadPoolExecutor pool(2);  // ThreadPoolExecutor(max_workers=2)
  results.clear();                 // list(pool.map(gcd, NUMBERS))
  for (std::uint64_t r : pool.map(gcd, NUMBERS)) results.push_back(r);
  report("threads", start, results);

  start = std::chrono::steady_clock::now();
  cf::ProcessPoolExecutor processes(2);  // ProcessPoolExecutor(max_workers=2)
  results.clear();
  for (std::uint64_t r : processes.map(gcd, NUMBERS)) results.push_back(r);
  report("processes", start, results);
#ifdef CFUTURES_EXAMPLE_MPI
  start = std::chrono::steady_clock::now();
  cf::MPIPoolExecutor ranks;  // mpi4py.futures.MPIPoolExecutor(): the other ranks
  results.clear();
  for (std::uint64_t r : ranks.map(gcd, NUMBERS)) results.push_back(r);
  report("MPI ranks", start, results);
#endif
}
