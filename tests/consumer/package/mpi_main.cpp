// Built against the Debian package's MPI component and run under `mpiexec -n 2`: rank 1 serves,
// rank 0 runs one task there with a bounded wait.
#include <chrono>
#include <iostream>

#include <concurrent/futures.hpp>
#include <concurrent/futures/mpi.hpp>

namespace cf = concurrent::futures;

namespace {

int square(int x) { return x * x; }

}  // namespace

int main(int argc, char** argv) {
  cf::mpi::serve_if_worker(argc, argv);
  int result = 0;
  {
    cf::MPIPoolExecutor executor;
    result = executor.submit(square, 8).result(std::chrono::seconds(60));
  }
  std::cout << "MPI pool: " << result << '\n';
  return result == 64 ? 0 : 1;
}
