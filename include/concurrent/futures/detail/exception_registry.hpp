// The exception types a program registered with cf::register_exception (exception_transport.hpp):
// how a worker writes the data of one and how the parent rebuilds it. The codec
// (src/remote/codec.cpp, write_exception/read_exception) looks them up; this header holds what
// the user's template instantiation needs.
//
// Every process running the program registers the same types during static initialisation, keyed
// like the entries of entry.hpp (a hash of the mangled type name and of where the type's rebuild
// function sits in its object file), so a key written by a worker names the same type in the
// parent whatever the start method.
#pragma once

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>

#include <cereal/access.hpp>
#include <cereal/details/traits.hpp>

#include "concurrent/futures/detail/codec.hpp"

namespace concurrent::futures::detail {

// Writes E's data (what its cereal functions write) for an exception whose dynamic type is
// exactly E.
using SaveExceptionFn = void (*)(codec::Writer& w, const std::exception_ptr& error);
// Rebuilds an E from its original what() and the data its save function wrote.
using RebuildExceptionFn = std::exception_ptr (*)(codec::Reader& r, const std::string& what);

// Registers `type`; false if another type already has its key (the key is then unusable for both)
// or memory ran out. Idempotent for the same type and functions.
bool register_exception_type(const std::type_info& type, SaveExceptionFn save,
                             RebuildExceptionFn rebuild) noexcept;

// E's data travels through E's cereal functions, as for any value. Without them only what() does.
template <class E>
inline constexpr bool exception_has_data_v = codec::CerealType<E>;

// Cereal functions for one direction only: the data could not make the round trip.
template <class E>
inline constexpr bool exception_half_serializable_v =
    !exception_has_data_v<E> &&
    (cereal::traits::is_output_serializable<E, cereal::BinaryOutputArchive>::value ||
     cereal::traits::is_input_serializable<E, codec::CerealInput>::value);

template <class E>
void save_exception(codec::Writer& w, const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const E& e) {
    if constexpr (exception_has_data_v<E>) codec::write(w, e);
  }
  // Any other type (never the case: the codec calls this for exactly E) propagates, and the codec
  // sends the exception as RemoteError.
}

// Puts the original message back into the std::runtime_error or std::logic_error that holds it
// (assigning the base subobject leaves E's own members alone). A type that overrides what() is
// not affected by it.
template <class E>
void restore_message(E& e, const std::string& what) {
  if constexpr (std::is_convertible_v<E*, std::runtime_error*>) {
    static_cast<std::runtime_error&>(e) = std::runtime_error(what);
  }
  if constexpr (std::is_convertible_v<E*, std::logic_error*>) {
    static_cast<std::logic_error&>(e) = std::logic_error(what);
  }
}

// The three ways of exception_transport.hpp, in its order.
template <class E>
std::exception_ptr rebuild_exception(codec::Reader& r, const std::string& what) {
  if constexpr (std::is_default_constructible_v<E>) {
    E e{};  // value-initialised: members E's data does not cover hold no garbage
    if constexpr (exception_has_data_v<E>) codec::read(r, e);
    restore_message(e, what);
    return std::make_exception_ptr(std::move(e));
  } else if constexpr (std::is_constructible_v<E, const std::string&>) {
    E e(what);
    if constexpr (exception_has_data_v<E>) codec::read(r, e);
    return std::make_exception_ptr(std::move(e));
  } else {
    // No public default constructor and none from a std::string: E needs a private default
    // constructor and `friend class cereal::access;` (a compile error here says it has neither).
    const std::unique_ptr<E> e(cereal::access::construct<E>());
    if constexpr (exception_has_data_v<E>) codec::read(r, *e);
    restore_message(*e, what);
    return std::make_exception_ptr(*e);
  }
}

}  // namespace concurrent::futures::detail
