/// @file
/// `cf::MPIPoolExecutor` and `cf::MPICommExecutor`: the executor interface across MPI ranks and
/// hosts (Python's mpi4py.futures), in the component `cfutures::mpi`.
///
/// Three ways to get workers, as in mpi4py.futures:
/// - **Static ranks**: `mpiexec -n N ./app`. Call `cf::mpi::serve_if_worker(argc, argv)` first in
///   main: ranks 1..N-1 serve there until rank 0's program ends, rank 0 goes on, and
///   `cf::MPIPoolExecutor ex;` uses the N-1 others (`max_workers()` = N-1). A later pool reuses
///   them; two pools at once share them out.
/// - **Spawned workers**: in a program started alone (`./app` or `mpiexec -n 1 ./app`),
///   `cf::MPIPoolExecutor ex(4);` starts 4 workers with `MPI_Comm_spawn` of the same program,
///   which must call `cf::mpi::serve_if_worker` first in main; they leave with the pool.
/// - **Inside an MPI program**: `cf::MPICommExecutor ex(comm, root);` is collective over `comm`.
///   On the root it returns an executor over the other ranks; on every other rank it serves the
///   root's pool and returns when the root's pool has shut down (then `ex.is_root()` is false
///   and the object is shut down).
///
/// Everything else is as on a ProcessPoolExecutor: submit, map (chunksize, buffersize),
/// map_unordered, starmap, then(executor, fn), shutdown; the same compile-time rule for what may
/// cross (transportable.hpp); exceptions cross as they cross processes (exception_transport.hpp).
/// A rank runs one task at a time; a pool hands each a few tasks ahead while tasks are short.
/// Unlike processes, a rank cannot give back tasks it has not started: those wait behind a task
/// that turns out long, and cancel() cannot reach them.
///
/// Idle costs nothing: a waiting rank (worker or client) probes MPI for 100 us after its last
/// message, then says so and sleeps in poll() on a TCP connection to its client (its doorbell),
/// which a sender rings when it sends to a sleeper; busy ranks never ring. The same connection
/// tells the client that a worker's process ended.
///
/// Failures: a task's exception fails its future. By default Open MPI ends the whole job when
/// any rank dies (the client too). Run `mpiexec --enable-recovery` to keep the client alive: then
/// the pool breaks, and every unfinished future and later submit fails with BrokenExecutor. A rank
/// cannot be restarted or killed, so there is no task_timeout or replace_worker here.
///
/// MPI is initialized with MPI_THREAD_MULTIPLE by the first call of this component unless the
/// program did it (then it must have asked for MPI_THREAD_MULTIPLE), and finalized at exit if
/// cfutures initialized it. Static ranks are told to finish at exit, or in the program's own
/// MPI_Finalize, so `mpiexec` exits 0. Several hosts: see docs/mpi.md.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "concurrent/futures/executor.hpp"
#include "concurrent/futures/remote_executor.hpp"

namespace concurrent::futures {

/// The options of an MPIPoolExecutor.
struct MPIPoolOptions {
  /// Static ranks: how many of the free worker ranks to use (all when unset; more than are free
  /// is std::invalid_argument). Spawned: how many to spawn (the usable CPUs when unset).
  std::optional<std::size_t> max_workers = std::nullopt;
  /// Runs in each worker before its first task; if it throws, the pool breaks.
  void (*initializer)() = nullptr;
};

/// Runs C++ functions on MPI worker ranks, Python's mpi4py.futures.MPIPoolExecutor (see the file
/// comment).
class MPIPoolExecutor : public RemoteExecutor {
 public:
  MPIPoolExecutor();
  explicit MPIPoolExecutor(std::size_t max_workers);
  explicit MPIPoolExecutor(MPIPoolOptions options);
  /// shutdown(wait=true).
  ~MPIPoolExecutor() override;

  /// See Executor::shutdown: pending work runs, then every worker rank leaves the pool (static
  /// ranks wait for the next pool, spawned ones end).
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  std::size_t max_workers() const override;
  /// The ranks of the workers in their communicator (for tests and monitoring).
  std::vector<int> worker_ranks() const;

 protected:
  struct OverComm {};
  MPIPoolExecutor(MPI_Comm comm, int root, OverComm);

  void schedule(detail::TaskPtr task) override;
  void check_open() const override;
  void schedule_remote(detail::RemoteCallPtr call, detail::codec::Buffer request) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

/// An executor over the ranks of an existing communicator, mpi4py's MPICommExecutor. Collective
/// over `comm`: on `root` it is a pool whose workers are the other ranks; on the others the
/// constructor serves that pool and returns when it has shut down.
class MPICommExecutor : public MPIPoolExecutor {
 public:
  explicit MPICommExecutor(MPI_Comm comm = MPI_COMM_WORLD, int root = 0);
  /// Whether this rank holds the pool (the root); elsewhere the executor is shut down.
  bool is_root() const noexcept { return root_; }
  explicit operator bool() const noexcept { return root_; }

 private:
  bool root_ = false;
};

namespace mpi {

/// First line of main in programs that use MPIPoolExecutor: on a worker rank (a static rank
/// other than 0, or a spawned worker) serves tasks and ends the process; returns on the client.
/// Initializes MPI if the program has not.
void serve_if_worker(int argc, char** argv);

}  // namespace mpi

}  // namespace concurrent::futures
