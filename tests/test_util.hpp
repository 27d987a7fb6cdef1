// Shared helpers for the test suite: CPython's canned futures, bounded waits, and an error
// handler capture. Every wait in a test is bounded (kDeadlock) so a deadlock fails the test
// instead of hanging the suite.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_set>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "concurrent/futures.hpp"

namespace cf = concurrent::futures;
using namespace std::chrono_literals;

// Built with a sanitizer: some categories cannot run there (see each GTEST_SKIP).
#if defined(__SANITIZE_THREAD__)
#define CFTEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CFTEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CFTEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CFTEST_ASAN 1
#endif
#endif

namespace cftest {

// Long enough never to fire on a loaded 2-core CI machine, short enough to fail a deadlock.
inline constexpr auto kDeadlock = 30s;

#if defined(CFTEST_TSAN)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif
#if defined(CFTEST_ASAN)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif

// GCC 12's AddressSanitizer runtime (libasan.so.8) has no fork handlers: it does not take its
// allocator's locks around fork(), so a child forked while another thread is inside malloc or
// free can deadlock at its own next allocation (TSan's runtime does take them). The pool's fork
// start method forks from its dispatcher thread while the test's thread submits; a CI run under
// ASan hung in a fork test (and in no other build), which this explains. Under ASan the fork
// method is therefore not tested; forkserver (whose server is single-threaded) and spawn are, and
// fork is tested in the release and TSan runs.
inline constexpr bool kForkUnsafeRuntime = kAsan;

// An endless range 0, 1, 2, ... (itertools.count). <ranges>' views::iota would do, but Clang 14
// cannot compile libstdc++ 12's <ranges>, and the suite must build with both compilers.
// `reads` (optional) counts the elements read, to check how much input map consumed.
class Count {
 public:
  explicit Count(long start = 0, std::atomic<long>* reads = nullptr)
      : start_(start), reads_(reads) {}
  struct Sentinel {};
  class Iterator {
   public:
    using value_type = long;
    using difference_type = std::ptrdiff_t;
    Iterator(long v, std::atomic<long>* reads) : v_(v), reads_(reads) {}
    long operator*() const {
      if (reads_ != nullptr) reads_->fetch_add(1);
      return v_;
    }
    Iterator& operator++() {
      ++v_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++v_;
      return old;
    }
    friend bool operator==(const Iterator&, Sentinel) { return false; }

   private:
    long v_;
    std::atomic<long>* reads_;
  };
  Iterator begin() const { return Iterator(start_, reads_); }
  Sentinel end() const { return {}; }

 private:
  long start_;
  std::atomic<long>* reads_;
};

// f(begin), f(begin + 1), ..., f(end - 1), computed as they are read (views::iota |
// views::transform, which Clang 14 cannot compile with libstdc++ 12).
template <class F>
class Generated {
 public:
  Generated(int begin, int end, F f) : begin_(begin), end_(end), f_(std::move(f)) {}
  struct Sentinel {
    int end;
  };
  class Iterator {
   public:
    using value_type = std::decay_t<decltype(std::declval<const F&>()(0))>;
    using difference_type = std::ptrdiff_t;
    Iterator(int i, const F* f) : i_(i), f_(f) {}
    value_type operator*() const { return (*f_)(i_); }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    void operator++(int) { ++i_; }
    friend bool operator==(const Iterator& it, const Sentinel& s) { return it.i_ == s.end; }

   private:
    int i_;
    const F* f_;
  };
  Iterator begin() const { return Iterator(begin_, &f_); }
  Sentinel end() const { return {end_}; }

 private:
  int begin_;
  int end_;
  F f_;
};

// begin, ..., end - 1 as ints.
inline auto ints(int begin, int end) {
  return Generated(begin, end, [](int i) { return i; });
}

// CPython's create_future(state, exception, result) for the canned futures.
inline cf::Future<int> pending_future() { return cf::Future<int>(); }
inline cf::Future<int> running_future() {
  cf::Future<int> f;
  f.set_running_or_notify_cancel();
  return f;
}
inline cf::Future<int> cancelled_future() {
  cf::Future<int> f;
  f.cancel();
  return f;
}
inline cf::Future<int> exception_future() {
  cf::Future<int> f;
  f.set_exception(std::make_exception_ptr(std::runtime_error("canned error")));
  return f;
}
inline cf::Future<int> successful_future() {
  cf::Future<int> f;
  f.set_result(42);
  return f;
}

// A one-shot event (Python's threading.Event) whose wait is bounded.
class Event {
 public:
  void set() {
    {
      std::lock_guard lock(mu_);
      set_ = true;
    }
    cv_.notify_all();
  }
  bool is_set() const {
    std::lock_guard lock(mu_);
    return set_;
  }
  // True if set within `timeout`.
  bool wait(std::chrono::milliseconds timeout = kDeadlock) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return set_; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool set_ = false;
};

// A one-worker pool whose worker is held by a task until release(): work submitted meanwhile
// stays queued (pending), so it can be cancelled or dropped before it starts.
class BlockedPool {
 public:
  explicit BlockedPool(const std::string& prefix = "blocked")
      : pool_({.max_workers = 1, .thread_name_prefix = prefix}) {
    blocker_ = pool_.submit([this] {
      started_.set();
      release_.wait();
    });
    EXPECT_TRUE(started_.wait());
  }
  ~BlockedPool() { release(); }
  void release() { release_.set(); }
  cf::ThreadPoolExecutor& pool() { return pool_; }

 private:
  Event started_;
  Event release_;
  cf::ThreadPoolExecutor pool_;
  cf::Future<void> blocker_;
};

// Captures what the library reports to the error handler for the lifetime of the object.
class CapturedErrors {
 public:
  CapturedErrors()
      : previous_(cf::set_error_handler([this](std::string_view m) {
          std::lock_guard lock(mu_);
          messages_.emplace_back(m);
        })) {}
  ~CapturedErrors() { cf::set_error_handler(previous_); }
  CapturedErrors(const CapturedErrors&) = delete;
  CapturedErrors& operator=(const CapturedErrors&) = delete;

  std::vector<std::string> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
  std::function<void(std::string_view)> previous_;
};

// Helpers shared by the wait and as_completed tests.

using FutureSet = std::unordered_set<cf::AnyFuture>;

template <class Fut>
FutureSet as_set(const std::vector<Fut>& futures) {
  return FutureSet(futures.begin(), futures.end());
}

// CPython's CANCELLED_AND_NOTIFIED_FUTURE: cancelled, then acknowledged by an executor.
inline cf::Future<int> cancelled_and_notified_future() {
  auto f = cancelled_future();
  f.set_running_or_notify_cancel();
  return f;
}

template <class Fn>
std::chrono::steady_clock::duration time_of(Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  std::forward<Fn>(fn)();
  return std::chrono::steady_clock::now() - start;
}

// Generous: "returns at once" must hold on a loaded 2-core machine under a sanitizer.
constexpr auto kPromptly = 2s;

// A hand-written input range that makes each future on the fly, by value (CPython's tests pass
// any iterable, e.g. itertools.repeat(f, 3)). Written out rather than a std::views pipeline,
// which Clang 14 cannot compile against libstdc++ 12.
template <class Fut>
class GeneratedRange {
 public:
  explicit GeneratedRange(std::vector<Fut> items) : items_(std::move(items)) {}

  class iterator {
   public:
    using value_type = Fut;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const std::vector<Fut>* items, std::size_t i) : items_(items), i_(i) {}
    Fut operator*() const { return (*items_)[i_]; }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const iterator& other) const { return i_ == other.i_; }

   private:
    const std::vector<Fut>* items_ = nullptr;
    std::size_t i_ = 0;
  };

  iterator begin() const { return {&items_, 0}; }
  iterator end() const { return {&items_, items_.size()}; }

 private:
  std::vector<Fut> items_;
};

// The exception in `e`'s dynamic type, demangled-free: for exact-type checks.
inline const std::type_info& dynamic_type(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return typeid(ex);
  } catch (...) {
    return typeid(void);
  }
}

inline std::string what_of(const std::exception_ptr& e) {
  if (!e) return "<no exception: the future succeeded>";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "<not a std::exception>";
  }
}

// Trivially copyable, but its cereal functions must win over the bytewise copy: a value that
// went through them says so (via_cereal); one copied bytewise keeps the sender's false.
struct Marked {
  static constexpr std::uint32_t kMarker = 0xC0FFEEu;
  int value = 0;
  bool via_cereal = false;
  template <class Archive>
  void save(Archive& archive) const {
    archive(value, kMarker);
  }
  template <class Archive>
  void load(Archive& archive) {
    std::uint32_t marker = 0;
    archive(value, marker);
    via_cereal = marker == kMarker;
  }
};

}  // namespace cftest
