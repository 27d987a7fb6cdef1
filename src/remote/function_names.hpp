// Function pointers by name (see detail/entry.hpp): write_function and read_function are
// declared there; this is what the entry table needs to make fork safe.
#pragma once

namespace concurrent::futures::detail {

// Taken and released around fork() by ForkGuard: the symbol tables and the name cache.
void lock_function_names() noexcept;
void unlock_function_names() noexcept;

}  // namespace concurrent::futures::detail
