// From "Concurrent.futures vs Multiprocessing in Python 3": take results as they complete with
// as_completed, and tie each one back to its input with a dict of future -> argument.
#include <iostream>
#include <unordered_map>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

int worker_process(int i) {
  return i * i;  // square the argument
}

int main() {
  cf::ThreadPoolExecutor executor;

  // futures = [executor.submit(worker_process, i) for i in range(10)]
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(executor.submit(worker_process, i));
  for (cf::Future<int> future : cf::as_completed(futures)) {
    std::cout << future.result() << '\n';
  }

  // futures = {executor.submit(worker_process, i): i for i in range(10)}. Futures hash and
  // compare by identity, like Python objects, so they can be keys.
  std::unordered_map<cf::Future<int>, int> future_to_i;
  for (int i = 0; i < 10; ++i) future_to_i.emplace(executor.submit(worker_process, i), i);
  // As with the dict in Python, as_completed takes the map and waits on its keys.
  for (cf::Future<int> future : cf::as_completed(future_to_i)) {
    const int i = future_to_i.at(future);  // retrieve the value that was squared
    std::cout << i << ' ' << future.result() << '\n';
  }
}
