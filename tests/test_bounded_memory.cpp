// Bounded memory (issue 11, "Bounded memory"): `map` with `buffersize` over an input that never
// ends keeps the parent's memory bounded for 10,000,000 items, on threads and on processes; and
// `as_completed` over 1,000,000 futures drops each yielded future's state (docs/reference.md §3:
// "wait/as_completed keep no reference to a future after it is returned or yielded").
//
// Memory is read from /proc/self/status: VmHWM, the peak resident size, reset first through
// /proc/self/clear_refs, so the figure is the peak of the run itself. Under the sanitizers the
// counts are smaller (their runtimes are several times slower) and the resident size is not
// checked (their shadow memory and quarantine make it meaningless); the optimised build checks
// the stated figures.
#include <malloc.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <concurrent/futures.hpp>

#include "infinite_range.hpp"
#include "process_test_util.hpp"
#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
using proctest::Clock;

constexpr bool kSanitized = proctest::kAsan || proctest::kTsan;
constexpr long kMapItems = kSanitized ? 200'000 : 10'000'000;
// With one item per chunk (each a task of its own), fewer: the pool's cost per task, not memory,
// bounds how many fit in the test's time.
constexpr long kSingleItemChunks = kSanitized ? 50'000 : 1'000'000;
constexpr long kFutures = kSanitized ? 100'000 : 1'000'000;
constexpr long kRssLimitKib = 50 * 1024;

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  const std::string prefix = std::string(field) + ":";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return std::atol(line.c_str() + prefix.size());
  }
  return -1;
}

// VmHWM starts again from the present resident size (what earlier tests of this process
// freed goes back to the system first).
void reset_peak_rss() {
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
}

// Runs map(2x, 0, 1, 2, ...) for `items` items and checks every result, the peak RSS, and how much
// it grew over the run (so that memory kept per chunk shows even with fewer items).
template <class Executor>
void map_over_infinite_input(Executor& ex, const cf::MapOptions& options, const char* what,
                             long items = kMapItems) {
  reset_peak_rss();
  const long rss_before = status_kib("VmRSS");
  const auto t0 = Clock::now();
  long n = 0;
  long wrong = 0;
  for (long r : ex.map([](long x) { return 2 * x; }, cftest::Naturals{}, options)) {
    wrong += r == 2 * n ? 0 : 1;
    if (++n == items) break;
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  const long peak = status_kib("VmHWM");
  std::cout << "[          ] " << what << ": " << n << " items in " << took.count()
            << " ms; VmRSS before " << rss_before << " KiB, peak (VmHWM) " << peak << " KiB\n";
  EXPECT_EQ(n, items);
  EXPECT_EQ(wrong, 0);
  if (!kSanitized) {
    EXPECT_LT(peak, kRssLimitKib) << "the parent's resident size peaked at " << peak << " KiB";
    EXPECT_LT(peak - rss_before, 8 * 1024)
        << "the resident size grew by " << peak - rss_before << " KiB over " << items << " items";
  }
}

TEST(BoundedMemoryTest, ThreadMapWithOneItemPerChunkKeepsNothingPerChunk) {
  cf::ThreadPoolExecutor ex(2);
  map_over_infinite_input(ex, cf::MapOptions{.chunksize = 1, .buffersize = 64},
                          "threads, chunksize 1", kSingleItemChunks);
}

TEST(BoundedMemoryTest, ThreadMapWithChunksAndBuffersizeOverAnInfiniteInputStaysUnder50MiB) {
  cf::ThreadPoolExecutor ex(2);
  map_over_infinite_input(ex, cf::MapOptions{.chunksize = 1000, .buffersize = 8},
                          "threads, chunksize 1000");
}

TEST(BoundedMemoryTest, ProcessMapWithBuffersizeOverAnInfiniteInputStaysUnder50MiB) {
  cf::ProcessPoolExecutor ex(2);
  map_over_infinite_input(ex, cf::MapOptions{.chunksize = 1000, .buffersize = 8},
                          "processes, chunksize 1000");
}

// --- as_completed -----------------------------------------------------------------------------

// A result that counts how many of its kind are alive: one per future state that holds it.
struct Tracked {
  static inline std::atomic<long> live{0};
  std::array<char, 64> payload{};
  Tracked() { ++live; }
  Tracked(const Tracked& other) : payload(other.payload) { ++live; }
  Tracked(Tracked&& other) noexcept : payload(other.payload) { ++live; }
  Tracked& operator=(const Tracked&) = default;
  Tracked& operator=(Tracked&&) = default;
  ~Tracked() { --live; }
};

TEST(BoundedMemoryTest, AsCompletedOverAMillionFuturesDropsEachYieldedFuturesState) {
  ASSERT_EQ(Tracked::live.load(), 0);
  // Half the futures are done before the call, the other half are completed by another thread
  // while the loop runs (which then lets go of its own handle on each).
  std::vector<cf::Future<Tracked>> futures(static_cast<std::size_t>(kFutures));
  std::vector<std::optional<cf::Future<Tracked>>> to_complete;
  for (long i = 0; i < kFutures; ++i) {
    auto& f = futures[static_cast<std::size_t>(i)];
    if (i % 2 == 0) {
      f.set_result(Tracked{});
    } else {
      to_complete.emplace_back(f);
    }
  }
  auto completed = cf::as_completed(futures, kDeadlock);
  futures.clear();  // from here on only the range, and the completing thread, hold the futures
  futures.shrink_to_fit();
  std::thread completer([&] {
    for (auto& f : to_complete) {
      f->set_result(Tracked{});
      f.reset();
    }
  });
  long yielded = 0;
  long held_too_long = 0;
  for (cf::Future<Tracked> f : completed) {
    (void)f.result();
    f = cf::Future<Tracked>();  // the loop's own handle goes too: the state is now unreferenced
    ++yielded;
    // Every value still alive belongs to a future not yet yielded, but for the completing
    // thread's: for a moment after a future it completed is yielded here, that thread still
    // holds its handle on it and is still inside set_result (the temporary and the by-value
    // argument): at most 3 values. A range that kept yielded states would exceed that by
    // thousands.
    held_too_long += Tracked::live.load() <= kFutures - yielded + 3 ? 0 : 1;
  }
  completer.join();
  EXPECT_EQ(yielded, kFutures);
  EXPECT_EQ(held_too_long, 0) << "yielded futures' states were kept alive";
  // The range is still alive, and holds none of them.
  EXPECT_EQ(Tracked::live.load(), 0);
}

}  // namespace
