// Functions by symbol name: the fallback of function_table.cpp for a function that its object's
// unwind table does not list (code compiled with -fno-asynchronous-unwind-tables, or a fully
// static program, which GCC links without .eh_frame_hdr). It needs the symbol tables that strip
// removes, so a stripped program has no fallback.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace concurrent::futures::detail {

struct FunctionSymbol {
  std::string object;  // "" for the main program, else the shared object's path
  std::string symbol;
};

// A symbol of a function that starts exactly at `address`, if the symbol tables have one. The
// tables (.symtab when present, else .dynsym) are read from the objects' files on first use.
std::optional<FunctionSymbol> function_symbol_at(const void* address);

// The address of the function that `symbol` names in `object`: 0 if none does, 1 if two
// different functions have that name (it cannot say which one was meant).
std::uintptr_t find_function_symbol(const std::string& object, const std::string& symbol);

// Taken and released around fork() (see function_table.hpp).
void lock_function_symbols() noexcept;
void unlock_function_symbols() noexcept;

}  // namespace concurrent::futures::detail
