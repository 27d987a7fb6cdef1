/// @file
/// `cf::FutureState`: the four states of a future (Python's PENDING, RUNNING, CANCELLED and
/// FINISHED), as Future<T>::state() and AnyFuture::state() report them.
///
/// A future moves pending -> running -> finished, or pending -> cancelled, and never back; the
/// transitions and their locking live in one place, detail/state.hpp.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

namespace concurrent::futures {

/// The state of a future. `done()` means cancelled or finished.
enum class FutureState {
  pending,    ///< not started: cancel() succeeds
  running,    ///< started (handed to a worker, or marked by set_running_or_notify_cancel)
  cancelled,  ///< cancelled before it started; result() throws CancelledError
  finished,   ///< has a value or an exception
};

/// "pending", "running", "cancelled" or "finished".
const char* to_string(FutureState state) noexcept;

}  // namespace concurrent::futures
