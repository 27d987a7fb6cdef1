// A program that initializes and finalizes MPI itself and uses static ranks: the serving ranks
// must be released when it calls MPI_Finalize, so that mpiexec ends, with status 0 (CTest:
// mpi.own_init, under `mpiexec -n 3`).
#include <mpi.h>

#include <cstdio>

#include <concurrent/futures.hpp>
#include <concurrent/futures/mpi.hpp>

namespace cf = concurrent::futures;

int triple(int x) { return 3 * x; }

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  cf::mpi::serve_if_worker(argc, argv);  // ranks 1 and 2 serve here, then end
  int sum = 0;
  {
    cf::MPIPoolExecutor ex;
    for (int v : ex.map(triple, std::vector<int>{1, 2, 3})) sum += v;
  }
  MPI_Finalize();
  if (sum != 18) {
    std::fprintf(stderr, "wrong sum %d\n", sum);
    return 1;
  }
  std::puts("own MPI_Init and MPI_Finalize: ranks released, sum 18");
  return 0;
}
