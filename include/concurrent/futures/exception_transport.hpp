/// @file
/// `cf::register_exception<E>()`: a program's own exception types that cross a process boundary
/// as themselves.
///
/// An exception thrown by a process task is rethrown in the parent. cfutures rebuilds the
/// `<stdexcept>` family, `std::bad_alloc` and its own errors as themselves; any other type comes
/// back as cf::RemoteError (its demangled type name and its what()), so a
/// `catch (const ValidationError&)` that matches on a ThreadPoolExecutor would not match on a
/// ProcessPoolExecutor. Registering the type once, with one line at namespace scope, makes it
/// come back as itself with its data, as CPython's pickling of exceptions does:
/// @code
/// namespace app {
/// struct ValidationError : std::runtime_error {
///   ValidationError(const std::string& message, int code)
///       : std::runtime_error(message), code(code) {}
///   int code = 0;
///   template <class Archive>
///   void serialize(Archive& ar) { ar(code); }  // the data; the message travels anyway
///
///  private:
///   friend class cereal::access;  // lets cfutures default-construct it, as cereal would
///   ValidationError() : std::runtime_error("") {}
/// };
/// inline const bool validation_error_registered = cf::register_exception<ValidationError>();
/// }  // namespace app
/// @endcode
/// A type with no data of its own needs the registration line only:
/// @code
/// struct NotFound : std::runtime_error { using std::runtime_error::runtime_error; };
/// inline const bool not_found_registered = cf::register_exception<NotFound>();
/// @endcode
///
/// **What travels**: the exception's what(), and E's data as E's cereal functions (`serialize`,
/// or `save` and `load`) write it, exactly as for any serializable value. A type without cereal
/// functions sends its what() only: members beyond it arrive as E's constructor leaves them.
///
/// **How E is rebuilt** in the parent, the first of these that E allows:
///  1. E has a public default constructor: E is default-constructed, its cereal functions load
///     its data, and the message of its std::runtime_error or std::logic_error base, if it has
///     one, is set to the original what() (E's own members are left to its cereal functions).
///  2. E has a public constructor from a `std::string`: E(what), then its cereal functions load
///     its data. This is the case of `using std::runtime_error::runtime_error;`.
///  3. Otherwise, as 1 through a private default constructor that cereal may call: E declares
///     `friend class cereal::access;`, as cereal asks of its own types. A type without one does
///     not compile: the error leads to a comment in cfutures that says what is missing.
///
/// (cereal's `load_and_construct` is not used: cereal itself calls it only when loading
/// pointers.) The rebuilt exception's what() must equal the original one. When it does not (for
/// instance a constructor from a string that takes a path or a key rather than the message, in a
/// type without a public default constructor; or a what() that depends on data E's cereal
/// functions leave out), the exception comes back as RemoteError with a note saying so, never as
/// a wrong E.
///
/// **Matching** is by exact dynamic type, as for the types cfutures rebuilds itself: a type
/// derived from a registered one is not covered by its base's registration and comes back as
/// RemoteError (naming the derived type) until it is registered too. Registering a type cfutures
/// already rebuilds (std::runtime_error, cf::TimeoutError, ...) changes nothing. Exceptions on a
/// ThreadPoolExecutor never leave the process and need no registration.
///
/// **Where to register**: at namespace scope, so that it runs during static initialisation in
/// every process running the program: the parent, the workers `fork` and `forkserver` make from
/// it, and the workers `spawn` starts afresh (they run static initialisation before
/// cf::serve_if_worker). Best as an inline variable right after the type, in its header: every
/// file that throws or catches the type then brings its registration along. (A registration in a
/// file of a static library that nothing else uses is dropped by the linker, like any unused
/// object file; one made inside main, or in a library loaded with dlopen after start, is missing
/// in spawned workers.) Types are keyed by a hash of their mangled name and of where their
/// functions sit in the program, so the parent and its workers agree on keys whatever the start
/// method, and nothing received from a worker is used as an address.
///
/// **Failures never lose the exception**: if E's cereal functions throw while the worker sends it,
/// or the parent cannot rebuild it (its load throws or reads a different number of bytes than its
/// save wrote, the rebuilt what() differs, the parent has no such registration), the future fails
/// with the RemoteError it would have had without registration: E's demangled type name, and the
/// original what() followed by a note in brackets that says why. Bytes the library cannot read at
/// all (a corrupt reply) give SerializationError, as for values.
///
/// **Threads**: the worker writes E in the thread that ran the task; the parent rebuilds it in the
/// pool's dispatcher thread, or, for a map's items, in the thread that iterates the results. E's
/// constructors and cereal functions may run concurrently in several threads and must not wait
/// for the pool.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <exception>
#include <string>
#include <type_traits>
#include <typeinfo>

#include "concurrent/futures/detail/exception_registry.hpp"

namespace concurrent::futures {

/// Makes the exception type E cross a process boundary as itself (see the file comment). Call it
/// once per type, at namespace scope, to initialise a variable:
/// `inline const bool e_registered = cf::register_exception<E>();`. Thread-safe; registering a
/// type again changes nothing. Never throws.
///
/// @return true once E is registered; false if another type already holds E's key (E then keeps
///         coming back as RemoteError) or memory ran out.
template <class E>
bool register_exception() noexcept {
  static_assert(std::is_same_v<E, std::remove_cv_t<E>> && !std::is_reference_v<E>,
                "cf::register_exception<E>: E must be the exception's type itself (no cv, no &)");
  static_assert(std::is_class_v<E> && std::is_base_of_v<std::exception, E>,
                "cf::register_exception<E>: E must derive from std::exception (its what() travels "
                "with it)");
  static_assert(!std::is_abstract_v<E> && std::is_copy_constructible_v<E>,
                "cf::register_exception<E>: E must be a concrete, copyable exception type (it is "
                "rethrown in the parent)");
  static_assert(!detail::exception_half_serializable_v<E>,
                "cf::register_exception<E>: E's cereal functions can save it but not load it, or "
                "the other way round; its data could not travel");
  return detail::register_exception_type(typeid(E), &detail::save_exception<E>,
                                         &detail::rebuild_exception<E>);
}

}  // namespace concurrent::futures
