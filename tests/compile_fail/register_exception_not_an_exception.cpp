// expect-error: register_exception<E>: E must derive from std::exception
//
// exception_transport.hpp: only std::exception types can be registered (their what() travels
// with them, and RemoteError carries it when they cannot be rebuilt).
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

struct ErrorCode {
  int value = 0;
};

inline const bool error_code_registered = cf::register_exception<ErrorCode>();
