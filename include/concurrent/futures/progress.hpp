/// @file
/// `cf::progress(range)`: a progress bar on stderr for any loop (docs/reference.md §5).
///
/// @code
/// for (auto f : cf::progress(cf::as_completed(futures))) { ... }
/// for (long n : cf::progress(executor.map(work, inputs), {.label = "work"})) { ... }
/// @endcode
///
/// progress(range) is an input range that yields the range's elements unchanged (the same type,
/// by reference when the range gives references); it counts how many the loop has moved past.
/// When stderr is a terminal (isatty(2)) and the environment variable CF_PROGRESS is not "0", it
/// keeps one line on stderr up to date, in tqdm's layout:
///
/// ```
///   work:  42%|##########              | 420/1000 [00:03<00:04, 123.45it/s]
///   work: 420 [00:03, 123.45it/s]                      (total unknown)
/// ```
///
/// done/total, rate, elapsed time and, with a total, the ETA. The total comes from
/// ProgressOptions::total, else from the range: a `length_hint()` member (map, map_unordered and
/// as_completed ranges), else std::size(range) (containers, arrays, anything with size()); else
/// it is unknown. The line is drawn when iteration begins, redrawn at most every 100 ms, and
/// finished with a newline when the loop reaches the end (or, if it stops early, when the range
/// is destroyed). Otherwise it writes nothing at all.
///
/// Cost: ++ adds an increment and a compare; the clock is read every `stride` elements, stride
/// adapting so that it is read about every 20 ms (at most 256 elements apart). Not drawing, the
/// clock is never read.
///
/// Ownership: an lvalue range is referred to (it must outlive the loop); an rvalue range is moved
/// in. One thread iterates; the bar is written only from that thread. Output the loop body
/// writes to stderr meanwhile will be mixed with the bar.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "concurrent/futures/detail/iterable.hpp"

namespace concurrent::futures {

/// The options of cf::progress.
struct ProgressOptions {
  std::string label = {};                           ///< printed before the bar ("label: ")
  std::optional<std::size_t> total = std::nullopt;  ///< overrides the total found from the range
};

namespace detail {

// One state of the bar, for format_progress.
struct ProgressLine {
  std::string_view label;
  std::size_t count = 0;
  std::optional<std::size_t> total;
  std::chrono::duration<double> elapsed{0};
  std::size_t width = 80;  // terminal columns; the line uses at most width - 1
};

// The text of the bar (no "\r", no newline).
std::string format_progress(const ProgressLine& line);

// isatty(2) and CF_PROGRESS is not "0".
bool progress_enabled() noexcept;

// Counts and draws. Only ++ is inline: the rest runs at most every `stride` elements.
class ProgressMeter {
 public:
  ProgressMeter(std::string label, std::optional<std::size_t> total);
  // Finishes the line if iteration began and did not reach the end.
  ~ProgressMeter();
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  // Iteration begins: the first draw.
  void start() noexcept;
  void tick() noexcept {
    // next_check_ stays at SIZE_MAX when not drawing, so this is all a silent bar costs.
    if (++count_ >= next_check_) check();
  }
  // The loop reached the end: the last draw and a newline (once).
  void finish() noexcept;

  std::size_t count() const noexcept { return count_; }
  bool drawing() const noexcept { return enabled_; }

 private:
  using Clock = std::chrono::steady_clock;
  void check() noexcept;
  void draw(Clock::time_point now, bool final) noexcept;

  std::string label_;
  std::optional<std::size_t> total_;
  bool enabled_;
  bool started_ = false;
  bool finished_ = false;
  std::size_t count_ = 0;
  std::size_t next_check_;
  std::size_t stride_ = 1;
  std::size_t last_length_ = 0;
  Clock::time_point start_;
  Clock::time_point last_check_;
  Clock::time_point last_draw_;
};

template <class R>
std::optional<std::size_t> range_total(R& range) {
  if constexpr (requires { range.length_hint(); }) {
    return std::optional<std::size_t>(range.length_hint());
  } else if constexpr (requires { std::size(range); }) {
    return static_cast<std::size_t>(std::size(range));
  } else {
    return std::nullopt;
  }
}

}  // namespace detail

/// The range cf::progress returns. Movable until iteration begins (the meter lives on the heap so
/// that iterators keep pointing at it; the wrapped range's own iterators follow its rules).
template <class R>
class Progress {
  // Like detail::Cursor: a reference to an lvalue range, a moved-in copy of an rvalue one.
  using Held = std::conditional_t<std::is_lvalue_reference_v<R>, R, std::remove_cvref_t<R>>;
  using Base = std::remove_reference_t<Held>;
  using BaseIterator = detail::iterator_of<Base>;
  using BaseSentinel = detail::sentinel_of<Base>;

 public:
  class iterator;
  class sentinel;

  Progress(R&& range, ProgressOptions options)
      : range_(std::forward<R>(range)),
        meter_(std::make_unique<detail::ProgressMeter>(
            std::move(options.label),
            options.total ? options.total : detail::range_total(range_))) {}

  class sentinel {
   public:
    sentinel() = default;
    explicit sentinel(BaseSentinel end) : end_(std::move(end)) {}
    const BaseSentinel& base() const noexcept { return end_; }

   private:
    BaseSentinel end_;
  };

  class iterator {
   public:
    using value_type = std::remove_cvref_t<detail::reference_of<Base>>;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    iterator(BaseIterator it, detail::ProgressMeter* meter) : it_(std::move(it)), meter_(meter) {}

    /// Exactly what the wrapped iterator gives.
    decltype(auto) operator*() const { return *it_; }
    const BaseIterator& base() const noexcept { return it_; }
    iterator& operator++() {
      ++it_;
      meter_->tick();
      return *this;
    }
    void operator++(int) { ++*this; }

    /// The loop asks this after every element: reaching the end finishes the line.
    friend bool operator==(const iterator& it, const sentinel& end) {
      if (it.it_ != end.base()) return false;
      it.meter_->finish();
      return true;
    }

   private:
    BaseIterator it_{};
    detail::ProgressMeter* meter_ = nullptr;
  };

  /// Draws the first line, then begins the wrapped range (which may block: as_completed waits
  /// for the first future there).
  iterator begin() {
    meter_->start();
    return iterator(std::begin(range_), meter_.get());
  }
  sentinel end() { return sentinel(std::end(range_)); }

  /// Elements moved past so far.
  std::size_t count() const noexcept { return meter_->count(); }

 private:
  Held range_;
  std::unique_ptr<detail::ProgressMeter> meter_;
};

/// Yields the elements of `range` unchanged and draws a progress bar on stderr while a loop goes
/// through them: see the file comment (progress.hpp) for when it draws and what it costs.
// clang-format off
template <class R>
  requires detail::Iterable<R>
Progress<R> progress(R&& range, ProgressOptions options = {}) {
  // clang-format on
  return Progress<R>(std::forward<R>(range), std::move(options));
}

}  // namespace concurrent::futures
