// C++20 coroutines on cfutures (docs/reference.md §5): `co_await` a Future, move between executors
// with cf::resume_on, and write the coroutine itself as a function returning cf::Future<T>.
//
// make_report reads two files on the I/O pool and analyses them on the CPU pool. While it waits
// it holds no thread: a hundred reports in flight need no more threads than the two pools have.
// Errors are plain exceptions: a failed read is caught with try/catch inside the coroutine.
#include <chrono>
#include <cstddef>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;
using namespace std::chrono_literals;

// Stand-ins for slow I/O and for CPU work.
std::string read_file(const std::string& name) {
  std::this_thread::sleep_for(5ms);
  if (name.find("missing") != std::string::npos) throw std::runtime_error("no such file: " + name);
  return "contents of " + name;
}

std::size_t checksum(const std::string& text) {
  std::size_t h = 1469598103934665603u;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211u;
  return h % 100000;
}

struct Report {
  std::string name;
  std::size_t sum = 0;
  std::string note;
};

// A coroutine: the call returns a running Future<Report> at once. Parameters by value: the
// coroutine outlives the caller's arguments.
cf::Future<Report> make_report(cf::Executor& io, cf::Executor& cpu, std::string name) {
  Report report{name, 0, "ok"};
  // Both reads start now; co_await suspends until each is done, resuming on the I/O worker
  // that finished it.
  cf::Future<std::string> data = io.submit(read_file, name + ".dat");
  cf::Future<std::string> meta = io.submit(read_file, name + ".meta");
  std::string text;
  try {
    text = co_await data;
  } catch (const std::runtime_error& e) {
    report.note = e.what();
    co_return report;
  }
  text += co_await meta;
  // The analysis belongs on the CPU pool, not on an I/O thread.
  co_await cf::resume_on(cpu);
  report.sum = checksum(text);
  co_return report;
}

// Coroutines compose with each other and with when_all.
cf::Future<std::size_t> total_of(cf::Executor& io, cf::Executor& cpu,
                                 std::vector<std::string> names) {
  std::vector<cf::Future<Report>> reports;
  for (const std::string& name : names) reports.push_back(make_report(io, cpu, name));
  std::size_t total = 0;
  for (const Report& r : co_await cf::when_all(reports)) total += r.sum;
  co_return total;
}

int main() {
  cf::ThreadPoolExecutor io({.max_workers = 4, .thread_name_prefix = "io"});
  cf::ThreadPoolExecutor cpu({.max_workers = 2, .thread_name_prefix = "cpu"});

  for (const char* name : {"alpha", "beta", "missing"}) {
    const Report r = make_report(io, cpu, name).result();  // main blocks here, the coroutine never
    std::cout << r.name << ": checksum " << r.sum << " (" << r.note << ")\n";
  }

  std::vector<std::string> many;
  for (int i = 0; i < 100; ++i) many.push_back("file" + std::to_string(i));
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t total = total_of(io, cpu, many).result();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::cout << "100 reports on " << io.max_workers() + cpu.max_workers()
            << " threads: total checksum " << total << " in " << ms.count() << " ms\n";
}
