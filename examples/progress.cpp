// A progress bar for long runs (docs/reference.md §5): wrap any loop's range in cf::progress. On a
// terminal it draws done/total, rate, elapsed time and ETA on stderr; redirected, or with
// CF_PROGRESS=0, it prints nothing, so logs stay clean. The total is known for containers, map
// results and as_completed.
//
//   ./progress                 a bar on stderr while the primes are counted
//   ./progress 2>/dev/null     the same results, no bar
#include <cstdint>
#include <iostream>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

std::size_t primes_in(std::uint64_t begin, std::uint64_t end) {
  std::size_t count = 0;
  for (std::uint64_t n = begin; n < end; ++n) count += is_prime(n) ? 1 : 0;
  return count;
}

int main() {
  cf::ThreadPoolExecutor executor;
  constexpr std::uint64_t kBlock = 5'000;
  constexpr std::uint64_t kBlocks = 100;

  // map: results in input order, the bar advancing as each one is taken.
  std::vector<std::uint64_t> starts;
  for (std::uint64_t b = 0; b < kBlocks; ++b) starts.push_back(100'000'000 + b * kBlock);
  std::size_t primes = 0;
  for (std::size_t n :
       cf::progress(executor.map([](std::uint64_t s) { return primes_in(s, s + kBlock); }, starts),
                    {.label = "map"})) {
    primes += n;
  }
  std::cout << "primes in [1e8, 1e8 + " << kBlocks * kBlock << "): " << primes << '\n';

  // as_completed: futures in completion order.
  std::vector<cf::Future<std::size_t>> futures;
  for (std::uint64_t b = 0; b < kBlocks; ++b) {
    futures.push_back(executor.submit(primes_in, b * kBlock, (b + 1) * kBlock));
  }
  primes = 0;
  for (cf::Future<std::size_t> f :
       cf::progress(cf::as_completed(futures), {.label = "as_completed"})) {
    primes += f.result();
  }
  std::cout << "primes below " << kBlocks * kBlock << ": " << primes << '\n';
}
