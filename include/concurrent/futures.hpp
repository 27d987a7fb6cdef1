/// @file
/// `cfutures`: Python's concurrent.futures in C++20. Include this one header; spell the namespace
/// @code
/// namespace cf = concurrent::futures;
/// @endcode
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include "concurrent/futures/compose.hpp"              // IWYU pragma: export
#include "concurrent/futures/coroutine.hpp"            // IWYU pragma: export
#include "concurrent/futures/errors.hpp"               // IWYU pragma: export
#include "concurrent/futures/exception_transport.hpp"  // IWYU pragma: export
#include "concurrent/futures/executor.hpp"             // IWYU pragma: export
#include "concurrent/futures/future.hpp"               // IWYU pragma: export
#include "concurrent/futures/future_state.hpp"         // IWYU pragma: export
#include "concurrent/futures/map_options.hpp"          // IWYU pragma: export
#include "concurrent/futures/process_pool.hpp"         // IWYU pragma: export
#include "concurrent/futures/progress.hpp"             // IWYU pragma: export
#include "concurrent/futures/remote_executor.hpp"      // IWYU pragma: export
#include "concurrent/futures/shared_array.hpp"         // IWYU pragma: export
#include "concurrent/futures/thread_pool.hpp"          // IWYU pragma: export
#include "concurrent/futures/transportable.hpp"        // IWYU pragma: export
#include "concurrent/futures/wait.hpp"                 // IWYU pragma: export

/// @namespace concurrent::futures
/// Everything cfutures offers (spelled `cf::` in these docs); its nested namespace `detail` is
/// private.
