// Eli Bendersky's first version (pool_factorizer_chunked): cut the numbers into one chunk per
// worker by hand, submit each chunk, and merge the partial {num: factors} maps with as_completed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <map>
#include <numeric>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

using Factors = std::map<std::uint64_t, std::vector<std::uint64_t>>;

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

// Factorize a list of numbers, returning a num:factors mapping.
Factors chunked_worker(std::vector<std::uint64_t> nums) {
  Factors result;
  for (std::uint64_t n : nums) result.emplace(n, factorize_naive(n));
  return result;
}

Factors pool_factorizer_chunked(const std::vector<std::uint64_t>& nums, std::size_t nprocs) {
  // Manually divide the task to chunks of equal length, submitting each chunk to the pool.
  const std::size_t chunksize = (nums.size() + nprocs - 1) / nprocs;
  std::vector<cf::Future<Factors>> futures;
  {
    cf::ThreadPoolExecutor executor;
    for (std::size_t i = 0; i < nprocs; ++i) {
      // nums[chunksize * i : chunksize * (i + 1)], clamped to the end as Python's slice is.
      const auto first = nums.begin() + std::min(chunksize * i, nums.size());
      const auto last = nums.begin() + std::min(chunksize * (i + 1), nums.size());
      futures.push_back(executor.submit(chunked_worker, std::vector(first, last)));
    }
  }
  Factors resultdict;
  for (cf::Future<Factors> f : cf::as_completed(futures)) {
    const Factors& part = f.result();  // resultdict.update(f.result())
    resultdict.insert(part.begin(), part.end());
  }
  return resultdict;
}

int main() {
  std::vector<std::uint64_t> nums(200'000);
  std::iota(nums.begin(), nums.end(), 1);
  const Factors factors = pool_factorizer_chunked(nums, 4);
  std::cout << "factorized " << factors.size() << " numbers; 199999 =";
  for (std::uint64_t p : factors.at(199'999)) std::cout << ' ' << p;
  std::cout << '\n';
}
