// Two one-second waits, first one after the other, then on a thread pool: the first experiment of
// "Pythonのconcurrent.futuresを試す" (wait.py). submit() schedules a call and returns its future;
// result() blocks until it is done.
#include <chrono>
#include <iostream>
#include <thread>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;
using namespace std::chrono_literals;

// Python's wait(). Named otherwise so it cannot collide with POSIX wait().
void wait_one_second() { std::this_thread::sleep_for(1s); }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int main() {
  auto start = std::chrono::steady_clock::now();
  wait_one_second();
  wait_one_second();
  std::cout << "Single:       elapsed time = " << seconds_since(start) << '\n';

  start = std::chrono::steady_clock::now();
  {
    // The block plays `with futures.ThreadPoolExecutor() as executor:` - the destructor waits
    // for the work and joins the threads, like __exit__.
    cf::ThreadPoolExecutor executor;
    cf::Future<void> f1 = executor.submit(wait_one_second);
    cf::Future<void> f2 = executor.submit(wait_one_second);
    f1.result();
    f2.result();
  }
  std::cout << "Multi-thread: elapsed time = " << seconds_since(start) << '\n';
}
