// "Python - parallelizing CPU-bound tasks with concurrent.futures" (Eli Bendersky), quoted in
// "Concurrent.futures vs Multiprocessing in Python 3": factorize many numbers with executor.map
// and collect {num: factors}. The article uses a ProcessPoolExecutor, and so does this; a
// ThreadPoolExecutor in its place (the one-line change back) gives the same result. Built as
// factorize_map_mpi (with the MPI component), the executor is cf::MPIPoolExecutor, the one-line
// change to a cluster: `mpiexec -n 3 factorize_map_mpi`.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <map>
#include <numeric>
#include <vector>

#include <concurrent/futures.hpp>
#ifdef CFUTURES_EXAMPLE_MPI
#include <concurrent/futures/mpi.hpp>
#endif

namespace cf = concurrent::futures;

// A naive factorization method. Take integer n, return the list of its prime factors.
std::vector<std::uint64_t> factorize_naive(std::uint64_t n) {
  if (n < 2) return {};
  std::vector<std::uint64_t> factors;
  std::uint64_t p = 2;
  while (true) {
    if (n == 1) return factors;
    if (n % p == 0) {
      factors.push_back(p);
      n /= p;
    } else if (p * p >= n) {
      factors.push_back(n);
      return factors;
    } else if (p > 2) {
      p += 2;  // Advance in steps of 2 over odd numbers
    } else {
      p += 1;  // If p == 2, get to 3
    }
  }
}

using Factors = std::map<std::uint64_t, std::vector<std::uint64_t>>;

Factors pool_factorizer_map(const std::vector<std::uint64_t>& nums, std::size_t nprocs) {
  // Let the executor divide the work among processes by using map. One task per number would
  // cost more than factorizing it, so the items travel in chunks (Python's chunksize).
#ifdef CFUTURES_EXAMPLE_MPI
  cf::MPIPoolExecutor executor(nprocs);  // the ranks other than 0
#else
  cf::ProcessPoolExecutor executor(nprocs);
#endif
  Factors result;
  auto num = nums.begin();  // zip(nums, executor.map(...))
  for (auto factors : executor.map(factorize_naive, nums, cf::MapOptions{.chunksize = 1000})) {
    result.emplace(*num++, std::move(factors));
  }
  return result;
}

int main(int argc, char** argv) {
#ifdef CFUTURES_EXAMPLE_MPI
  cf::mpi::serve_if_worker(argc, argv);  // ranks other than 0 serve the MPI pool
#endif
  cf::serve_if_worker(argc, argv);  // needed only for the spawn start method
  std::vector<std::uint64_t> nums(200'000);
  std::iota(nums.begin(), nums.end(), 1);
  const auto start = std::chrono::steady_clock::now();
  const Factors factors = pool_factorizer_map(nums, 2);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::cout << "factorized " << factors.size() << " numbers in " << elapsed.count() << " s\n";
  for (std::uint64_t n : {360, 199'999, 200'000}) {
    std::cout << n << ':';
    for (std::uint64_t p : factors.at(n)) std::cout << ' ' << p;
    std::cout << '\n';
  }
}
