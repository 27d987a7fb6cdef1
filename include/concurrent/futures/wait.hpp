/// @file
/// `cf::wait` and `cf::as_completed`: waiting on many futures at once.
///
/// Both take any range of Future<T> or AnyFuture, or a braced list {f1, f2} (mixed types allowed,
/// given back as AnyFuture), or a map keyed by futures (Python's {future: input} dict idiom: its
/// keys are used). Duplicates (equal futures) count once. A cancelled future counts as
/// completed (not as raising) from the moment cancel() returns (unlike CPython, where a future
/// cancelled by shutdown(cancel_futures=True) can leave wait blocked forever).
///
/// Neither keeps a reference to a future after returning or yielding it. Both wait without
/// polling: one waiter is registered with every pending future and woken by its completion. On a
/// thread-pool worker they run other pending tasks of the pool while waiting (see future.hpp).
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <chrono>
#include <cstddef>
#include <deque>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "concurrent/futures/detail/access.hpp"
#include "concurrent/futures/detail/blocking.hpp"
#include "concurrent/futures/detail/iterable.hpp"
#include "concurrent/futures/future.hpp"

namespace concurrent::futures {

/// When wait returns: see wait.
enum class ReturnWhen { first_completed, first_exception, all_completed };
/// Python's spelling of a ReturnWhen value.
///@{
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::first_completed;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::first_exception;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::all_completed;
///@}

/// What wait returns: the futures done and those not done, each in input order.
template <class Fut>
struct WaitResult {
  std::vector<Fut> done;
  std::vector<Fut> not_done;
};

namespace detail {

// The future an element of the input stands for: itself, or a map entry's key.
template <class E>
struct future_element {
  using type = E;
  static const E& get(const E& e) { return e; }
};
template <class K, class V>
struct future_element<std::pair<K, V>> {
  using type = std::remove_const_t<K>;
  static const type& get(const std::pair<K, V>& e) { return e.first; }
};

template <class R>
using element_t = std::remove_cvref_t<reference_of<R>>;
template <class R>
using future_of = typename future_element<element_t<R>>::type;

template <class R>
concept FutureRange = Iterable<R> && is_future_v<future_of<R>>;

// Copies the range into a vector, dropping duplicates but keeping first-seen order.
template <class Fut, class R>
std::vector<Fut> unique_futures(R&& futures) {
  std::vector<Fut> out;
  std::unordered_set<const void*> seen;
  for (auto&& element : futures) {
    const auto& f = future_element<std::remove_cvref_t<decltype(element)>>::get(element);
    if (seen.insert(f.id()).second) out.push_back(Fut(f));
  }
  return out;
}

// Blocks until `return_when` holds for `states` or the deadline passes; does not throw on
// timeout. Returns for each state whether it is done.
std::vector<bool> wait_states(const std::vector<const StateBase*>& states, const Deadline& deadline,
                              ReturnWhen return_when);

template <class Fut>
WaitResult<Fut> wait_impl(std::vector<Fut> futures, const Deadline& deadline,
                          ReturnWhen return_when) {
  std::vector<const StateBase*> states;
  states.reserve(futures.size());
  for (const Fut& f : futures) states.push_back(Access::state(f).get());
  const std::vector<bool> done = wait_states(states, deadline, return_when);
  WaitResult<Fut> result;
  for (std::size_t i = 0; i < futures.size(); ++i) {
    (done[i] ? result.done : result.not_done).push_back(std::move(futures[i]));
  }
  return result;
}

// The waiter behind as_completed: records states in the order they complete.
class CompletionQueue final : public Waiter {
 public:
  void on_done(const StateBase& state) noexcept override;
  // Next completed state, or nullptr if none by the deadline.
  const StateBase* pop(const Deadline& deadline);
  void push_done(const StateBase* state);

 private:
  std::mutex mu_;
  std::deque<const StateBase*> completed_;
  Signal signal_;
};

}  // namespace detail

/// The range returned by as_completed: a move-only input range of futures in completion order.
template <class Fut>
class AsCompleted {
 public:
  AsCompleted(std::vector<Fut> futures, detail::Deadline deadline)
      : deadline_(deadline), queue_(std::make_unique<detail::CompletionQueue>()) {
    futures_.reserve(futures.size());
    for (Fut& f : futures) futures_.emplace_back(std::move(f));
    // Futures already done are queued first, in input order; the rest as they complete.
    index_.reserve(futures_.size());
    for (std::size_t i = 0; i < futures_.size(); ++i) {
      const detail::StateBase* s = detail::Access::state(*futures_[i]).get();
      index_.emplace(s, i);
      if (!s->add_waiter(queue_.get())) queue_->push_done(s);
    }
  }
  AsCompleted(AsCompleted&&) noexcept = default;
  AsCompleted& operator=(AsCompleted&&) = delete;
  ~AsCompleted() {
    if (!queue_) return;  // moved from
    for (auto& f : futures_) {
      if (f) detail::Access::state(*f)->remove_waiter(queue_.get());
    }
  }

  class iterator {
   public:
    using value_type = Fut;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(AsCompleted* owner) : owner_(owner) {}
    /// The current future, moved out: dereference once per position.
    Fut operator*() const { return std::move(*owner_->current_); }
    iterator& operator++() {
      owner_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

   private:
    bool at_end() const { return owner_ == nullptr || owner_->finished(); }
    AsCompleted* owner_ = nullptr;
  };

  /// Waits for the first future. TimeoutError("N (of M) futures unfinished") if the timeout runs
  /// out first; the same from ++ for later ones.
  iterator begin() {
    advance();
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// How many futures this yields in all (Python's __length_hint__), known at the call.
  std::size_t length_hint() const noexcept { return futures_.size(); }

 private:
  bool finished() const noexcept { return !current_ && yielded_ == futures_.size(); }

  void advance() {
    current_.reset();
    if (yielded_ == futures_.size()) return;
    const detail::StateBase* s = queue_->pop(deadline_);
    if (s == nullptr) {
      throw TimeoutError(std::to_string(futures_.size() - yielded_) + " (of " +
                         std::to_string(futures_.size()) + ") futures unfinished");
    }
    // The completing thread notifies the queue under the future's lock; taking that lock here
    // waits for it to be done with the queue, which may be destroyed right after this yield.
    s->remove_waiter(queue_.get());
    std::optional<Fut>& slot = futures_[index_.at(s)];
    current_ = std::move(slot);
    slot.reset();  // no reference kept once yielded
    ++yielded_;
  }

  std::vector<std::optional<Fut>> futures_;
  std::unordered_map<const detail::StateBase*, std::size_t> index_;
  detail::Deadline deadline_;
  std::unique_ptr<detail::CompletionQueue> queue_;
  std::optional<Fut> current_;
  std::size_t yielded_ = 0;
};

// --- wait ---------------------------------------------------------------------------------------
/// Blocks until return_when holds (default ALL_COMPLETED) or the timeout runs out; never throws
/// on timeout. FIRST_EXCEPTION returns when any future finishes by raising, and is ALL_COMPLETED
/// if none does. done/not_done keep the input order.
///@{
template <detail::FutureRange R>
auto wait(R&& futures, ReturnWhen return_when = ALL_COMPLETED) {
  using Fut = detail::future_of<R>;
  return detail::wait_impl(detail::unique_futures<Fut>(futures), std::nullopt, return_when);
}
template <detail::FutureRange R, class Rep, class Period>
auto wait(R&& futures, std::chrono::duration<Rep, Period> timeout,
          ReturnWhen return_when = ALL_COMPLETED) {
  using Fut = detail::future_of<R>;
  return detail::wait_impl(detail::unique_futures<Fut>(futures), detail::deadline_after(timeout),
                           return_when);
}
inline WaitResult<AnyFuture> wait(std::initializer_list<AnyFuture> futures,
                                  ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_impl(detail::unique_futures<AnyFuture>(futures), std::nullopt, return_when);
}
template <class Rep, class Period>
WaitResult<AnyFuture> wait(std::initializer_list<AnyFuture> futures,
                           std::chrono::duration<Rep, Period> timeout,
                           ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_impl(detail::unique_futures<AnyFuture>(futures),
                           detail::deadline_after(timeout), return_when);
}
///@}

// --- as_completed -------------------------------------------------------------------------------
/// Yields each future once, as it completes (those already done first). The timeout runs from
/// this call; when it runs out, begin()/++ throw TimeoutError("N (of M) futures unfinished").
///@{
template <detail::FutureRange R>
AsCompleted<detail::future_of<R>> as_completed(R&& futures) {
  using Fut = detail::future_of<R>;
  return AsCompleted<Fut>(detail::unique_futures<Fut>(futures), std::nullopt);
}
template <detail::FutureRange R, class Rep, class Period>
AsCompleted<detail::future_of<R>> as_completed(R&& futures,
                                               std::chrono::duration<Rep, Period> timeout) {
  using Fut = detail::future_of<R>;
  return AsCompleted<Fut>(detail::unique_futures<Fut>(futures), detail::deadline_after(timeout));
}
inline AsCompleted<AnyFuture> as_completed(std::initializer_list<AnyFuture> futures) {
  return AsCompleted<AnyFuture>(detail::unique_futures<AnyFuture>(futures), std::nullopt);
}
template <class Rep, class Period>
AsCompleted<AnyFuture> as_completed(std::initializer_list<AnyFuture> futures,
                                    std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<AnyFuture>(detail::unique_futures<AnyFuture>(futures),
                                detail::deadline_after(timeout));
}
///@}

}  // namespace concurrent::futures
