// Where an MPI pool's worker ranks come from, and the worker rank's side of the conversation.
//
// Three sources, as mpi4py.futures has them:
// - static: `mpiexec -n N ./app`. Every rank reaches serve_if_worker (or an MPIPoolExecutor);
//   rank 0 goes on with main, the others serve until rank 0's program ends. They are the world
//   group, set up once (collectively) and lent to one pool at a time.
// - spawned: `mpiexec -n 1 ./app` (or no mpiexec): a pool starts its own workers with
//   MPI_Comm_spawn of this program; they serve that pool alone and leave with it.
// - a communicator: MPICommExecutor(comm, root): the other ranks of comm serve the root's pool
//   inside the executor's constructor until the root's pool ends.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "mpi/link.hpp"
#include "system.hpp"

namespace concurrent::futures::detail::mpi {

// A worker rank as its client knows it.
struct Member {
  int rank = -1;
  Doorbell bell;
  bool dead = false;    // its doorbell closed: it is gone for good
  bool in_use = false;  // lent to a pool (static ranks)
};

// A client's worker ranks over one communicator.
class Ranks {
 public:
  virtual ~Ranks() = default;
  // Called on the pool's dispatcher thread before anything else: makes the ranks ready (spawns
  // them, or takes them from the world group). Throws when it cannot.
  virtual void open() = 0;
  // When the pool is done with them (every worker has left or died).
  virtual void close() noexcept = 0;
  virtual MPI_Comm comm() const noexcept = 0;
  // The members this pool uses, valid between open() and close().
  virtual const std::vector<Member*>& members() const noexcept = 0;
  // Whether a worker leaves its process at the end of the session (spawned ranks).
  virtual bool one_session() const noexcept { return false; }
};

// A client saw a rank of this job die. Under `mpiexec --enable-recovery` the others live on, but
// Open MPI 4.1's MPI_Finalize then waits for the dead rank for ever (seen here): so the client and
// the serving ranks it tells end without MPI_Finalize.
void note_dead_rank() noexcept;

// MPI is initialized (with MPI_THREAD_MULTIPLE: pools call MPI from their own threads) and, if
// this library initialized it, is finalized at exit. Throws when the MPI library gives less.
void initialize(int* argc, char*** argv);
int world_size();
int world_rank();

// Static ranks and spawned workers: on every rank but the client, serves and ends the process
// (never returns). On the client (rank 0 of a world of several, or the only rank) returns.
// Collective over MPI_COMM_WORLD the first time in a world of several ranks.
void serve_or_return(int* argc, char*** argv);

// `count` of the static ranks (all free ones when 0); throws std::invalid_argument when there
// are not so many free. Nullptr when the world has one rank (a pool spawns its workers).
std::unique_ptr<Ranks> lease_static(std::size_t count);
// `count` workers spawned from this program when the pool opens.
std::unique_ptr<Ranks> spawn(std::size_t count);

// The ranks of a communicator given to MPICommExecutor, set up collectively by every rank of
// `comm`. On the root: the ranks the pool will use. Elsewhere: serves the root's pool and
// returns nullptr when it has ended.
std::unique_ptr<Ranks> comm_ranks(MPI_Comm comm, int root);

}  // namespace concurrent::futures::detail::mpi
