// The seed articles' workloads, shared by the demo and the benchmark programs: the functions as
// the articles wrote them (but for the language), their inputs, and what a correct run computes.
//
//   (a) is_prime by trial division over the six numbers of the Python documentation's example
//   (b) Eli Bendersky's naive factorization of 1..200000
//   (c) gcd by counting down from min(a, b) over ten pairs ("Effective Python" item 64)
//
// The functions have external linkage (inline, in a named namespace) so that a process pool can
// send them by name.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

namespace seeds {

// Trial division by odd numbers up to sqrt(n), as in the Python documentation's example.
inline bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  const auto root = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
  for (std::uint64_t i = 3; i <= root; i += 2) {
    if (n % i == 0) return false;
  }
  return true;
}

// Eli Bendersky's factorize_naive: the prime factors of n in non-decreasing order.
inline std::vector<std::uint64_t> factorize_naive(std::uint64_t n) {
  std::vector<std::uint64_t> factors;
  if (n < 2) return factors;
  std::uint64_t p = 2;
  for (;;) {
    if (n == 1) return factors;
    if (n % p == 0) {
      factors.push_back(p);
      n /= p;
    } else if (p * p >= n) {
      factors.push_back(n);
      return factors;
    } else if (p > 2) {
      p += 2;
    } else {
      p += 1;
    }
  }
}

using Pair = std::pair<std::uint64_t, std::uint64_t>;

// gcd by counting down from min(a, b), as in "Effective Python" item 64.
inline std::uint64_t gcd_countdown(Pair pair) {
  const auto [a, b] = pair;
  for (std::uint64_t i = std::min(a, b); i > 0; --i) {
    if (a % i == 0 && b % i == 0) return i;
  }
  return 0;  // not reachable for positive inputs
}

// (a): five primes and 1099726899285419 = 3306091 x 332636609.
inline const std::vector<std::uint64_t> kPrimeCandidates = {112272535095293, 112582705942171,
                                                            112272535095293, 115280095190773,
                                                            115797848077099, 1099726899285419};
inline constexpr std::size_t kPrimesAmongCandidates = 5;

// (b): 1..200000, 699,499 prime factors in all.
inline constexpr std::uint64_t kFactorizeUpTo = 200'000;
inline constexpr std::size_t kFactorCount = 699'499;

inline std::vector<std::uint64_t> one_to(std::uint64_t n) {
  std::vector<std::uint64_t> numbers(n);
  std::iota(numbers.begin(), numbers.end(), std::uint64_t{1});
  return numbers;
}

// (c): gcds 1 1 5 1 32 1 14 9 1 9, 74 in all.
inline const std::vector<Pair> kGcdPairs = {
    {1963309, 2265973}, {2030677, 3814172}, {1551645, 2229620}, {2039045, 2020802},
    {1823712, 1924928}, {2293129, 1020491}, {1281238, 2273782}, {3823812, 4237281},
    {3812741, 4729139}, {1292391, 2123811}};
inline constexpr std::uint64_t kGcdSum = 74;

}  // namespace seeds
