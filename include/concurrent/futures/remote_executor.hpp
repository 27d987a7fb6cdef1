/// @file
/// `cf::RemoteExecutor`: what every executor whose tasks run in other processes
/// (ProcessPoolExecutor, MPIPoolExecutor) shares: submit, map, map_unordered and starmap, checked
/// at compile time against the rule of transportable.hpp, with each task's request written in the
/// caller's thread.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <type_traits>
#include <utility>

#include "concurrent/futures/detail/checks.hpp"
#include "concurrent/futures/detail/entry.hpp"
#include "concurrent/futures/detail/task.hpp"
#include "concurrent/futures/executor.hpp"

namespace concurrent::futures {

/// The base of the executors whose tasks run in other processes: ProcessPoolExecutor and
/// MPIPoolExecutor (see transportable.hpp for what may cross). Code may be written against it
/// to get submit's compile-time checks on either.
class RemoteExecutor : public Executor {
 public:
  /// Its tasks always run in worker processes: f.then(pool, fn) checks at compile time, as
  /// submit does, that fn can run there with f's value.
  static constexpr bool runs_in_other_processes = true;

  /// Executor::submit, with the check at compile time that fn can run in a worker with these
  /// arguments and send its result back (a string literal argument is sent as a string).
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args) {
    using Fn = std::decay_t<F>;
    using R = std::invoke_result_t<Fn, std::decay_t<Args>...>;
    if constexpr (!detail::remotable_v<R, Fn, std::decay_t<Args>...>) {
      detail::checks::require_remotable<R, Fn, std::decay_t<Args>...>();  // names what is refused
      // Reached only if no check above fired (a gap in them): a failed future, never a hang.
      Future<R> refused;
      refused.set_exception(std::make_exception_ptr(
          SerializationError(detail::why_not_remotable<R, Fn, std::decay_t<Args>...>())));
      return refused;
    } else {
      // Serialize straight from the caller's arguments: no decay-copy of a large argument first.
      check_open();
      Future<R> future;
      detail::codec::Buffer request;
      try {
        detail::codec::Writer w(request);
        const Fn callable = fn;
        detail::encode_call(w, callable, static_cast<const std::decay_t<Args>&>(args)...);
      } catch (...) {
        future.set_exception(std::current_exception());  // this future only; the pool goes on
        return future;
      }
      schedule_remote(detail::RemoteCallPtr(new detail::ReplyTask<R>(future)), std::move(request));
      return future;
    }
  }

  /// Executor's map, map_unordered and starmap, with the compile-time checks of submit on the
  /// callable, the items (tuples of the ranges' elements) and the results.
  ///@{
  template <class F, class... Args>
  auto map(F&& fn, Args&&... args) {
    return dispatch_map</*unordered=*/false, /*remote=*/true>(std::forward<F>(fn),
                                                              std::forward<Args>(args)...);
  }
  template <class F, class... Args>
  auto map_unordered(F&& fn, Args&&... args) {
    return dispatch_map</*unordered=*/true, /*remote=*/true>(std::forward<F>(fn),
                                                             std::forward<Args>(args)...);
  }
  template <class F, class Range>
  auto starmap(F&& fn, Range&& tuples) {
    detail::require_finite<Range>();
    return dispatch_starmap</*remote=*/true>(std::forward<F>(fn), std::forward<Range>(tuples),
                                             MapOptions{});
  }
  template <class F, class Range>
  auto starmap(F&& fn, Range&& tuples, const MapOptions& options) {
    return dispatch_starmap</*remote=*/true>(std::forward<F>(fn), std::forward<Range>(tuples),
                                             options);
  }
  ///@}

 protected:
  bool in_process() const noexcept override { return false; }
  // ShutdownError after shutdown, BrokenExecutor (of the executor's kind) when broken.
  virtual void check_open() const = 0;
  // Queues a task whose request is already written.
  virtual void schedule_remote(detail::RemoteCallPtr call, detail::codec::Buffer request) = 0;
};

}  // namespace concurrent::futures
