// cf::MPICommExecutor (docs/reference.md §4.3): an executor over the ranks of an existing
// communicator, inside a program that manages MPI itself. Every rank runs every test: the
// constructor is collective; on the root it is a pool, elsewhere it serves the root's pool and
// returns when that pool has shut down. CTest runs it with `mpiexec -n 3` and `-n 5`.
#include <mpi.h>
#include <unistd.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>
#include <concurrent/futures/mpi.hpp>

#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
using ::testing::HasSubstr;

int rank_in(MPI_Comm comm) {
  int rank = -1;
  MPI_Comm_rank(comm, &rank);
  return rank;
}
int size_of(MPI_Comm comm) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  return size;
}

int world_rank_of_worker() { return rank_in(MPI_COMM_WORLD); }
int twice(int x) { return 2 * x; }
int boom(int) { throw std::invalid_argument("boom on a worker"); }

TEST(MPIComm, TheRootGetsAPoolOverTheOtherRanks) {
  cf::MPICommExecutor ex(MPI_COMM_WORLD, 0);
  if (rank_in(MPI_COMM_WORLD) != 0) {
    EXPECT_FALSE(ex.is_root());
    EXPECT_THROW(ex.submit(twice, 1), cf::ShutdownError);
    return;
  }
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex.max_workers(), static_cast<std::size_t>(size_of(MPI_COMM_WORLD) - 1));
  std::set<int> ranks;
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(ex.submit(world_rank_of_worker));
  for (auto& f : fs) ranks.insert(f.result(kDeadlock));
  EXPECT_EQ(ranks.count(0), 0u);
  std::vector<int> out;
  for (int v : ex.map(twice, std::vector<int>{1, 2, 3}, cf::MapOptions{.chunksize = 2})) {
    out.push_back(v);
  }
  EXPECT_EQ(out, (std::vector<int>{2, 4, 6}));
  try {
    ex.submit(boom, 1).result(kDeadlock);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("boom on a worker"));
  }
}

TEST(MPIComm, AnyRankCanBeTheRoot) {
  const int root = size_of(MPI_COMM_WORLD) - 1;
  cf::MPICommExecutor ex(MPI_COMM_WORLD, root);
  if (!ex) return;
  EXPECT_EQ(rank_in(MPI_COMM_WORLD), root);
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(ex.submit(world_rank_of_worker));
  for (auto& f : fs) EXPECT_NE(f.result(kDeadlock), root);
}

TEST(MPIComm, ASubCommunicatorServesOnlyItsOwnRanks) {
  // Even and odd world ranks make two communicators, each with a pool of its own at once.
  MPI_Comm half = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank_in(MPI_COMM_WORLD) % 2, 0, &half);
  if (size_of(half) >= 2) {
    cf::MPICommExecutor ex(half, 0);
    if (ex) {
      for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(ex.submit(world_rank_of_worker).result(kDeadlock) % 2,
                  rank_in(MPI_COMM_WORLD) % 2);
      }
    }
  }
  MPI_Comm_free(&half);
}

TEST(MPIComm, ARootOutsideTheCommunicatorIsAnError) {
  EXPECT_THROW(cf::MPICommExecutor(MPI_COMM_WORLD, size_of(MPI_COMM_WORLD)), std::invalid_argument);
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  if (rank_in(MPI_COMM_WORLD) != 0) {
    // One report, from rank 0; the others' failures still count in their exit status.
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  MPI_Finalize();
  return failed;
}
