// From "Concurrent.futures vs Multiprocessing in Python 3": get each result as soon as it is
// ready through a done-callback instead of waiting on the futures one by one.
#include <iostream>
#include <syncstream>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

int worker_process(int i) {
  return i * i;  // square the argument
}

// Runs in the worker thread that finished the future (or in main, if it was already done when
// the callback was added), so the line is written whole with an osyncstream.
void process_result(const cf::Future<int>& future) {
  std::osyncstream(std::cout) << future.result() << '\n';
}

int main() {
  cf::ThreadPoolExecutor executor;
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(executor.submit(worker_process, i));
  for (const cf::Future<int>& future : futures) future.add_done_callback(process_result);
  executor.shutdown();  // waits for the tasks, and so for their callbacks
}
