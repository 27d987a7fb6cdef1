// The Python documentation's ProcessPoolExecutor example, as run in "Pythonのconcurrent.futuresを
// 試す" (prime.py) and "파이썬의 새로운 병렬처리 API": is_prime over six large numbers, with the
// built-in map and with executor.map. C++ threads have no GIL, so here the thread pool is faster;
// the process pool is the article's one-line change (ThreadPoolExecutor -> ProcessPoolExecutor).
// Built as prime_mpi (with the MPI component), it adds one more change of that line: across MPI
// ranks, run as `mpiexec -n 3 prime_mpi` (ranks 1 and 2 are the workers).
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>

#include <concurrent/futures.hpp>
#ifdef CFUTURES_EXAMPLE_MPI
#include <concurrent/futures/mpi.hpp>
#endif

namespace cf = concurrent::futures;

constexpr std::array<std::uint64_t, 6> PRIMES = {112272535095293, 112582705942171,
                                                 112272535095293, 115280095190773,
                                                 115797848077099, 1099726899285419};

bool is_prime(std::uint64_t n) {
  if (n % 2 == 0) return false;
  const auto sqrt_n = static_cast<std::uint64_t>(std::floor(std::sqrt(static_cast<double>(n))));
  for (std::uint64_t i = 3; i <= sqrt_n; i += 2) {
    if (n % i == 0) return false;
  }
  return true;
}

const char* py_bool(bool b) { return b ? "True" : "False"; }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The same loop on any executor: switching threads for processes is the one line that makes it.
void print_primes(cf::Executor& executor) {
  // executor.map yields the results in input order, so a running index plays zip(PRIMES, ...).
  std::size_t i = 0;
  for (bool prime : executor.map(is_prime, PRIMES)) {
    std::cout << PRIMES[i++] << " is prime: " << py_bool(prime) << '\n';
  }
}

int main(int argc, char** argv) {
#ifdef CFUTURES_EXAMPLE_MPI
  cf::mpi::serve_if_worker(argc, argv);  // ranks other than 0 serve the MPI pool
#endif
  cf::serve_if_worker(argc, argv);  // needed only for the spawn start method
  auto start = std::chrono::steady_clock::now();
  for (std::uint64_t number : PRIMES) {
    std::cout << number << " is prime: " << py_bool(is_prime(number)) << '\n';
  }
  std::cout << "Single:        elapsed time = " << seconds_since(start) << '\n';

  start = std::chrono::steady_clock::now();
  {
    cf::ThreadPoolExecutor executor;
    print_primes(executor);
  }
  std::cout << "Multi-thread:  elapsed time = " << seconds_since(start) << '\n';

  start = std::chrono::steady_clock::now();
  {
    cf::ProcessPoolExecutor executor;
    print_primes(executor);
  }
  std::cout << "Multi-process: elapsed time = " << seconds_since(start) << '\n';
#ifdef CFUTURES_EXAMPLE_MPI
  start = std::chrono::steady_clock::now();
  {
    cf::MPIPoolExecutor executor;
    print_primes(executor);
  }
  std::cout << "MPI ranks:     elapsed time = " << seconds_since(start) << '\n';
#endif
}
