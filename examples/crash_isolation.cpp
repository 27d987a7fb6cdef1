// Crash isolation: a task that crashes takes down its worker process, not the program. With the
// default policy (CPython's) the pool is then broken and says why; with replace_worker only that
// task fails and a fresh worker carries on.
#include <csignal>
#include <iostream>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

int risky(int n) {
  if (n == 3) std::raise(SIGSEGV);  // stands for a bug in a native library
  return n * n;
}

void run(cf::CrashPolicy policy, const char* name) {
  std::cout << name << ":\n";
  cf::ProcessPoolExecutor pool({.max_workers = 2, .on_worker_crash = policy});
  std::vector<cf::Future<int>> futures;
  for (int n = 0; n < 6; ++n) futures.push_back(pool.submit(risky, n));
  for (int n = 0; n < 6; ++n) {
    try {
      const int value = futures[n].result();
      std::cout << "  risky(" << n << ") = " << value << '\n';
    } catch (const cf::BrokenProcessPool& e) {
      std::cout << "  risky(" << n << ") failed: " << e.what() << '\n';
    }
  }
}

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  run(cf::CrashPolicy::replace_worker, "replace_worker");
  run(cf::CrashPolicy::break_pool, "break_pool (the default)");
  std::cout << "the program itself is still running\n";
}
