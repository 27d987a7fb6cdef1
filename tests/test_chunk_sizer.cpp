// detail::ChunkSizer (detail/map_core.hpp): the chunk sizes of map with a fixed chunksize, and
// with chunksize = 0 (automatic: from the measured time per item). Pure arithmetic, no pool.
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures/detail/map_core.hpp>

namespace {

using concurrent::futures::detail::ChunkSizer;
using std::chrono::microseconds;
using std::chrono::nanoseconds;

constexpr std::size_t kUnknown = ChunkSizer::kUnknown;
constexpr std::size_t kPlenty = std::size_t{1}
                                << 40;  // so much left that only the measurement counts

// The automatic size for items of `per_item` each, with nothing else limiting it.
std::size_t measured_size(nanoseconds per_item) {
  ChunkSizer sizer(0, 4);
  sizer.record(1000, per_item * 1000);
  return sizer.next(kUnknown);
}

TEST(ChunkSizerTest, FixedSizeIsReturnedCappedByWhatRemains) {
  ChunkSizer sizer(8, 4);
  EXPECT_FALSE(sizer.automatic());
  EXPECT_EQ(sizer.next(100), 8u);
  EXPECT_EQ(sizer.next(8), 8u);
  EXPECT_EQ(sizer.next(3), 3u);
  EXPECT_EQ(sizer.next(1), 1u);
  EXPECT_EQ(sizer.next(kUnknown), 8u);
  // No tail-sharing rule: 9 items left with 4 workers still gives the fixed 8.
  EXPECT_EQ(sizer.next(9), 8u);
}

TEST(ChunkSizerTest, FixedSizeIgnoresMeasurements) {
  ChunkSizer sizer(5, 2);
  sizer.record(1000, microseconds(1));  // would make an automatic sizer grow
  EXPECT_EQ(sizer.next(kUnknown), 5u);
  EXPECT_EQ(sizer.next(kPlenty), 5u);
}

TEST(ChunkSizerTest, AutomaticStartsAtOneItemBeforeAnyMeasurement) {
  ChunkSizer sizer(0, 4);
  EXPECT_TRUE(sizer.automatic());
  EXPECT_EQ(sizer.next(kUnknown), 1u);
  EXPECT_EQ(sizer.next(kPlenty), 1u);
  EXPECT_EQ(sizer.next(1), 1u);
}

TEST(ChunkSizerTest, AutomaticGrowsToTheTargetTimeOverTheTimePerItem) {
  const auto target = std::chrono::duration_cast<nanoseconds>(ChunkSizer::kTargetChunkTime);
  // 1 µs per item: a chunk of target / 1 µs items takes the target time.
  EXPECT_EQ(measured_size(microseconds(1)), static_cast<std::size_t>(target / microseconds(1)));
  EXPECT_EQ(measured_size(microseconds(2)), static_cast<std::size_t>(target / microseconds(2)));
  EXPECT_EQ(measured_size(nanoseconds(500)), static_cast<std::size_t>(target / nanoseconds(500)));
  // Faster items, larger chunks.
  EXPECT_GT(measured_size(nanoseconds(100)), measured_size(microseconds(1)));
}

TEST(ChunkSizerTest, AutomaticAveragesEveryMeasurement) {
  ChunkSizer sizer(0, 1);
  sizer.record(100, microseconds(100));  // 1 µs per item
  sizer.record(100, microseconds(300));  // 3 µs per item: 2 µs on average
  const auto target = std::chrono::duration_cast<nanoseconds>(ChunkSizer::kTargetChunkTime);
  EXPECT_EQ(sizer.next(kPlenty), static_cast<std::size_t>(target / microseconds(2)));
}

TEST(ChunkSizerTest, ItemSlowerThanTheTargetGivesChunksOfOne) {
  EXPECT_EQ(measured_size(ChunkSizer::kTargetChunkTime * 10), 1u);
  EXPECT_EQ(measured_size(ChunkSizer::kTargetChunkTime + nanoseconds(1)), 1u);
}

TEST(ChunkSizerTest, AutomaticIsCappedAtTheMaximumChunk) {
  EXPECT_EQ(measured_size(nanoseconds(1)), ChunkSizer::kMaxChunk);
  // Items measured as taking no time at all (a clock too coarse to see them).
  ChunkSizer instant(0, 4);
  instant.record(1000, nanoseconds(0));
  EXPECT_EQ(instant.next(kUnknown), ChunkSizer::kMaxChunk);
  EXPECT_EQ(instant.next(kPlenty), ChunkSizer::kMaxChunk);
}

TEST(ChunkSizerTest, AutomaticLeavesAtLeastTwoChunksPerWorkerOfWhatRemains) {
  for (const std::size_t workers : {1u, 3u, 8u}) {
    ChunkSizer sizer(0, workers);
    sizer.record(1000, nanoseconds(1000));  // 1 µs per item: 200-item chunks when unconstrained
    const std::size_t unconstrained = sizer.next(kPlenty);
    ASSERT_GT(unconstrained, 2 * workers);
    for (const std::size_t remaining : {std::size_t{10'000}, std::size_t{1000}, std::size_t{100},
                                        std::size_t{17}, 2 * workers, std::size_t{2}}) {
      SCOPED_TRACE(std::to_string(workers) + " workers, " + std::to_string(remaining) + " left");
      const std::size_t size = sizer.next(remaining);
      EXPECT_LE(size, unconstrained);
      if (remaining >= 2 * workers) {
        EXPECT_LE(size * 2 * workers, remaining);
        // ... and no smaller than that rule needs.
        EXPECT_EQ(size, std::min(unconstrained, remaining / (2 * workers)));
      } else {
        EXPECT_EQ(size, 1u);
      }
    }
  }
}

TEST(ChunkSizerTest, AutomaticNeverReturnsZeroWhileItemsRemain) {
  const std::vector<nanoseconds> measurements{nanoseconds(0), nanoseconds(1), microseconds(1),
                                              microseconds(1000), std::chrono::seconds(5)};
  for (const std::size_t workers : {0u, 1u, 4u, 64u}) {
    for (const nanoseconds per_item : measurements) {
      ChunkSizer sizer(0, workers);
      sizer.record(10, per_item * 10);
      for (const std::size_t remaining :
           {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{1000}, kPlenty, kUnknown}) {
        const std::size_t size = sizer.next(remaining);
        EXPECT_GE(size, 1u) << workers << " workers, " << per_item.count() << " ns per item, "
                            << remaining << " left";
        EXPECT_LE(size, remaining);
      }
    }
  }
}

TEST(ChunkSizerTest, ZeroWorkersCountsAsOne) {
  ChunkSizer none(0, 0);
  ChunkSizer one(0, 1);
  none.record(1000, microseconds(1000));
  one.record(1000, microseconds(1000));
  for (const std::size_t remaining : {std::size_t{1}, std::size_t{10}, std::size_t{1000}}) {
    EXPECT_EQ(none.next(remaining), one.next(remaining)) << remaining << " left";
  }
}

TEST(ChunkSizerTest, UnknownRemainingIsLimitedOnlyByTheMeasurement) {
  ChunkSizer sizer(0, 64);
  sizer.record(1000, microseconds(1000));
  // With 64 workers, a known remainder of 1000 would give 1000 / 128 = 7 items; an unknown one
  // (a lazy input) does not shrink the chunk.
  EXPECT_EQ(sizer.next(1000), 7u);
  EXPECT_EQ(sizer.next(kUnknown), measured_size(microseconds(1)));
}

}  // namespace
