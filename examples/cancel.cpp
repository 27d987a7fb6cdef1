// From "Concurrent.futures vs Multiprocessing in Python 3": with one worker, cancel() fails for
// the task already running and succeeds for the one still waiting behind it.
#include <chrono>
#include <iostream>
#include <thread>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;
using namespace std::chrono_literals;

void worker1(int i) {
  std::this_thread::sleep_for(3s);
  std::cout << "Done " << i << '\n';
}

void worker2() { std::cout << "Hello\n"; }

int main() {
  cf::ThreadPoolExecutor executor(1);  // max_workers=1
  const auto t = std::chrono::steady_clock::now();
  cf::Future<void> future1 = executor.submit(worker1, 1);
  cf::Future<void> future2 = executor.submit(worker1, 2);
  cf::Future<void> future3 = executor.submit(worker2);
  // The worker thread picks up future1 a moment after submit; the article's process pool had
  // done so by the time it called cancel(). Wait for that so the outcome is the same every time.
  while (!future1.running()) std::this_thread::yield();
  std::cout << std::boolalpha;
  // this will fail since this task is already running:
  std::cout << future1.cancel() << '\n';
  // this will succeed since this task hasn't started (it's waiting for future1 to complete):
  std::cout << future2.cancel() << '\n';
  future3.result();  // wait for completion
  std::cout << std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count() << '\n';
}
