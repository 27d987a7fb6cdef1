// Per-task timeouts that really stop the task. In "Concurrent.futures vs Multiprocessing",
// future.result(3) only stops *waiting*: the runaway task keeps its thread forever. A process
// pool's task_timeout kills the worker running it, replaces the worker, and fails only that
// future with TimeoutError.
#include <chrono>
#include <iostream>
#include <thread>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;
using namespace std::chrono_literals;

int worker(int seconds) {
  std::this_thread::sleep_for(std::chrono::seconds(seconds));  // seconds = 1000: a hung task
  return seconds;
}

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  cf::ProcessPoolExecutor pool({.max_workers = 2, .task_timeout = 2s});
  cf::Future<int> hung = pool.submit(worker, 1000);
  cf::Future<int> quick = pool.submit(worker, 1);
  std::cout << "quick task returned " << quick.result() << '\n';
  try {
    hung.result();
  } catch (const cf::TimeoutError& e) {
    std::cout << "timeout: " << e.what() << '\n';
  }
  std::cout << "the pool goes on: " << pool.submit(worker, 0).result() << '\n';
}
