// detail::task_memory (detail/task_memory.hpp): the blocks that submitted tasks live in. Reuse in
// the thread that freed them, the depot between threads, decay back to malloc, fork safety, and
// that submit uses it. Under AddressSanitizer the pool is off (blocks go straight to malloc) and
// these tests are skipped.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures/detail/task_memory.hpp>

#include "scenario_process.hpp"
#include "test_util.hpp"

namespace {

namespace tm = concurrent::futures::detail::task_memory;

constexpr std::size_t kBytes = 144;  // a submitted trivial task's size class (129..192)
constexpr std::size_t kClassBytes = 192;

class TaskMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tm::pooled()) GTEST_SKIP() << "the pool is off under AddressSanitizer";
    tm::trim();
  }
  void TearDown() override { tm::trim(); }
};

std::vector<void*> allocate_n(std::size_t n, std::size_t bytes = kBytes) {
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < n; ++i) blocks.push_back(tm::allocate(bytes));
  return blocks;
}

void free_all(const std::vector<void*>& blocks, std::size_t bytes = kBytes) {
  for (void* block : blocks) tm::deallocate(block, bytes);
}

TEST_F(TaskMemoryTest, FreedBlocksAreReusedByTheThreadThatFreedThem) {
  const std::vector<void*> first = allocate_n(100);
  free_all(first);
  EXPECT_EQ(tm::stats().cache_bytes, 100 * kClassBytes);
  const std::vector<void*> second = allocate_n(100);
  EXPECT_EQ(std::set<void*>(first.begin(), first.end()),
            std::set<void*>(second.begin(), second.end()));
  EXPECT_EQ(tm::stats().cache_bytes, 0u);
  free_all(second);
}

TEST_F(TaskMemoryTest, AThreadKeepsAtMostTwoChainsAndTheRestGoesToTheDepot) {
  const std::vector<void*> blocks = allocate_n(5 * tm::kChain);
  free_all(blocks);
  const tm::Stats s = tm::stats();
  EXPECT_LE(s.cache_bytes, 2 * tm::kChain * kClassBytes);
  EXPECT_EQ(s.cache_bytes + s.depot_bytes, 5 * tm::kChain * kClassBytes);
}

TEST_F(TaskMemoryTest, BlocksFreedInAnotherThreadComeBackThroughTheDepot) {
  const std::vector<void*> blocks = allocate_n(3 * tm::kChain);
  std::thread([&] { free_all(blocks); }).join();  // its cache goes to the depot as it ends
  EXPECT_EQ(tm::stats().depot_bytes, 3 * tm::kChain * kClassBytes);
  const std::vector<void*> again = allocate_n(3 * tm::kChain);
  EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()),
            std::set<void*>(again.begin(), again.end()));
  EXPECT_EQ(tm::stats().depot_bytes, 0u);
  free_all(again);
}

TEST_F(TaskMemoryTest, TrimFreesTheDepotAndTheCallersCache) {
  const std::vector<void*> blocks = allocate_n(5 * tm::kChain);
  free_all(blocks);
  ASSERT_GT(tm::stats().depot_bytes, 0u);
  tm::trim();
  EXPECT_EQ(tm::stats().depot_bytes, 0u);
  EXPECT_EQ(tm::stats().cache_bytes, 0u);
}

// At the depot's first use after a decay period ended, each class gives back as many of its
// oldest chains as it held unused throughout the period; what was taken during it is kept.
TEST_F(TaskMemoryTest, MemoryUnusedForAWholeDecayPeriodIsFreed) {
  const std::vector<void*> blocks = allocate_n(6 * tm::kChain);
  std::thread([&] { free_all(blocks); }).join();  // 6 chains in the depot
  ASSERT_EQ(tm::stats().depot_bytes, 6 * tm::kChain * kClassBytes);

  // Period 1 began with an empty depot (trim in SetUp), so its least was 0 and nothing is freed
  // when it ends, at this take, which starts period 2 with the 5 chains left.
  tm::end_decay_period();
  const std::vector<void*> taken = allocate_n(tm::kChain);
  EXPECT_EQ(tm::stats().depot_bytes, 5 * tm::kChain * kClassBytes);

  // In period 2 one chain is taken during it and one as it ends: the least was 3 chains, all
  // the depot has left then, and they are freed.
  const std::vector<void*> more = allocate_n(tm::kChain);
  EXPECT_EQ(tm::stats().depot_bytes, 4 * tm::kChain * kClassBytes);
  tm::end_decay_period();
  const std::vector<void*> last = allocate_n(tm::kChain);
  EXPECT_EQ(tm::stats().depot_bytes, 0u);

  free_all(taken);
  free_all(more);
  free_all(last);
}

// Decay counts each class on its own: a class in use keeps its chains while an idle one's go.
TEST_F(TaskMemoryTest, DecayFreesAnIdleClassAndKeepsTheOneInUse) {
  constexpr std::size_t kSmall = 40;  // the 64-byte class
  constexpr std::size_t kSmallClass = 64;
  const std::vector<void*> small = allocate_n(3 * tm::kChain, kSmall);
  const std::vector<void*> big = allocate_n(3 * tm::kChain);
  std::thread([&] {
    free_all(small, kSmall);
    free_all(big);
  }).join();
  ASSERT_EQ(tm::stats().depot_bytes, 3 * tm::kChain * (kSmallClass + kClassBytes));

  // Period 1 ends at the first take (nothing freed); in period 2 the small class is all taken
  // and given back, the 192-byte class is left alone.
  tm::end_decay_period();
  const std::vector<void*> cycled = allocate_n(3 * tm::kChain, kSmall);
  std::thread([&] { free_all(cycled, kSmall); }).join();
  ASSERT_EQ(tm::stats().depot_bytes, 3 * tm::kChain * (kSmallClass + kClassBytes));

  tm::end_decay_period();
  void* one = tm::allocate(kSmall);  // takes a small chain and ends period 2
  EXPECT_EQ(tm::stats().depot_bytes, 2 * tm::kChain * kSmallClass)
      << "the idle class should be freed whole, the class in use kept";
  tm::deallocate(one, kSmall);
}

// Decay frees a class's oldest chains and keeps the ones given back most recently (the warm ones).
TEST_F(TaskMemoryTest, DecayKeepsTheChainsGivenBackLast) {
  const std::vector<void*> blocks = allocate_n(3 * tm::kChain);
  std::thread([&] { free_all(blocks); }).join();  // 3 chains

  tm::end_decay_period();
  const std::vector<void*> taken = allocate_n(tm::kChain);  // ends period 1; 2 chains left
  std::thread([&] { free_all(taken); }).join();             // back, newest: 3 chains again

  tm::end_decay_period();
  void* other = tm::allocate(40);  // another class: the depot is used, period 2 ends
  // The class held 2 chains unused throughout period 2: the 2 oldest are freed.
  EXPECT_EQ(tm::stats().depot_bytes, tm::kChain * kClassBytes);
  const std::vector<void*> again = allocate_n(tm::kChain);
  EXPECT_EQ(std::set<void*>(again.begin(), again.end()),
            std::set<void*>(taken.begin(), taken.end()))
      << "the chain kept is not the one given back last";
  tm::deallocate(other, 40);
  free_all(again);
}

// A child forked while another thread is inside the depot must still be able to use it (the
// depot's lock is taken around fork).
TEST_F(TaskMemoryTest, AForkedChildCanUseTheDepotWhileAnotherThreadWasUsingIt) {
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load()) free_all(allocate_n(4 * tm::kChain));
  });
  for (int i = 0; i < 200; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      free_all(allocate_n(4 * tm::kChain));
      tm::trim();
      _exit(0);
    }
    const std::optional<int> status = scenario::wait_child_for(pid, std::chrono::seconds(20));
    if (!status) {
      scenario::kill_child(pid);
      stop = true;
      churn.join();
      FAIL() << "child " << i << " did not finish within 20 s (deadlocked in the depot?)";
    }
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "child " << i;
  }
  stop = true;
  churn.join();
}

int trivial(int i) { return i + 1; }

TEST_F(TaskMemoryTest, SubmittedTasksLiveInIt) {
  cf::ThreadPoolExecutor pool(2);
  constexpr int kTasks = 2000;
  {
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < kTasks; ++i) futures.push_back(pool.submit(trivial, i));
    for (int i = 0; i < kTasks; ++i) ASSERT_EQ(futures[i].result(), i + 1);
  }
  // Every task's block came back (a few may still sit in the workers' caches, if a worker dropped
  // a task's last reference; here the futures held them, and they were dropped in this thread).
  const tm::Stats s = tm::stats();
  EXPECT_GE(s.cache_bytes + s.depot_bytes, kTasks * 128u);
}

TEST_F(TaskMemoryTest, ThePoolsShutdownGivesTheMemoryBack) {
  {
    cf::ThreadPoolExecutor pool(2);
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < 2000; ++i) futures.push_back(pool.submit(trivial, i));
    for (auto& f : futures) f.result();
    futures.clear();
    ASSERT_GT(tm::stats().depot_bytes + tm::stats().cache_bytes, 0u);
  }
  EXPECT_EQ(tm::stats().depot_bytes, 0u);
  EXPECT_EQ(tm::stats().cache_bytes, 0u);
}

}  // namespace
