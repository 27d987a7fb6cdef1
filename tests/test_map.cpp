// docs/reference.md §4: Executor::map, map_unordered and starmap with their MapOptions (timeout,
// chunksize, buffersize). Ports CPython's executor.ExecutorTest map cases (E3–E5, E8–E14, E18,
// E20, E21) with the per-item error semantics of CPython's main branch, and test_thread_pool's
// J1 and J7.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "executor_fixture.hpp"

namespace {

using cftest::collect;

int square(int x) { return x * x; }

int twice(int x) { return 2 * x; }

int add(int x, int y) { return x + y; }

int power(int base, int exponent) {
  int result = 1;
  for (int i = 0; i < exponent; ++i) result *= base;
  return result;
}

std::string to_str(int x) { return std::to_string(x); }

std::pair<int, int> divmod(int x, int y) {
  if (y == 0) throw std::domain_error("integer division or modulo by zero");
  return {x / y, x % y};
}

// E20's timeout_on_one: a TimeoutError that is this item's own error.
int timeout_on_one(int x) {
  if (x == 1) throw cf::TimeoutError("from the callable");
  return x;
}

int fail_on_multiples_of_7(int x) {
  if (x % 7 == 0) throw std::invalid_argument("multiple of 7: " + std::to_string(x));
  return x + 1;
}

void fail_on_two(int x) {
  if (x == 2) throw std::invalid_argument("two");
}

std::vector<int> iota_vector(int n, int (*f)(int) = nullptr) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(f != nullptr ? f(i) : i);
  return v;
}

template <class Factory>
class MapTest : public cftest::ExecutorTest<Factory> {};
TYPED_TEST_SUITE(MapTest, cftest::AllExecutors, cftest::ExecutorName);

template <class Factory>
class MapSharedMemoryTest : public cftest::ExecutorTest<Factory> {};
TYPED_TEST_SUITE(MapSharedMemoryTest, cftest::SharedMemoryExecutors, cftest::ExecutorName);

// --- Results in input order (E3 test_map) ----------------------------------------------------

// E3 test_map: the built-in map's result, in order, with and without chunksize.
TYPED_TEST(MapTest, MapOfTwoRangesMatchesSequentialResultsInOrder) {
  cf::Executor& ex = this->executor();
  std::vector<int> expected;
  for (int i = 0; i < 10; ++i) expected.push_back(power(i, i));
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    EXPECT_EQ(collect(ex.map(power, cftest::ints(0, 10), cftest::ints(0, 10),
                             cf::MapOptions{.chunksize = chunksize})),
              expected);
  }
  EXPECT_EQ(collect(ex.map(power, cftest::ints(0, 10), cftest::ints(0, 10))), expected);
}

TYPED_TEST(MapTest, MapOfOneRangeYieldsResultsInInputOrder) {
  cf::Executor& ex = this->executor();
  const std::vector<int> input = iota_vector(200);
  EXPECT_EQ(collect(ex.map(square, input)), iota_vector(200, square));
}

// Ranges are zipped and the shortest wins, whatever the position of the shortest.
TYPED_TEST(MapTest, MapOfSeveralRangesStopsAtTheShortest) {
  cf::Executor& ex = this->executor();
  const std::vector<int> four{1, 2, 3, 4};
  const std::list<int> two{10, 20};
  EXPECT_EQ(collect(ex.map(add, four, two)), (std::vector<int>{11, 22}));
  EXPECT_EQ(collect(ex.map(add, two, four)), (std::vector<int>{11, 22}));
  EXPECT_EQ(collect(ex.map([](int a, int b, int c) { return a + b + c; }, four, four,
                           std::vector<int>{100, 200, 300})),
            (std::vector<int>{102, 204, 306}));
}

TYPED_TEST(MapTest, MapOfAnInfiniteIotaWithAFiniteRangeStopsAtTheFiniteOne) {
  cf::Executor& ex = this->executor();
  const std::vector<int> finite{100, 200, 300};
  EXPECT_EQ(collect(ex.map(add, cftest::Count(0), finite)), (std::vector<int>{100, 201, 302}));
  EXPECT_EQ(collect(ex.map(add, finite, cftest::Count(0))), (std::vector<int>{100, 201, 302}));
}

// A range passed by value (an rvalue container) is owned by the map.
TYPED_TEST(MapTest, MapTakesOwnershipOfAnRvalueRange) {
  cf::Executor& ex = this->executor();
  auto results = ex.map(to_str, std::vector<int>{4, 5, 6}, cf::MapOptions{.buffersize = 1});
  EXPECT_EQ(collect(results), (std::vector<std::string>{"4", "5", "6"}));
}

TYPED_TEST(MapTest, MapOfZeroItemsIsEmpty) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    for (std::size_t buffersize : {0u, 2u}) {
      SCOPED_TRACE(testing::Message() << "chunksize " << chunksize << " buffersize " << buffersize);
      const cf::MapOptions options{.chunksize = chunksize, .buffersize = buffersize};
      auto results = ex.map(square, std::vector<int>{}, options);
      EXPECT_TRUE(results.begin() == results.end());
      auto unordered = ex.map_unordered(square, std::vector<int>{}, options);
      EXPECT_TRUE(unordered.begin() == unordered.end());
      auto starred = ex.starmap(add, std::vector<std::pair<int, int>>{}, options);
      EXPECT_TRUE(starred.begin() == starred.end());
    }
  }
}

TYPED_TEST(MapTest, MapOfAVoidFunctionYieldsOncePerItemWithPerItemErrors) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    auto results = ex.map(fail_on_two, cftest::ints(0, 5), cf::MapOptions{.chunksize = chunksize});
    int items = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++items) {
      if (items == 2) {
        EXPECT_THROW(*it, std::invalid_argument);
      } else {
        EXPECT_NO_THROW(*it);
      }
    }
    EXPECT_EQ(items, 5);
  }
}

// docs/reference.md §4: `*it` yields each item by value, once per position.
TYPED_TEST(MapTest, SecondDereferenceOfTheSamePositionThrowsInvalidStateError) {
  cf::Executor& ex = this->executor();
  auto results = ex.map(to_str, cftest::ints(0, 3));
  auto it = results.begin();
  EXPECT_EQ(*it, "0");
  EXPECT_THROW((void)*it, cf::InvalidStateError);
  ++it;
  EXPECT_EQ(*it, "1");
}

// An increment without a dereference skips that item only: the later items are the right ones,
// and a skipped item's exception is never thrown (process pools read past it in the reply).
TYPED_TEST(MapTest, IncrementWithoutDereferenceSkipsOnlyThatItem) {
  cf::Executor& ex = this->executor();
  std::vector<int> got;
  int i = 0;
  auto squares = ex.map(square, cftest::ints(0, 10), cf::MapOptions{.chunksize = 4});
  for (auto it = squares.begin(); it != squares.end(); ++it, ++i) {
    if (i % 3 != 0) got.push_back(*it);
  }
  EXPECT_EQ(got, (std::vector<int>{1, 4, 16, 25, 49, 64}));
  got.clear();
  i = 0;
  auto plus_one =
      ex.map(fail_on_multiples_of_7, cftest::ints(0, 10), cf::MapOptions{.chunksize = 4});
  for (auto it = plus_one.begin(); it != plus_one.end(); ++it, ++i) {
    if (i % 7 != 0) got.push_back(*it);  // 0 and 7 throw, unread
  }
  EXPECT_EQ(got, (std::vector<int>{2, 3, 4, 5, 6, 7, 9, 10}));
}

// Two threads mapping on one executor at the same time each get their own results.
TYPED_TEST(MapTest, ConcurrentMapsFromTwoThreadsAreIndependent) {
  cf::Executor& ex = this->executor();
  std::vector<int> first, second;
  {
    std::jthread a([&] { first = collect(ex.map(square, cftest::ints(0, 300))); });
    std::jthread b([&] {
      second = collect(
          ex.map(add, cftest::ints(0, 300), cftest::ints(0, 300), cf::MapOptions{.chunksize = 7}));
    });
  }
  EXPECT_EQ(first, iota_vector(300, square));
  EXPECT_EQ(second, iota_vector(300, twice));
}

// --- Per-item exceptions (E4 test_map_exception, CPython main) -------------------------------

// E4: the exception is rethrown at *it for that item only; ++it goes on to the next item,
// even when the failing item shares a chunk with others.
TYPED_TEST(MapTest, ExceptionIsRethrownForItsItemAndIterationContinues) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u}) {
    SCOPED_TRACE(chunksize);
    auto results = ex.map(divmod, std::vector<int>{5, 5, 5, 5}, std::vector<int>{2, 3, 0, 5},
                          cf::MapOptions{.chunksize = chunksize});
    auto it = results.begin();
    EXPECT_EQ(*it, std::make_pair(2, 1));
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 2));
    ++it;
    EXPECT_THROW((void)*it, std::domain_error);
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 0));
    ++it;
    EXPECT_TRUE(it == results.end());
    EXPECT_TRUE(it == results.end());
  }
}

// E4 (main), chunksize=3 with the failure inside the first chunk.
TYPED_TEST(MapTest, ExceptionInsideAChunkFailsOnlyThatItem) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u}) {
    SCOPED_TRACE(chunksize);
    auto results = ex.map(divmod, std::vector<int>{5, 5, 5, 5}, std::vector<int>{2, 0, 3, 5},
                          cf::MapOptions{.chunksize = chunksize});
    auto it = results.begin();
    EXPECT_EQ(*it, std::make_pair(2, 1));
    ++it;
    try {
      (void)*it;
      ADD_FAILURE() << "item 1 did not throw";
    } catch (const std::domain_error& e) {
      EXPECT_STREQ(e.what(), "integer division or modulo by zero");
    }
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 2));
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 0));
    ++it;
    EXPECT_TRUE(it == results.end());
  }
}

// E20 test_map_timeout_from_callable: a TimeoutError thrown by fn is only that item's error, not
// the map's timeout, with or without a map timeout.
TYPED_TEST(MapTest, TimeoutErrorFromTheCallableIsOnlyThatItemsError) {
  cf::Executor& ex = this->executor();
  for (bool with_timeout : {false, true}) {
    SCOPED_TRACE(with_timeout);
    cf::MapOptions options;
    if (with_timeout) options.timeout = cftest::kDeadlock;
    auto results = ex.map(timeout_on_one, std::vector<int>{0, 1, 2, 3}, options);
    auto it = results.begin();
    EXPECT_EQ(*it, 0);
    ++it;
    try {
      (void)*it;
      ADD_FAILURE() << "item 1 did not throw";
    } catch (const cf::TimeoutError& e) {
      EXPECT_STREQ(e.what(), "from the callable");
    }
    ++it;
    EXPECT_EQ(*it, 2);
    ++it;
    EXPECT_EQ(*it, 3);
    ++it;
    EXPECT_TRUE(it == results.end());
  }
}

// --- chunksize -------------------------------------------------------------------------------

// chunksize = 0 (automatic): correct results for any input size.
TYPED_TEST(MapTest, AutomaticChunksizeGivesCorrectResultsForAnySize) {
  cf::Executor& ex = this->executor();
  for (int n : {0, 1, 7, 100000}) {
    SCOPED_TRACE(n);
    auto results = ex.map(twice, cftest::ints(0, n), cf::MapOptions{.chunksize = 0});
    int i = 0;
    bool all_match = true;
    for (auto it = results.begin(); it != results.end(); ++it, ++i) all_match &= (*it == 2 * i);
    EXPECT_EQ(i, n);
    EXPECT_TRUE(all_match);
  }
}

TYPED_TEST(MapTest, AutomaticChunksizeKeepsExceptionsPerItem) {
  cf::Executor& ex = this->executor();
  for (std::size_t buffersize : {0u, 3u}) {
    SCOPED_TRACE(buffersize);
    auto results = ex.map(fail_on_multiples_of_7, cftest::ints(0, 1000),
                          cf::MapOptions{.chunksize = 0, .buffersize = buffersize});
    int i = 0;
    int errors = 0;
    int wrong = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++i) {
      try {
        if (*it != i + 1) ++wrong;
        if (i % 7 == 0) ++wrong;
      } catch (const std::invalid_argument& e) {
        ++errors;
        if (i % 7 != 0 || e.what() != "multiple of 7: " + std::to_string(i)) ++wrong;
      }
    }
    EXPECT_EQ(i, 1000);
    EXPECT_EQ(errors, 143);
    EXPECT_EQ(wrong, 0);
  }
}

TYPED_TEST(MapTest, FixedChunksizeLargerThanTheInputGivesCorrectResults) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {2u, 6u, 40u, 50u}) {
    SCOPED_TRACE(chunksize);
    EXPECT_EQ(collect(ex.map(square, cftest::ints(0, 40), cf::MapOptions{.chunksize = chunksize})),
              iota_vector(40, square));
  }
}

// Items of one chunk run on the same thread, one after the other: with 2 workers and chunks of
// 3, item 0 blocks until item 5 has run. Were the items not chunked, the second worker would run
// items 1 and 2 while the first is blocked.
TYPED_TEST(MapSharedMemoryTest, ItemsOfAChunkRunOnOneThreadConsecutively) {
  std::mutex mu;
  std::map<std::thread::id, std::vector<int>> per_thread;
  cftest::Event item5_ran;
  auto ex = this->make_executor(2);
  auto results = ex->map(
      [&](int i) {
        {
          std::lock_guard lock(mu);
          per_thread[std::this_thread::get_id()].push_back(i);
        }
        if (i == 5) item5_ran.set();
        if (i == 0) {
          EXPECT_TRUE(item5_ran.wait());
        }
        return i;
      },
      cftest::ints(0, 6), cf::MapOptions{.chunksize = 3});
  EXPECT_EQ(collect(results), iota_vector(6));
  std::lock_guard lock(mu);
  std::set<std::vector<int>> runs;
  for (const auto& [thread, items] : per_thread) runs.insert(items);
  EXPECT_EQ(runs, (std::set<std::vector<int>>{{0, 1, 2}, {3, 4, 5}}));
}

// The same on a larger input: in each thread's log, a chunk's items are adjacent and in order.
TYPED_TEST(MapSharedMemoryTest, ChunkItemsAreAdjacentInTheirThreadsLog) {
  std::mutex mu;
  std::map<std::thread::id, std::vector<int>> per_thread;
  auto ex = this->make_executor(4);
  constexpr int kChunk = 4;
  auto results = ex->map(
      [&](int i) {
        std::lock_guard lock(mu);
        per_thread[std::this_thread::get_id()].push_back(i);
        return i;
      },
      cftest::ints(0, 40), cf::MapOptions{.chunksize = kChunk});
  EXPECT_EQ(collect(results), iota_vector(40));
  std::lock_guard lock(mu);
  for (const auto& [thread, items] : per_thread) {
    ASSERT_EQ(items.size() % kChunk, 0u);
    for (std::size_t k = 0; k < items.size(); k += kChunk) {
      EXPECT_EQ(items[k] % kChunk, 0) << "a chunk must start at a multiple of " << kChunk;
      for (int j = 1; j < kChunk; ++j) EXPECT_EQ(items[k + j], items[k] + j);
    }
  }
}

// --- Eager submission (J1 test_map_submits_without_iteration) ---------------------------------

TYPED_TEST(MapSharedMemoryTest, MapSubmitsAllWorkWithoutIteration) {
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    std::mutex mu;
    std::set<int> ran;
    auto ex = this->make_executor();
    auto results = ex->map(
        [&](int i) {
          std::lock_guard lock(mu);
          ran.insert(i);
          return i;
        },
        cftest::ints(0, 10), cf::MapOptions{.chunksize = chunksize});
    ex->shutdown();
    {
      std::lock_guard lock(mu);
      EXPECT_EQ(ran, (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    }
    EXPECT_EQ(collect(results), iota_vector(10));
  }
}

// Without buffersize, map() reads all of its input before it returns.
TYPED_TEST(MapTest, EagerMapReadsAllInputBeforeReturning) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    int reads = 0;
    auto input = cftest::Generated(0, 25, [&reads](int i) {
      ++reads;
      return i;
    });
    auto results = ex.map(square, input, cf::MapOptions{.chunksize = chunksize});
    EXPECT_EQ(reads, 25);
    EXPECT_EQ(collect(results), iota_vector(25, square));
    EXPECT_EQ(reads, 25);
  }
}

// --- Input errors ----------------------------------------------------------------------------

TYPED_TEST(MapTest, InputErrorComesOutOfMapWithoutBuffersize) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    auto input = cftest::Generated(0, 10, [](int i) {
      if (i == 4) throw std::runtime_error("input broke");
      return i;
    });
    try {
      auto results = ex.map(square, input, cf::MapOptions{.chunksize = chunksize});
      ADD_FAILURE() << "map() did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "input broke");
    }
  }
}

TYPED_TEST(MapTest, InputErrorComesOutOfTheIncrementThatReadsIt) {
  cf::Executor& ex = this->executor();
  // buffersize 2, chunksize 1: map() reads items 0 and 1, the first ++ reads item 2 and the
  // second ++ reads item 3, which throws.
  auto input = cftest::Generated(0, 10, [](int i) {
    if (i == 3) throw std::runtime_error("input broke");
    return i;
  });
  // The range's type is not part of the contract (docs/reference.md §4): spell it from the call.
  std::optional<decltype(ex.map(square, input, cf::MapOptions{}))> results;
  ASSERT_NO_THROW(results.emplace(ex.map(square, input, cf::MapOptions{.buffersize = 2})));
  auto it = results->begin();
  EXPECT_EQ(*it, 0);
  ASSERT_NO_THROW(++it);
  EXPECT_EQ(*it, 1);
  try {
    ++it;
    ADD_FAILURE() << "++it did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "input broke");
  }
}

// --- buffersize (E8–E14) ---------------------------------------------------------------------

// E8 test_map_buffersize
TYPED_TEST(MapTest, BuffersizeGivesResultsInOrder) {
  cf::Executor& ex = this->executor();
  for (std::size_t buffersize : {1u, 2u, 4u, 8u}) {
    SCOPED_TRACE(buffersize);
    EXPECT_EQ(collect(ex.map(to_str, cftest::ints(0, 4), cf::MapOptions{.buffersize = buffersize})),
              (std::vector<std::string>{"0", "1", "2", "3"}));
  }
}

// E9 test_map_buffersize_on_multiple_iterables
TYPED_TEST(MapTest, BuffersizeOnSeveralRanges) {
  cf::Executor& ex = this->executor();
  for (std::size_t buffersize : {1u, 2u, 4u, 8u}) {
    SCOPED_TRACE(buffersize);
    EXPECT_EQ(collect(ex.map(add, cftest::ints(0, 4), cftest::ints(0, 4),
                             cf::MapOptions{.buffersize = buffersize})),
              (std::vector<int>{0, 2, 4, 6}));
  }
}

// E10 test_map_buffersize_on_infinite_iterable
TYPED_TEST(MapTest, BuffersizeOnAnInfiniteRangeReturnsAtOnce) {
  cf::Executor& ex = this->executor();
  auto results = ex.map(to_str, cftest::Count(0), cf::MapOptions{.buffersize = 2});
  auto it = results.begin();
  EXPECT_EQ(*it, "0");
  ++it;
  EXPECT_EQ(*it, "1");
  ++it;
  EXPECT_EQ(*it, "2");
}

// E11 test_map_buffersize_on_multiple_infinite_iterables
TYPED_TEST(MapTest, BuffersizeOnSeveralInfiniteRanges) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    auto results = ex.map(add, cftest::Count(0), cftest::Count(0),
                          cf::MapOptions{.chunksize = chunksize, .buffersize = 2});
    auto it = results.begin();
    EXPECT_EQ(*it, 0);
    ++it;
    EXPECT_EQ(*it, 2);
    ++it;
    EXPECT_EQ(*it, 4);
  }
}

// E12 test_map_buffersize_on_empty_iterable
TYPED_TEST(MapTest, BuffersizeOnAnEmptyRangeIsEmpty) {
  cf::Executor& ex = this->executor();
  auto results = ex.map(to_str, std::vector<int>{}, cf::MapOptions{.buffersize = 2});
  EXPECT_TRUE(results.begin() == results.end());
}

// E13 test_map_buffersize_without_iterable has no C++ counterpart: map() with no range does not
// compile.

// E14 test_map_buffersize_when_buffer_is_full: never iterated, exactly buffersize chunks of
// input were read, even once all that work has finished.
TYPED_TEST(MapTest, BuffersizeReadsExactlyBuffersizeChunksWhenNeverIterated) {
  const std::pair<std::size_t, std::size_t> cases[] = {{1, 1}, {2, 1}, {2, 3}, {4, 2}};
  for (const auto& [buffersize, chunksize] : cases) {
    SCOPED_TRACE(testing::Message() << "buffersize " << buffersize << " chunksize " << chunksize);
    std::size_t reads = 0;
    auto input = cftest::Generated(0, 100, [&reads](int i) {
      ++reads;
      return i;
    });
    auto ex = this->make_executor();
    auto results =
        ex->map(to_str, input, cf::MapOptions{.chunksize = chunksize, .buffersize = buffersize});
    ex->shutdown();
    EXPECT_EQ(reads, buffersize * chunksize);
  }
}

// Each ++it that finishes a chunk reads and submits one more: with chunks of one item, the
// input is read exactly buffersize items ahead of the iterator.
TYPED_TEST(MapTest, BuffersizeReadsOneMoreItemPerIncrement) {
  cf::Executor& ex = this->executor();
  std::size_t reads = 0;
  auto input = cftest::Generated(0, std::numeric_limits<int>::max(), [&reads](int i) {
    ++reads;
    return i;
  });
  auto results = ex.map(square, input, cf::MapOptions{.buffersize = 3});
  EXPECT_EQ(reads, 3u);
  auto it = results.begin();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(*it, i * i);
    ++it;
    EXPECT_EQ(reads, static_cast<std::size_t>(i) + 4);
  }
}

// Memory stays bounded on an endless input: the input is never read more than buffersize chunks
// ahead of the iterator.
TYPED_TEST(MapTest, BuffersizeKeepsTheInputBoundedAheadOfTheIterator) {
  cf::Executor& ex = this->executor();
  const std::pair<std::size_t, std::size_t> cases[] = {{1, 1}, {4, 1}, {2, 5}};
  for (const auto& [buffersize, chunksize] : cases) {
    SCOPED_TRACE(testing::Message() << "buffersize " << buffersize << " chunksize " << chunksize);
    std::size_t reads = 0;
    auto input = cftest::Generated(0, std::numeric_limits<int>::max(), [&reads](int i) {
      ++reads;
      return i;
    });
    auto results =
        ex.map(square, input, cf::MapOptions{.chunksize = chunksize, .buffersize = buffersize});
    std::size_t consumed = 0;
    std::size_t most_ahead = 0;
    bool all_match = true;
    for (auto it = results.begin(); consumed < 500; ++it) {
      all_match &= (*it == static_cast<int>(consumed * consumed));
      ++consumed;
      most_ahead = std::max(most_ahead, reads - consumed);
    }
    EXPECT_TRUE(all_match);
    EXPECT_LE(most_ahead, buffersize * chunksize);
    EXPECT_GE(reads, consumed);
  }
}

// The same bound, measured on the objects themselves: arguments and results alive at any time.
struct Tracked {
  static inline std::atomic<int> live{0};
  static inline std::atomic<int> most{0};
  int value;
  explicit Tracked(int v) : value(v) { born(); }
  Tracked(const Tracked& other) : value(other.value) { born(); }
  Tracked(Tracked&& other) noexcept : value(other.value) { born(); }
  Tracked& operator=(const Tracked&) = default;
  Tracked& operator=(Tracked&&) = default;
  ~Tracked() { live.fetch_sub(1); }
  static void born() {
    const int now = live.fetch_add(1) + 1;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
  }
};

TYPED_TEST(MapSharedMemoryTest, BuffersizeKeepsLiveArgumentsAndResultsBounded) {
  constexpr std::size_t kBuffersize = 3;
  constexpr std::size_t kChunksize = 2;
  Tracked::live = 0;
  Tracked::most = 0;
  auto ex = this->make_executor(4);
  {
    auto input =
        cftest::Generated(0, std::numeric_limits<int>::max(), [](int i) { return Tracked(i); });
    auto results = ex->map([](Tracked t) { return Tracked(t.value * 2); }, input,
                           cf::MapOptions{.chunksize = kChunksize, .buffersize = kBuffersize});
    int i = 0;
    for (auto it = results.begin(); i < 300; ++it, ++i) EXPECT_EQ((*it).value, 2 * i);
  }
  ex->shutdown();
  EXPECT_EQ(Tracked::live.load(), 0);
  // In flight at most buffersize chunks of arguments and as many of results, plus the handful of
  // temporaries one item makes on its way.
  EXPECT_LE(Tracked::most.load(), static_cast<int>(2 * kBuffersize * kChunksize + 6));
}

// --- Timeout (E5 test_map_timeout, J7 test_executor_map_current_future_cancel) ----------------

// E5: map(sleep, [0, 0, long], timeout): TimeoutError during iteration, the results collected
// before it are a prefix of [0, 0] (a slow start may leave fewer), then the iterator is at end.
TYPED_TEST(MapSharedMemoryTest, MapTimeoutThrowsTimeoutErrorThenEnds) {
  auto ex = this->make_executor();
  cftest::Gate gate;
  constexpr auto kTimeout = 100ms;
  const auto start = std::chrono::steady_clock::now();
  auto results = ex->map(
      [g = gate.event()](int x) {
        if (x != 0) g->wait();
        return x;
      },
      std::vector<int>{0, 0, 1}, cf::MapOptions{.timeout = kTimeout});
  std::vector<int> collected;
  auto it = results.begin();
  bool timed_out = false;
  try {
    for (; it != results.end(); ++it) collected.push_back(*it);
  } catch (const cf::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, kTimeout);
  EXPECT_LE(collected.size(), 2u);
  for (int x : collected) EXPECT_EQ(x, 0);
  ++it;
  EXPECT_TRUE(it == results.end());
  ++it;
  EXPECT_TRUE(it == results.end());
}

// J7 / gh-95166: with a 1-worker pool busy, the map times out waiting for "second": both the
// item waited on and the queued "third" are cancelled by the timeout itself (the range is kept
// alive until the end, so its destructor cannot be what cancels them).
TYPED_TEST(MapSharedMemoryTest, MapTimeoutCancelsTheItemWaitedOnAndTheRest) {
  for (auto timeout : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(20ms)}) {
    SCOPED_TRACE(timeout.count());
    std::mutex mu;
    std::vector<std::string> log;
    auto record = [&](std::string line) {
      std::lock_guard lock(mu);
      log.push_back(std::move(line));
    };
    cftest::Event first_started;
    auto ex = this->make_executor(1);
    cftest::Gate gate;
    ex->submit([&, g = gate.event()] {
      record("first started");
      first_started.set();
      g->wait();
      record("first stopped");
    });
    ASSERT_TRUE(first_started.wait());
    auto results = ex->map(
        [&](const std::string& name) {
          record(name + " started");
          return name;
        },
        std::vector<std::string>{"second", "third"}, cf::MapOptions{.timeout = timeout});
    auto it = results.begin();
    EXPECT_THROW((void)*it, cf::TimeoutError);
    ++it;
    EXPECT_TRUE(it == results.end());
    gate.open();
    ex->shutdown();
    std::lock_guard lock(mu);
    EXPECT_EQ(log, (std::vector<std::string>{"first started", "first stopped"}));
  }
}

// CPython: a result already there when the deadline has passed is still returned. With one
// worker and a FIFO queue, a task submitted after the map finishes after all of its items.
TYPED_TEST(MapSharedMemoryTest, ResultsReadyBeforeIterationAreReturnedAfterTheDeadline) {
  auto ex = this->make_executor(1);
  const auto start = std::chrono::steady_clock::now();
  auto results = ex->map(square, cftest::ints(0, 5), cf::MapOptions{.timeout = 1ms});
  ex->submit([] {}).result(cftest::kDeadlock);
  std::this_thread::sleep_until(start + 5ms);  // let the map's deadline pass
  std::vector<int> collected;
  ASSERT_NO_THROW(collected = collect(results));
  EXPECT_EQ(collected, iota_vector(5, square));
}

// --- Destroying the range (E21 test_map_close) ----------------------------------------------

// Destroying the range before anything ran: none of the work ever starts.
TYPED_TEST(MapSharedMemoryTest, DestroyingTheRangeCancelsWorkNotStarted) {
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    for (std::size_t buffersize : {0u, 2u}) {
      SCOPED_TRACE(testing::Message() << "chunksize " << chunksize << " buffersize " << buffersize);
      std::atomic<int> ran{0};
      cftest::Event blocker_started;
      auto ex = this->make_executor(1);
      cftest::Gate gate;
      ex->submit([&blocker_started, g = gate.event()] {
        blocker_started.set();
        g->wait();
      });
      ASSERT_TRUE(blocker_started.wait());
      {
        auto results = ex->map(
            [&ran](int i) {
              ran.fetch_add(1);
              return i;
            },
            cftest::ints(0, 20), cf::MapOptions{.chunksize = chunksize, .buffersize = buffersize});
      }
      gate.open();
      ex->shutdown();
      EXPECT_EQ(ran.load(), 0);
    }
  }
}

// E21: after taking item 0, with item 1 running, the range is destroyed: item 1 finishes, the
// rest never starts. (Chunks of one item: a running chunk would finish all of its items.)
TYPED_TEST(MapSharedMemoryTest, DestroyingAPartlyConsumedRangeLetsTheRunningItemFinish) {
  for (std::size_t buffersize : {0u, 2u}) {
    SCOPED_TRACE(testing::Message() << "buffersize " << buffersize);
    std::mutex mu;
    std::vector<int> finished;
    cftest::Event item1_started;
    auto ex = this->make_executor(1);
    cftest::Gate gate;
    {
      auto results = ex->map(
          [&, g = gate.event()](int i) {
            if (i == 1) {
              item1_started.set();
              g->wait();
            }
            std::lock_guard lock(mu);
            finished.push_back(i);
            return i;
          },
          cftest::ints(0, 10), cf::MapOptions{.buffersize = buffersize});
      auto it = results.begin();
      EXPECT_EQ(*it, 0);
      ++it;
      ASSERT_TRUE(item1_started.wait());
    }
    gate.open();
    ex->shutdown();
    std::lock_guard lock(mu);
    EXPECT_EQ(finished, (std::vector<int>{0, 1}));
  }
}

// --- map_unordered ---------------------------------------------------------------------------

TYPED_TEST(MapTest, MapUnorderedYieldsEveryIndexOnceWithADoneFuture) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 4u, 0u}) {
    for (std::size_t buffersize : {0u, 3u}) {
      SCOPED_TRACE(testing::Message() << "chunksize " << chunksize << " buffersize " << buffersize);
      std::vector<int> seen(50, 0);
      auto results =
          ex.map_unordered(square, cftest::ints(0, 50),
                           cf::MapOptions{.chunksize = chunksize, .buffersize = buffersize});
      for (auto it = results.begin(); it != results.end(); ++it) {
        static_assert(std::is_same_v<decltype(*it), std::pair<std::size_t, cf::Future<int>>>);
        auto [index, future] = *it;
        ASSERT_LT(index, seen.size());
        ++seen[index];
        EXPECT_TRUE(future.done());
        EXPECT_EQ(future.result(0s), static_cast<int>(index * index));
      }
      EXPECT_EQ(seen, std::vector<int>(50, 1));
    }
  }
}

TYPED_TEST(MapTest, MapUnorderedPutsErrorsInsideTheFutures) {
  cf::Executor& ex = this->executor();
  for (std::size_t chunksize : {1u, 3u}) {
    SCOPED_TRACE(chunksize);
    std::set<std::size_t> failed;
    std::set<std::size_t> succeeded;
    auto results = ex.map_unordered(fail_on_multiples_of_7, cftest::ints(0, 30),
                                    cf::MapOptions{.chunksize = chunksize});
    for (auto it = results.begin(); it != results.end(); ++it) {
      std::pair<std::size_t, cf::Future<int>> item;
      ASSERT_NO_THROW(item = *it);
      const cf::Future<int>& future = item.second;
      EXPECT_TRUE(future.done());
      if (future.exception(0s) != nullptr) {
        failed.insert(item.first);
        EXPECT_THROW(future.result(0s), std::invalid_argument);
      } else {
        succeeded.insert(item.first);
        EXPECT_EQ(future.result(0s), static_cast<int>(item.first) + 1);
      }
    }
    EXPECT_EQ(failed, (std::set<std::size_t>{0, 7, 14, 21, 28}));
    EXPECT_EQ(succeeded.size(), 25u);
  }
}

TYPED_TEST(MapTest, MapUnorderedTakesSeveralRangesAndMapOptions) {
  cf::Executor& ex = this->executor();
  std::map<std::size_t, int> got;
  for (auto [index, future] :
       ex.map_unordered(add, cftest::ints(0, 5), std::vector<int>{10, 20, 30},
                        cf::MapOptions{.chunksize = 2, .buffersize = 1})) {
    got[index] = future.result(0s);
  }
  EXPECT_EQ(got, (std::map<std::size_t, int>{{0, 10}, {1, 21}, {2, 32}}));
}

// An item that finishes first is yielded first.
TYPED_TEST(MapSharedMemoryTest, MapUnorderedYieldsInCompletionOrder) {
  auto ex = this->make_executor(2);
  cftest::Gate gate;
  auto results = ex->map_unordered(
      [g = gate.event()](int i) {
        if (i == 0) g->wait();
        return i * 10;
      },
      std::vector<int>{0, 1});
  auto it = results.begin();
  auto [first_index, first] = *it;
  EXPECT_EQ(first_index, 1u);
  EXPECT_EQ(first.result(0s), 10);
  EXPECT_FALSE(gate.is_open());
  gate.open();
  ++it;
  auto [second_index, second] = *it;
  EXPECT_EQ(second_index, 0u);
  EXPECT_EQ(second.result(0s), 0);
  ++it;
  EXPECT_TRUE(it == results.end());
}

TYPED_TEST(MapSharedMemoryTest, MapUnorderedTimeoutThrowsTimeoutErrorThenEnds) {
  auto ex = this->make_executor(2);
  cftest::Gate gate;
  auto results = ex->map_unordered(
      [g = gate.event()](int i) {
        if (i == 1) g->wait();
        return i;
      },
      std::vector<int>{0, 1}, cf::MapOptions{.timeout = 100ms});
  std::set<std::size_t> got;
  auto it = results.begin();
  bool timed_out = false;
  try {
    for (; it != results.end(); ++it) got.insert((*it).first);
  } catch (const cf::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(got.count(1), 0u);
  ++it;
  EXPECT_TRUE(it == results.end());
}

// --- starmap ---------------------------------------------------------------------------------

TYPED_TEST(MapTest, StarmapOverTuplesAndPairs) {
  cf::Executor& ex = this->executor();
  const std::vector<std::tuple<int, int, int>> triples{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}};
  EXPECT_EQ(collect(ex.starmap([](int a, int b, int c) { return a * b + c; }, triples)),
            (std::vector<int>{5, 26, 65}));
  const std::vector<std::pair<int, std::string>> pairs{{2, "ab"}, {3, "x"}};
  EXPECT_EQ(collect(ex.starmap(
                [](int n, const std::string& s) {
                  std::string out;
                  for (int i = 0; i < n; ++i) out += s;
                  return out;
                },
                pairs)),
            (std::vector<std::string>{"abab", "xxx"}));
}

TYPED_TEST(MapTest, StarmapTakesMapOptionsAndKeepsErrorsPerItem) {
  cf::Executor& ex = this->executor();
  std::vector<std::pair<int, int>> args{{5, 2}, {5, 0}, {5, 3}, {5, 5}, {9, 2}};
  for (std::size_t chunksize : {1u, 2u, 0u}) {
    for (std::size_t buffersize : {0u, 1u}) {
      SCOPED_TRACE(testing::Message() << "chunksize " << chunksize << " buffersize " << buffersize);
      auto results = ex.starmap(divmod, args,
                                cf::MapOptions{.chunksize = chunksize, .buffersize = buffersize});
      auto it = results.begin();
      EXPECT_EQ(*it, std::make_pair(2, 1));
      ++it;
      EXPECT_THROW((void)*it, std::domain_error);
      ++it;
      EXPECT_EQ(*it, std::make_pair(1, 2));
      ++it;
      EXPECT_EQ(*it, std::make_pair(1, 0));
      ++it;
      EXPECT_EQ(*it, std::make_pair(4, 1));
      ++it;
      EXPECT_TRUE(it == results.end());
    }
  }
}

TYPED_TEST(MapTest, MapOptionsAsLastArgumentOfMapWithSeveralRanges) {
  cf::Executor& ex = this->executor();
  const cf::MapOptions options{.timeout = cftest::kDeadlock, .chunksize = 2, .buffersize = 1};
  EXPECT_EQ(collect(ex.map(add, cftest::ints(0, 5), std::vector<int>{1, 1, 1, 1, 1, 1}, options)),
            (std::vector<int>{1, 2, 3, 4, 5}));
}

// --- No stale references (E18 test_free_reference) ------------------------------------------

// E18: the range keeps no reference to a result it has yielded.
TYPED_TEST(MapSharedMemoryTest, YieldedResultsAreNotKeptByTheRange) {
  auto ex = this->make_executor();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    auto results = ex->map([](int i) { return std::make_shared<int>(i); }, cftest::ints(0, 10),
                           cf::MapOptions{.chunksize = chunksize});
    int i = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++i) {
      std::shared_ptr<int> value = *it;
      ASSERT_NE(value, nullptr);
      EXPECT_EQ(*value, i);
      std::weak_ptr<int> weak = value;
      value.reset();
      EXPECT_TRUE(weak.expired()) << "item " << i;
    }
    EXPECT_EQ(i, 10);
  }
}

TYPED_TEST(MapSharedMemoryTest, MapUnorderedResultIsReleasedWithItsFuture) {
  auto ex = this->make_executor();
  auto results =
      ex->map_unordered([](int i) { return std::make_shared<int>(i); }, cftest::ints(0, 5));
  for (auto it = results.begin(); it != results.end();) {
    std::weak_ptr<int> weak;
    {
      auto [index, future] = *it;
      weak = future.result(0s);
      ++it;
    }
    EXPECT_TRUE(weak.expired());
  }
}

// The arguments of an item are gone by the time its result is taken (the input container was
// moved into the map, so only the map could still hold them).
TYPED_TEST(MapSharedMemoryTest, ArgumentsAreReleasedOnceTheirItemRan) {
  auto ex = this->make_executor();
  for (std::size_t chunksize : {1u, 3u}) {
    SCOPED_TRACE(chunksize);
    std::vector<std::shared_ptr<int>> args;
    std::vector<std::weak_ptr<int>> weak;
    for (int i = 0; i < 9; ++i) {
      args.push_back(std::make_shared<int>(i));
      weak.push_back(args.back());
    }
    auto results = ex->map([](const std::shared_ptr<int>& p) { return *p; }, std::move(args),
                           cf::MapOptions{.chunksize = chunksize});
    int i = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++i) {
      EXPECT_EQ(*it, i);
      EXPECT_TRUE(weak[static_cast<std::size_t>(i)].expired()) << "item " << i;
    }
  }
}

// Lazily read input: once the whole input has been iterated, nothing of it is left.
TYPED_TEST(MapSharedMemoryTest, LazyMapReleasesTheInputOnceIterated) {
  auto ex = this->make_executor();
  std::vector<std::shared_ptr<int>> args;
  std::vector<std::weak_ptr<int>> weak;
  for (int i = 0; i < 6; ++i) {
    args.push_back(std::make_shared<int>(i));
    weak.push_back(args.back());
  }
  auto results = ex->map([](const std::shared_ptr<int>& p) { return *p; }, std::move(args),
                         cf::MapOptions{.buffersize = 2});
  EXPECT_EQ(collect(results), iota_vector(6));
  for (std::size_t i = 0; i < weak.size(); ++i) EXPECT_TRUE(weak[i].expired()) << "item " << i;
}

// The callable (and what it captured) is released once all items have run.
TYPED_TEST(MapSharedMemoryTest, CallableIsReleasedOnceAllItemsRan) {
  auto ex = this->make_executor();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    for (std::size_t buffersize : {0u, 2u}) {
      SCOPED_TRACE(testing::Message() << "chunksize " << chunksize << " buffersize " << buffersize);
      auto captured = std::make_shared<int>(100);
      std::weak_ptr<int> weak = captured;
      auto results =
          ex->map([c = std::move(captured)](int i) { return *c + i; }, cftest::ints(0, 7),
                  cf::MapOptions{.chunksize = chunksize, .buffersize = buffersize});
      EXPECT_EQ(collect(results), (std::vector<int>{100, 101, 102, 103, 104, 105, 106}));
      // A drain task (automatic chunking) may still be returning after publishing the last item.
      EXPECT_TRUE(cftest::eventually([&] { return weak.expired(); }));
    }
  }
}

// Every item of a map of void work ran, in a shared-memory executor, exactly once.
TYPED_TEST(MapSharedMemoryTest, MapOfAVoidFunctionRunsEachItemOnce) {
  std::vector<std::atomic<int>> calls(100);
  auto ex = this->make_executor();
  for (std::size_t chunksize : {1u, 7u, 0u}) {
    SCOPED_TRACE(chunksize);
    for (auto& c : calls) c = 0;
    auto results = ex->map([&calls](int i) { calls[static_cast<std::size_t>(i)].fetch_add(1); },
                           cftest::ints(0, 100), cf::MapOptions{.chunksize = chunksize});
    int items = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++items) *it;
    EXPECT_EQ(items, 100);
    for (std::size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].load(), 1) << "item " << i;
  }
}

// ++it without *it skips items without waiting for them: a whole chunk can be skipped while a
// worker still runs it. The chunk's storage must stay the worker's (under TSan, the iterator
// taking it for reuse while the worker wrote to it was reported as a race), and every later item
// must be right. The test learns that chunk 0 has started from a relaxed atomic, which orders
// nothing, so that TSan sees the worker's writes and the iterator's release as unordered.
TEST(ThreadPoolMapTest, SkippingAChunkThatIsStillRunningLeavesItsStorageToTheWorker) {
  std::atomic<bool> started{false};  // before the pool: outlives its workers
  cf::ThreadPoolExecutor pool(2);
  cftest::Gate gate;  // after the pool: opens before the pool waits for its tasks
  const auto fn = [event = gate.event(), &started](int x) {
    if (x == 1) {  // chunk 0 stays running, its item 0 already stored
      started.store(true, std::memory_order_relaxed);
      event->wait();
    }
    return x * 2;
  };
  constexpr int kChunk = 4;
  auto doubled = pool.map(fn, cftest::ints(0, 40), cf::MapOptions{.chunksize = kChunk});
  ASSERT_TRUE(cftest::eventually([&] { return started.load(std::memory_order_relaxed); }));
  auto it = doubled.begin();
  for (int i = 0; i < kChunk; ++i) ++it;  // chunk 0 released unread, while it runs
  gate.open();
  std::vector<int> got;
  for (; it != doubled.end(); ++it) got.push_back(*it);
  std::vector<int> expected;
  for (int x = kChunk; x < 40; ++x) expected.push_back(x * 2);
  EXPECT_EQ(got, expected);
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);  // the process-pool instances' spawn workers start here
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
