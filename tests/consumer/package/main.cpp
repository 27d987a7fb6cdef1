// Built against the Debian package (find_package and pkg-config): one task on a thread pool and
// one in a worker process, each with a bounded wait.
#include <chrono>
#include <iostream>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

namespace {

int square(int x) { return x * x; }

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  constexpr std::chrono::seconds kTimeout{60};
  cf::ThreadPoolExecutor threads(2);
  cf::ProcessPoolExecutor processes(1);
  int on_thread = threads.submit(square, 6).result(kTimeout);
  int in_process = processes.submit(square, 7).result(kTimeout);
  std::cout << "thread pool: " << on_thread << ", process pool: " << in_process << '\n';
  return on_thread == 36 && in_process == 49 ? 0 : 1;
}
