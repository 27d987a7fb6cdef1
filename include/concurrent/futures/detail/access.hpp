// The one door from library code to what the public classes keep private.
//
// A future's shared state, a future made from a state, and an executor's link are the library's
// business only: a Future<int> adopting the state of a Future<double>, or a task handed to a
// link behind the executor's back, is undefined behaviour that no user should be one call away
// from. So FutureHandle, Future<T>, AnyFuture and Executor keep them private and befriend Access,
// and every use in the library (and in white-box tests) goes through it, where grep finds it.
//
// The members are templates so that this header needs none of those classes complete: each is
// instantiated only where its class is.
#pragma once

#include <memory>
#include <utility>

namespace concurrent::futures {

template <class T>
class Future;

namespace detail {

class StateBase;
class ExecutorLink;

struct Access {
  // The shared state behind a Future<T> or an AnyFuture.
  template <class Handle>
  static const std::shared_ptr<StateBase>& state(const Handle& future) noexcept {
    return future.state_;
  }

  // A Future<T> sharing `state`, which must be a State<T> (or derive from one).
  template <class T>
  static Future<T> future(std::shared_ptr<StateBase> state) {
    return Future<T>(std::move(state));
  }

  // The link through which work outlives `executor` safely (see executor_link.hpp).
  template <class Ex>
  static const std::shared_ptr<ExecutorLink>& link(const Ex& executor) noexcept {
    return executor.link_;
  }
};

}  // namespace detail
}  // namespace concurrent::futures
