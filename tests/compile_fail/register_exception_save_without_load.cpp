// expect-error: register_exception<E>: E's cereal functions can save it but not load it
//
// exception_transport.hpp: an exception type whose cereal functions go one way only could not
// bring its data back to the parent, so registering it is a compile-time error rather than an
// exception that silently arrives without its data.
#include <stdexcept>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

struct SavedOnly : std::runtime_error {
  using std::runtime_error::runtime_error;
  int code = 0;
  template <class Archive>
  void save(Archive& ar) const {
    ar(code);
  }
};

inline const bool saved_only_registered = cf::register_exception<SavedOnly>();
