/// @file
/// `cf::Executor`: the interface every executor has (threads, processes, MPI ranks), so that code
/// written against `cf::Executor&` runs unchanged on any of them.
///
/// The templates here (submit, map, map_unordered, starmap) turn the user's callable and
/// arguments into detail::Task objects and hand them to the executor's one virtual entry point,
/// schedule(). An executor decides where and how a task runs; the futures, chunking, ordering,
/// timeouts and cancellation of map are shared by all of them.
///
/// This header also defines Future<T>::then(executor, fn) (declared in future.hpp), which needs
/// the executor: wherever an executor is at hand, so is then.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concurrent/futures/detail/access.hpp"
#include "concurrent/futures/detail/checks.hpp"
#include "concurrent/futures/detail/executor_link.hpp"
#include "concurrent/futures/detail/iterable.hpp"
#include "concurrent/futures/detail/map_core.hpp"
#include "concurrent/futures/detail/task.hpp"
#include "concurrent/futures/detail/then.hpp"
#include "concurrent/futures/errors.hpp"
#include "concurrent/futures/future.hpp"
#include "concurrent/futures/map_options.hpp"

namespace concurrent::futures {
namespace detail {

template <class T>
struct is_map_options : std::is_same<std::remove_cvref_t<T>, MapOptions> {};

template <class... Rs>
using zip_item_t = std::tuple<element_of<Rs>...>;

// The source of map's items: the ranges zipped (shortest wins), each element decay-copied.
template <class... Rs>
auto zip_source(Rs&&... ranges) {
  using Item = zip_item_t<Rs...>;
  struct Zip {
    explicit Zip(Rs&&... rs) : cursors(std::forward<Rs>(rs)...) {}
    std::tuple<Cursor<Rs>...> cursors;

    std::optional<Item> next() {
      return std::apply(
          [](auto&... c) -> std::optional<Item> {
            if ((... || c.at_end())) return std::nullopt;
            Item item(c.current()...);
            (c.next(), ...);
            return item;
          },
          cursors);
    }
  };
  // On the heap: the cursors may point into ranges they own, so they must not move.
  auto zip = std::make_unique<Zip>(std::forward<Rs>(ranges)...);
  return [zip = std::move(zip)]() { return zip->next(); };
}

template <class Fn, class Item>
using apply_result_t =
    std::decay_t<decltype(std::apply(std::declval<Fn&>(), std::declval<Item>()))>;

}  // namespace detail

/// The range map() returns: a move-only input range of fn's results in input order.
/// Dereferencing waits for that item and returns it (moved out: once per position) or rethrows
/// the exception fn threw for it; ++ then goes on to the next item. When the map's timeout runs
/// out, dereferencing throws TimeoutError, the rest is cancelled and ++ reaches end().
/// Destroying the range cancels the work that has not started.
template <class R>
class MapRange {
  using Core = detail::MapCore<R>;

 public:
  MapRange(std::shared_ptr<Core> core, detail::Deadline deadline)
      : core_(std::move(core)), deadline_(deadline) {}
  MapRange(MapRange&& other) noexcept = default;
  MapRange& operator=(MapRange&&) = delete;
  ~MapRange() {
    if (core_) core_->stop();
  }

  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(MapRange* owner) : owner_(owner) {}
    R operator*() const { return owner_->take(); }
    iterator& operator++() {
      owner_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

   private:
    bool at_end() const { return owner_ == nullptr || owner_->at_end(); }
    MapRange* owner_ = nullptr;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// How many items this yields in all (Python's __length_hint__): known once the whole input has
  /// been read, which is at the call without buffersize; nullopt before that.
  std::optional<std::size_t> length_hint() const { return core_->total_items(); }

 private:
  bool at_end() const { return cursor_.at_end(*core_); }

  [[noreturn]] void timed_out() {
    cursor_.ended = true;
    core_->stop();
    throw TimeoutError("map() timed out before item " + std::to_string(cursor_.consumed) +
                       " was ready");
  }

  void ensure_chunk() {
    if (current_) return;
    current_ = core_->wait_exists(chunk_index_, deadline_);
    if (!current_) timed_out();
  }

  R take() {
    ensure_chunk();
    if (!current_done_) {
      // Once per chunk: its items are all there once it is done.
      if (!core_->wait_done(current_, deadline_)) timed_out();
      current_->done.result();  // the chunk never ran: CancelledError or the pool's error
      current_done_ = true;
    }
    detail::Outcome<R> outcome = current_->take(offset_);
    if (auto* error = std::get_if<std::exception_ptr>(&outcome)) std::rethrow_exception(*error);
    if (std::holds_alternative<std::monostate>(outcome)) {
      throw InvalidStateError("map item " + std::to_string(cursor_.consumed) +
                              " was already taken");
    }
    if constexpr (!std::is_void_v<R>) return std::move(std::get<detail::Stored<R>>(outcome));
  }

  void advance() {
    if (cursor_.ended) return;
    ensure_chunk();
    ++cursor_.consumed;
    if (++offset_ < current_->size) return;
    current_.reset();
    current_done_ = false;
    offset_ = 0;
    core_->release(chunk_index_++);
  }

  std::shared_ptr<Core> core_;
  detail::Deadline deadline_;
  std::shared_ptr<detail::Chunk<R>> current_;
  bool current_done_ = false;  // current_ is done and did not fail as a whole
  std::size_t chunk_index_ = 0;
  std::size_t offset_ = 0;
  detail::MapCursor cursor_;
};

/// The range map_unordered() returns: (input index, done future) pairs in completion order.
/// Same timeout and cancellation rules as MapRange.
template <class R>
class MapUnorderedRange {
  using Core = detail::MapCore<R>;

 public:
  using value_type = std::pair<std::size_t, Future<R>>;

  MapUnorderedRange(std::shared_ptr<Core> core, detail::Deadline deadline)
      : core_(std::move(core)), deadline_(deadline) {}
  MapUnorderedRange(MapUnorderedRange&&) noexcept = default;
  MapUnorderedRange& operator=(MapUnorderedRange&&) = delete;
  ~MapUnorderedRange() {
    if (core_) core_->stop();
  }

  class iterator {
   public:
    using value_type = std::pair<std::size_t, Future<R>>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(MapUnorderedRange* owner) : owner_(owner) {}
    value_type operator*() const { return owner_->take(); }
    iterator& operator++() {
      owner_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.at_end(); }

   private:
    bool at_end() const { return owner_ == nullptr || owner_->at_end(); }
    MapUnorderedRange* owner_ = nullptr;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// How many items this yields in all (Python's __length_hint__): known once the whole input has
  /// been read, which is at the call without buffersize; nullopt before that.
  std::optional<std::size_t> length_hint() const { return core_->total_items(); }

 private:
  bool at_end() const { return cursor_.at_end(*core_); }

  value_type take() {
    if (item_) return *item_;
    if (!current_) {
      std::tie(current_, current_index_) = core_->wait_completed(deadline_);
      if (!current_) {
        cursor_.ended = true;
        core_->stop();
        throw TimeoutError("map_unordered() timed out with items unfinished");
      }
    }
    Future<R> future;
    const Future<void>& done = current_->done;
    if (done.cancelled()) {
      future.cancel();
    } else if (const std::exception_ptr chunk_error = done.exception()) {
      future.set_exception(chunk_error);
    } else {
      detail::Outcome<R> outcome = current_->take(offset_);
      if (auto* error = std::get_if<std::exception_ptr>(&outcome)) {
        future.set_exception(*error);
      } else if constexpr (std::is_void_v<R>) {
        future.set_result();
      } else {
        future.set_result(std::move(std::get<detail::Stored<R>>(outcome)));
      }
    }
    item_.emplace(current_->begin + offset_, std::move(future));
    return *item_;
  }

  void advance() {
    if (cursor_.ended) return;
    if (!item_) take();
    item_.reset();
    ++cursor_.consumed;
    if (++offset_ < current_->size) return;
    offset_ = 0;
    current_.reset();
    core_->release(current_index_);
  }

  std::shared_ptr<Core> core_;
  detail::Deadline deadline_;
  std::shared_ptr<detail::Chunk<R>> current_;
  std::size_t current_index_ = 0;
  std::size_t offset_ = 0;
  std::optional<value_type> item_;
  detail::MapCursor cursor_;
};

/// The interface every executor has (threads, processes, MPI ranks): code written against
/// `cf::Executor&` runs unchanged on any of them.
class Executor {
 public:
  Executor() : link_(std::make_shared<detail::ExecutorLink>(this)) {}
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor() = default;

  /// Schedules fn(args...) and returns its future. Arguments are decay-copied into the task (as
  /// std::thread does); std::ref passes a reference (thread pools only). Throws ShutdownError
  /// after shutdown() and BrokenExecutor when the executor is broken; an exception from fn
  /// itself goes to the future. Never blocks.
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args)
      -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
    auto [future, task] =
        detail::make_submit_task(std::forward<F>(fn), std::forward<Args>(args)...);
    schedule(std::move(task));
    return std::move(future);
  }

  /// fn(x, y, ...) over the ranges zipped (shortest wins); the last argument may be a
  /// MapOptions (timeout, chunksize, buffersize; see map_options.hpp). Returns a MapRange<R> of
  /// results in input order. Without buffersize, this call reads all the input and submits all
  /// the work, iterated or not; an exception from reading the input comes out of here.
  template <class F, class... Args>
  auto map(F&& fn, Args&&... args) {
    return dispatch_map</*unordered=*/false>(std::forward<F>(fn), std::forward<Args>(args)...);
  }

  /// Like map, but yields (input index, done Future<R>) pairs as items complete, in a
  /// MapUnorderedRange<R>; may end with a MapOptions.
  template <class F, class... Args>
  auto map_unordered(F&& fn, Args&&... args) {
    return dispatch_map</*unordered=*/true>(std::forward<F>(fn), std::forward<Args>(args)...);
  }

  /// fn(std::get<I>(t)...) for each tuple-like t of `tuples`; may end with a MapOptions.
  ///@{
  template <class F, class Range>
  auto starmap(F&& fn, Range&& tuples) {
    detail::require_finite<Range>();
    return dispatch_starmap<false>(std::forward<F>(fn), std::forward<Range>(tuples), MapOptions{});
  }
  template <class F, class Range>
  auto starmap(F&& fn, Range&& tuples, const MapOptions& options) {
    return dispatch_starmap<false>(std::forward<F>(fn), std::forward<Range>(tuples), options);
  }
  ///@}

  /// No new work is accepted from now on. cancel_futures cancels work that has not started;
  /// with wait, returns once all running and pending work has finished and every worker has
  /// ended. Calling it again is harmless.
  virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;

  /// The most tasks this executor runs at once.
  virtual std::size_t max_workers() const = 0;

 protected:
  /// Takes ownership of `task` and runs it some time later; never blocks. Throws ShutdownError
  /// after shutdown and BrokenExecutor when broken (the task is then dropped, never run).
  virtual void schedule(detail::TaskPtr task) = 0;

  /// Derived destructors call this first: map ranges that outlive the executor then get
  /// ShutdownError instead of reaching a destroyed object.
  void disconnect() noexcept { link_->close(); }

  /// Whether tasks run in this process (and so may share memory with the caller). Decides how
  /// map's automatic chunking works, and whether then(executor, fn) runs fn as a closure or
  /// sends it to a worker process with the value.
  virtual bool in_process() const noexcept { return true; }

 protected:
  // map and map_unordered: the MapOptions (if last) split from the ranges. Remote: the executor
  // sends the work to other processes, so the callable, items and results are checked at compile
  // time (detail/checks.hpp).
  template <bool Unordered, bool Remote = false, class F, class... Args>
  auto dispatch_map(F&& fn, Args&&... args) {
    static_assert(sizeof...(Args) > 0, "map needs at least one range");
    if constexpr (detail::is_map_options<
                      std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>>::value) {
      static_assert(sizeof...(Args) > 1, "map needs at least one range before its MapOptions");
      auto all = std::forward_as_tuple(std::forward<Args>(args)...);
      const MapOptions options = std::get<sizeof...(Args) - 1>(all);
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return map_ranges<Unordered, Remote>(
            std::forward<F>(fn), options,
            std::forward<std::tuple_element_t<I, decltype(all)>>(std::get<I>(all))...);
      }
      (std::make_index_sequence<sizeof...(Args) - 1>{});
    } else {
      detail::require_finite<Args...>();
      return map_ranges<Unordered, Remote>(std::forward<F>(fn), MapOptions{},
                                           std::forward<Args>(args)...);
    }
  }

  template <bool Remote = false, class F, class Range>
  auto dispatch_starmap(F&& fn, Range&& tuples, const MapOptions& options) {
    static_assert(detail::Iterable<Range>, "starmap's second argument must be a range");
    check_ends<Range>(options);
    using Item = detail::element_of<Range>;
    auto cursor = std::make_unique<detail::Cursor<Range>>(std::forward<Range>(tuples));
    auto source = [cursor = std::move(cursor)]() -> std::optional<Item> {
      if (cursor->at_end()) return std::nullopt;
      std::optional<Item> item(cursor->current());
      cursor->next();
      return item;
    };
    return make_map<false, Remote, Item>(std::forward<F>(fn), options, std::move(source));
  }

 private:
  friend class detail::ExecutorLink;
  friend struct detail::Access;  // link_, for then(executor, fn) and resume_on

  // An input that never ends needs buffersize (with the MapOptions known only at run time).
  template <class... Ranges>
  static void check_ends(const MapOptions& options) {
    if ((detail::known_infinite_v<Ranges> && ...) && options.buffersize == 0) {
      throw std::invalid_argument(
          "map over an input that never ends (its end is std::unreachable_sentinel) needs "
          "MapOptions::buffersize, or it reads the input for ever");
    }
  }

  template <bool Unordered, bool Remote, class F, class... Ranges>
  auto map_ranges(F&& fn, const MapOptions& options, Ranges&&... ranges) {
    static_assert((detail::Iterable<Ranges> && ...), "map's arguments must be ranges");
    check_ends<Ranges...>(options);
    using Item = detail::zip_item_t<Ranges...>;
    return make_map<Unordered, Remote, Item>(std::forward<F>(fn), options,
                                             detail::zip_source(std::forward<Ranges>(ranges)...));
  }

  template <bool Unordered, bool Remote, class Item, class F, class Source>
  auto make_map(F&& fn, const MapOptions& options, Source&& source) {
    using Fn = std::decay_t<F>;
    using R = detail::apply_result_t<Fn, Item>;
    if constexpr (Remote) detail::checks::require_remotable_map<R, Fn, Item>();
    const detail::Deadline deadline =
        options.timeout ? detail::deadline_after(*options.timeout) : detail::Deadline{};
    auto core = std::make_shared<detail::MapCoreImpl<Fn, Item, R>>(
        link_, options, max_workers(), Fn(std::forward<F>(fn)),
        typename detail::MapCoreImpl<Fn, Item, R>::Source(std::forward<Source>(source)));
    core->start(in_process(), /*completion_order=*/Unordered);
    if constexpr (Unordered) {
      return MapUnorderedRange<R>(std::move(core), deadline);
    } else {
      return MapRange<R>(std::move(core), deadline);
    }
  }

  // Shared with map ranges and continuations; closed by disconnect().
  std::shared_ptr<detail::ExecutorLink> link_;
};

// --- Future<T>::then(executor, fn) -------------------------------------------------------------

namespace detail {

// Executors whose tasks always run in other processes say so with a static member
// `runs_in_other_processes = true` (ProcessPoolExecutor): then() on them checks fn at compile
// time, as their submit does.
template <class Ex>
inline constexpr bool runs_in_other_processes_v = requires {
  requires Ex::runs_in_other_processes;
};

// Whether then(executor, fn) can send fn with the value to a worker process, as
// submit(fn, value) would: the value form, a transportable fn that takes an rvalue copy of the
// value, and the value and the result serializable.
template <class T, class Fn, class U = then_result_t<T, Fn>>
constexpr bool then_remotable() {
  if constexpr (!then_by_value_v<T, Fn>) {
    return false;
  } else if constexpr (std::is_void_v<T>) {
    return std::is_invocable_r_v<U, Fn> && remotable_v<U, Fn>;
  } else {
    return std::is_copy_constructible_v<T> && std::is_invocable_r_v<U, Fn, T> &&
           remotable_v<U, Fn, T>;
  }
}

// Why not, for the SerializationError the returned future fails with.
template <class T, class Fn, class U = then_result_t<T, Fn>>
std::string why_then_not_remotable() {
  if constexpr (!then_by_value_v<T, Fn>) {
    return "then(executor, fn): a fn that takes the Future<T> cannot run in a worker process, "
           "which gets the value only; make fn take the value";
  } else if constexpr (std::is_void_v<T>) {
    return why_not_remotable<U, Fn>();
  } else if constexpr (!remotable_v<U, Fn, T>) {
    return why_not_remotable<U, Fn, T>();
  } else {
    return "then(executor, fn): fn cannot run in a worker process: it must be callable with a "
           "copy of the value (an rvalue), as submit(fn, value) calls it";
  }
}

// then(executor, fn) on a ProcessPoolExecutor: what then_remotable() asks, at compile time, with
// the messages of ProcessPoolExecutor::submit where they apply.
template <class T, class Fn, class U = then_result_t<T, Fn>>
constexpr void check_then_remotable() {
  static_assert(
      then_by_value_v<T, Fn>,
      "ProcessPoolExecutor: then(executor, fn) runs fn in a worker process, which gets the "
      "value, not the Future<T>: fn must take the value (nothing for Future<void>)");
  checks::report_callable<Fn>();  // each refused type names itself (detail/checks.hpp)
  if constexpr (then_by_value_v<T, Fn> && std::is_void_v<T>) {
    static_assert(std::is_invocable_r_v<U, Fn>,
                  "ProcessPoolExecutor: then(executor, fn): fn must be callable as an rvalue, as "
                  "submit(fn) calls it");
  } else if constexpr (then_by_value_v<T, Fn>) {
    checks::report_value<T>();
    static_assert(std::is_copy_constructible_v<T> && std::is_invocable_r_v<U, Fn, T>,
                  "ProcessPoolExecutor: then(executor, fn): fn must be callable with a copy of "
                  "the value (an rvalue), as submit(fn, value) calls it");
  }
  checks::report_result<U>();
}

// then(executor, fn) once `f` is done: decides `next` at once when f's error or cancel does
// (value form), else hands fn to the executor behind `link`. Never throws: whatever the
// executor refuses with fails `next`.
template <class T, class U, class Fn>
void schedule_then(ExecutorLink& link, const Future<T>& f, const Future<U>& next, Fn&& fn) {
  using F = std::remove_cvref_t<Fn>;
  if (then_short_circuit<T, U, F>(f, next)) return;
  Future<void> task;
  try {
    if (!link.in_process()) {
      // A worker process: fn with a copy of the value, a task that completes `next` itself (so
      // `next` is running once the task is handed to a worker, and a cancel before that means
      // fn never runs). A `next` already done (cancelled, or completed by hand) wants nothing: the
      // value is not even copied.
      if (next.done()) return;
      if constexpr (then_remotable<T, F>()) {
        if constexpr (std::is_void_v<T>) {
          link.schedule(make_task(next, std::forward<Fn>(fn)));
        } else {
          link.schedule(make_task(next, std::forward<Fn>(fn), f.result()));
        }
      } else {
        fail_if_pending(
            next, std::make_exception_ptr(SerializationError(why_then_not_remotable<T, F>())));
      }
      return;
    }
    // This process: a closure over f, so fn gets f's value by reference (or f itself).
    task = link.submit([f, next, fn = std::forward<Fn>(fn)]() mutable { run_then(f, next, fn); });
  } catch (...) {
    fail_if_pending(next, std::current_exception());  // ShutdownError, BrokenExecutor
    return;
  }
  // run_then never throws out of the task, so a task that did not succeed never ran: it was
  // cancelled by shutdown(cancel_futures=true) or dropped by a broken pool.
  task.add_done_callback([next](const Future<void>& t) {
    if (t.cancelled()) {
      next.cancel();
    } else if (std::exception_ptr error = Access::state(t)->error()) {
      fail_if_pending(next, std::move(error));
    }
  });
}

}  // namespace detail

// Hidden from the API reference, which documents the declaration in future.hpp.
/// @cond
template <class T>
// clang-format off
template <class Ex, class F>
  requires std::derived_from<Ex, Executor>
auto Future<T>::then(Ex& executor, F&& fn) const {
  // clang-format on
  using Fn = std::decay_t<F>;
  detail::check_then<T, Fn>();
  if constexpr (detail::runs_in_other_processes_v<Ex>) detail::check_then_remotable<T, Fn>();
  using U = detail::then_result_t<T, Fn>;
  Future<U> next;
  // The link, not the executor: if the executor is gone by the time this future finishes,
  // scheduling through the link fails the returned future with ShutdownError instead of touching
  // it.
  add_done_callback([next, link = detail::Access::link(executor),
                     fn = Fn(std::forward<F>(fn))](const Future<T>& f) mutable {
    detail::schedule_then(*link, f, next, std::move(fn));
  });
  return next;
}
/// @endcond

}  // namespace concurrent::futures
