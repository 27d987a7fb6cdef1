// Where a thread pool's map keeps its results (detail/map_core.hpp, Chunk::out): in memory the
// worker that runs the chunk allocates, not the thread that calls map. That thread reads the
// input and iterates; were it also to allocate every chunk's result storage, it would fault in
// fresh pages for them (on this project's VM a 4 KiB fault costs about 15 us) while the workers
// wait. And the storage of a chunk the iterator is done with is kept for a later chunk, not freed
// and allocated again. Its own binary: it replaces the global operator new to count bytes, each
// thread's and all threads'.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

namespace {

thread_local std::size_t t_allocated = 0;  // bytes this thread asked operator new for
std::atomic<std::size_t> g_allocated{0};   // bytes every thread asked operator new for

}  // namespace

void* operator new(std::size_t n) {
  t_allocated += n;
  g_allocated.fetch_add(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// GCC sees free() of what new returned; here new is malloc, so they match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace {

namespace cf = concurrent::futures;

// A result of 256 bytes: 100,000 of them take 25.6 MB wherever they are stored.
std::array<char, 256> widen(int x) {
  std::array<char, 256> a{};
  a[0] = static_cast<char>(x);
  return a;
}

TEST(MapMemoryTest, TheThreadThatCallsMapDoesNotAllocateTheChunksResults) {
  cf::ThreadPoolExecutor pool(2);
  std::vector<int> items(100'000);
  std::iota(items.begin(), items.end(), 0);
  constexpr std::size_t kResultBytes = 100'000 * sizeof(std::array<char, 256>);
  const std::size_t before = t_allocated;
  std::size_t seen = 0;
  for (const std::array<char, 256>& a :
       pool.map(widen, items, cf::MapOptions{.chunksize = 25'000})) {
    EXPECT_EQ(a[0], static_cast<char>(seen));
    ++seen;
  }
  const std::size_t by_caller = t_allocated - before;
  EXPECT_EQ(seen, items.size());
  // The caller copies the input into chunks (about 1 MB with vector growth) and keeps the map's
  // bookkeeping; the results' 25.6 MB are the workers'.
  EXPECT_LT(by_caller, kResultBytes / 8)
      << "the calling thread allocated " << by_caller << " bytes, as if it stored the results";
}

TEST(MapMemoryTest, ChunksReuseTheResultStorageOfChunksAlreadyIterated) {
  cf::ThreadPoolExecutor pool(2);
  std::vector<int> items(20'000);
  std::iota(items.begin(), items.end(), 0);
  constexpr std::size_t kChunk = 100;
  // Each chunk stores its 100 results of 256 bytes (26 KB); 200 chunks would allocate 5 MB.
  constexpr std::size_t kAllChunksStorage = 20'000 * sizeof(std::array<char, 256>);
  // At most two chunks in flight: a chunk runs only after the iterator released an earlier one,
  // whose storage it can take.
  const cf::MapOptions options{.chunksize = kChunk, .buffersize = 2};
  const std::size_t before = g_allocated.load();
  std::size_t seen = 0;
  for (const std::array<char, 256>& a : pool.map(widen, items, options)) {
    EXPECT_EQ(a[0], static_cast<char>(seen));
    ++seen;
  }
  const std::size_t allocated = g_allocated.load() - before;
  EXPECT_EQ(seen, items.size());
  // Left: a few chunks' storage, and each chunk's input, task and future (about 1 KB a chunk).
  EXPECT_LT(allocated, kAllChunksStorage / 4)
      << "the map allocated " << allocated << " bytes, as if each chunk had its own storage";
}

}  // namespace
