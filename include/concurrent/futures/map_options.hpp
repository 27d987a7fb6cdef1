/// @file
/// `cf::MapOptions`: the options of Executor::map, map_unordered and starmap, passed as their
/// last argument.
///
/// @code
/// for (long r : ex.map(work, inputs, cf::MapOptions{.chunksize = 0, .buffersize = 8})) { ... }
/// @endcode
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <chrono>
#include <cstddef>
#include <optional>

namespace concurrent::futures {

/// The options of map, map_unordered and starmap (Python's timeout, chunksize and buffersize).
struct MapOptions {
  /// Measured from the call to map. When it runs out, dereferencing the map's iterator throws
  /// TimeoutError and the work not started is cancelled. nullopt: no timeout.
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;
  /// Items per task, for every executor (Python uses it for processes only). 0: chosen
  /// automatically, so that a chunk takes about 200 us, from the time the items run so far took;
  /// a process pool without buffersize cuts n / (4 x max_workers) items per chunk at the call.
  std::size_t chunksize = 1;
  /// 0: the call reads all the input and submits all the work (Python's default). N: at most N
  /// chunks in flight; the input is read lazily, one more chunk each time the iterator finishes
  /// one, so infinite ranges are allowed.
  std::size_t buffersize = 0;
};

}  // namespace concurrent::futures
