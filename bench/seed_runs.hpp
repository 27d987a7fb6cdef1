// The seed workloads (demo/seeds.hpp) as the benchmarks run them: on an executor, or serially
// when it is null, each checking what it computed. Shared by bench_scaling and bench_mpi.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <concurrent/futures.hpp>

#include "../demo/seeds.hpp"

namespace seed_runs {

namespace cf = concurrent::futures;

// A benchmark that computes a wrong result measures nothing: it stops.
[[noreturn]] inline void wrong_result(const std::string& what) {
  std::fprintf(stderr, "WRONG RESULT: %s\n", what.c_str());
  std::exit(1);
}

// (a): is_prime over the six candidates, one task each.
inline void is_prime(cf::Executor* ex) {
  std::size_t primes = 0;
  if (ex == nullptr) {
    for (std::uint64_t n : seeds::kPrimeCandidates) primes += seeds::is_prime(n);
  } else {
    for (bool p : ex->map(seeds::is_prime, seeds::kPrimeCandidates)) primes += p;
  }
  if (primes != seeds::kPrimesAmongCandidates) wrong_result("is_prime");
}

// (b): factorize `numbers` through map at chunksize 1000, each result dropped as it is read.
// `expected` is the count of factors (0: not known for these numbers, only checked non-zero).
inline void factorize(cf::Executor* ex, const std::vector<std::uint64_t>& numbers,
                      std::size_t expected) {
  std::size_t factors = 0;
  if (ex == nullptr) {
    for (std::uint64_t n : numbers) factors += seeds::factorize_naive(n).size();
  } else {
    for (const auto& f :
         ex->map(seeds::factorize_naive, numbers, cf::MapOptions{.chunksize = 1000})) {
      factors += f.size();
    }
  }
  if (expected != 0 && factors != expected) wrong_result("factorize");
  if (factors == 0) wrong_result("factorize: no factors");
}

// (c): gcd_countdown over the ten pairs, one task each.
inline void gcd(cf::Executor* ex) {
  std::uint64_t sum = 0;
  if (ex == nullptr) {
    for (const seeds::Pair& p : seeds::kGcdPairs) sum += seeds::gcd_countdown(p);
  } else {
    for (std::uint64_t g : ex->map(seeds::gcd_countdown, seeds::kGcdPairs)) sum += g;
  }
  if (sum != seeds::kGcdSum) wrong_result("gcd");
}

}  // namespace seed_runs
