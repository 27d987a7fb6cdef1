/// @file
/// The exceptions cfutures throws, mirroring Python's concurrent.futures.
///
/// Every error derives from cf::Error (a std::runtime_error), so `catch (const cf::Error&)`
/// catches anything the library raises and `catch (const std::runtime_error&)` keeps working in
/// code that predates it. Each type is constructible from a message so user code may throw
/// them too.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <stdexcept>
#include <string>

namespace concurrent::futures {

/// The base of every error cfutures throws: a std::runtime_error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// `result()`/`exception()` of a cancelled future.
class CancelledError : public Error {
 public:
  CancelledError() : Error("the future was cancelled") {}
  using Error::Error;
};

/// A timeout given to result, exception, wait-style calls, as_completed or map ran out.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// `set_result`/`set_exception` on a future that is already done, or a state transition that the
/// state machine does not allow.
class InvalidStateError : public Error {
 public:
  using Error::Error;
};

/// An executor can no longer run work (base of BrokenThreadPool and BrokenProcessPool).
class BrokenExecutor : public Error {
 public:
  using Error::Error;
};

/// A thread pool's initializer threw.
class BrokenThreadPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

/// A worker process died abruptly, or its initializer failed.
class BrokenProcessPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

/// `submit`/`map` after `shutdown()`.
class ShutdownError : public Error {
 public:
  ShutdownError() : Error("cannot schedule new futures after shutdown") {}
  using Error::Error;
};

/// An argument, result or exception cannot cross a process boundary.
class SerializationError : public Error {
 public:
  using Error::Error;
};

/// A process task threw an exception whose type cannot be rebuilt in the parent. what() is the
/// original message; type_name() the demangled dynamic type of the original exception.
class RemoteError : public Error {
 public:
  /// The demangled type name of the original exception and its what().
  RemoteError(std::string type_name, const std::string& message)
      : Error(message), type_name_(std::move(type_name)) {}
  explicit RemoteError(const std::string& message) : Error(message) {}
  const std::string& type_name() const noexcept { return type_name_; }

 private:
  std::string type_name_;
};

}  // namespace concurrent::futures
