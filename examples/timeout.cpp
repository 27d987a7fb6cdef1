// From "Concurrent.futures vs Multiprocessing in Python 3": result(timeout) gives up waiting
// with TimeoutError, but the task goes on running. A thread cannot be killed, and the pool's
// destructor (like leaving a `with` block) waits for its tasks, so the task is asked to stop.
#include <chrono>
#include <iostream>
#include <stop_token>
#include <syncstream>
#include <thread>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;
using namespace std::chrono_literals;

void worker_1(std::stop_token stop) {
  while (!stop.stop_requested()) {
    std::osyncstream(std::cout) << "hanging\n";
    std::this_thread::sleep_for(1s);
  }
}

int main() {
  std::stop_source stop;
  {
    cf::ThreadPoolExecutor pool(1);
    cf::Future<void> future = pool.submit(worker_1, stop.get_token());
    try {
      future.result(3s);  // kill task after 3 seconds? No: only the wait ends.
    } catch (const cf::TimeoutError&) {
      std::osyncstream(std::cout) << "timeout\n";
    }
    stop.request_stop();  // without this, the end of this block would wait forever
  }
  std::cout << "return from main()\n";
}
