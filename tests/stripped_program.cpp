// Function pointers sent to a ProcessPoolExecutor by a program that was stripped after linking
// (docs/reference.md §4.2, "What may cross into a worker"). tests/CMakeLists.txt builds this
// program, makes a stripped copy, and runs both with each start method:
//
//   stripped_program <fork|forkserver|spawn> [--stripped]
//
// It sends a free function, a function of an anonymous namespace (which has no dynamic symbol
// even in an unstripped program), functions of libc and libm, an initializer, and a map. A
// function compiled without unwind tables (no_unwind_function.hpp) travels by symbol name, so it
// runs when the program is not stripped and fails with SerializationError, never a crash, when it
// is. With --stripped the program first checks that its own file has no symbol table, so the
// test cannot pass on a copy that strip left whole. Prints one line per check; exits 0 when all
// passed.
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <concurrent/futures.hpp>

#include "no_unwind_function.hpp"

namespace cf = concurrent::futures;

namespace stripped_test {

int add_seven(int x) { return x + 7; }

}  // namespace stripped_test

namespace {

constexpr auto kDeadlock = std::chrono::seconds(60);

int initialized_value = 0;  // set in each worker by the pool's initializer

void initialize() { initialized_value = 1234; }

int read_initialized_value() { return initialized_value; }

std::string label(int x) { return "item " + std::to_string(x); }

int failures = 0;

void report(bool ok, const std::string& what, const std::string& detail = "") {
  std::printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
  if (!ok) ++failures;
}

template <class T>
void expect_value(const std::string& what, const cf::Future<T>& future, const T& expected) {
  try {
    const T value = future.result(kDeadlock);
    report(value == expected, what);
  } catch (const std::exception& e) {
    report(false, what, e.what());
  }
}

// The future fails with SerializationError.
template <class T>
void expect_serialization_error(const std::string& what, const cf::Future<T>& future) {
  try {
    future.result(kDeadlock);
    report(false, what, "it ran");
  } catch (const cf::SerializationError& e) {
    report(true, what, e.what());
  } catch (const std::exception& e) {
    report(false, what, std::string("another error: ") + e.what());
  }
}

// True if the file of the running program has a .symtab section.
bool has_symbol_table() {
  const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  bool found = false;
  Elf64_Ehdr header{};
  if (pread(fd, &header, sizeof header, 0) == static_cast<ssize_t>(sizeof header)) {
    for (unsigned i = 0; i < header.e_shnum && !found; ++i) {
      Elf64_Shdr section{};
      const auto at = static_cast<off_t>(header.e_shoff + i * sizeof section);
      if (pread(fd, &section, sizeof section, at) != static_cast<ssize_t>(sizeof section)) break;
      found = section.sh_type == SHT_SYMTAB;
    }
  }
  close(fd);
  return found;
}

bool parse_method(const char* name, cf::StartMethod& method) {
  if (std::strcmp(name, "fork") == 0) {
    method = cf::StartMethod::fork;
  } else if (std::strcmp(name, "forkserver") == 0) {
    method = cf::StartMethod::forkserver;
  } else if (std::strcmp(name, "spawn") == 0) {
    method = cf::StartMethod::spawn;
  } else {
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  cf::StartMethod method{};
  if (argc < 2 || !parse_method(argv[1], method)) {
    std::fprintf(stderr, "usage: %s <fork|forkserver|spawn> [--stripped]\n", argv[0]);
    return 2;
  }
  const bool stripped = argc > 2 && std::strcmp(argv[2], "--stripped") == 0;
  if (stripped && has_symbol_table()) {
    std::printf("FAIL this program was to be stripped, but it has a symbol table\n");
    return 1;
  }

  {
    cf::ProcessPoolExecutor ex(
        {.max_workers = 2, .start_method = method, .initializer = &initialize});
    expect_value("a free function", ex.submit(&stripped_test::add_seven, 35), 42);
    expect_value("a function of an anonymous namespace", ex.submit(&label, 5),
                 std::string("item 5"));
    expect_value("the initializer ran in the worker", ex.submit(&read_initialized_value), 1234);

    int (*const libc_abs)(int) = &::abs;
    double (*const libm_cbrt)(double) = &::cbrt;
    expect_value("a libc function (abs)", ex.submit(libc_abs, -17), 17);
    try {
      const double root = ex.submit(libm_cbrt, 27.0).result(kDeadlock);
      report(std::fabs(root - 3.0) < 1e-12, "a libm function (cbrt)", std::to_string(root));
    } catch (const std::exception& e) {
      report(false, "a libm function (cbrt)", e.what());
    }

    std::vector<int> items{1, 2, 3, 4, 5, 6, 7, 8};
    std::vector<int> mapped;
    try {
      for (int r : ex.map(&stripped_test::add_seven, items, cf::MapOptions{.chunksize = 3})) {
        mapped.push_back(r);
      }
      report(mapped == std::vector<int>{8, 9, 10, 11, 12, 13, 14, 15}, "a map");
    } catch (const std::exception& e) {
      report(false, "a map", e.what());
    }

    // Never run: the parent finds no function starting there.
    const auto start = reinterpret_cast<std::uintptr_t>(&stripped_test::add_seven);
    const auto inside = reinterpret_cast<int (*)(int)>(start + 1);
    expect_serialization_error("a pointer into a function is refused", ex.submit(inside, 1));

    if (stripped) {
      expect_serialization_error("a function without unwind entry, in a stripped program",
                                 ex.submit(&no_unwind::triple, 5));
    } else {
      expect_value("a function without unwind entry travels by name",
                   ex.submit(&no_unwind::triple, 5), 15);
    }
    expect_value("the pool goes on", ex.submit(&stripped_test::add_seven, 1), 8);
  }
  std::printf("%s\n", failures == 0 ? "all passed" : "some checks failed");
  return failures == 0 ? 0 : 1;
}
