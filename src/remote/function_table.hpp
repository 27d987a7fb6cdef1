// Function pointers across processes (see detail/entry.hpp and function_table.cpp):
// write_function and read_function are declared in entry.hpp; this is what ForkGuard needs.
#pragma once

namespace concurrent::futures::detail {

// Taken and released around fork() by ForkGuard: the caches of function_table.cpp and the symbol
// tables of the fallback (function_symbols.hpp), so the child gets them with their locks free.
void lock_function_table() noexcept;
void unlock_function_table() noexcept;

}  // namespace concurrent::futures::detail
