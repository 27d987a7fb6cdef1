// Keys for what every process running the program registers during static initialisation (the
// entries of detail/entry.hpp, the exception types of exception_transport.hpp): the parent and its
// workers compute the same key for the same thing, whatever the start method, so a key sent over a
// channel names the same thing at the other end.
#pragma once

#include <cstdint>

namespace concurrent::futures::detail {

// A hash of `type_name` (a mangled name) and of where `code` (a function of the registered thing)
// sits in its own object file. The name alone is not enough: types in anonymous namespaces of two
// files can share one. The offset is the same in every process running the program (ASLR moves
// whole objects); it is only hashed, never used as an address.
std::uint64_t program_key(const char* type_name, const void* code) noexcept;

}  // namespace concurrent::futures::detail
