// The registered exception types (see detail/exception_registry.hpp), as the codec and the fork
// guard see them.
#pragma once

#include <cstdint>
#include <optional>
#include <typeinfo>

#include "concurrent/futures/detail/exception_registry.hpp"

namespace concurrent::futures::detail {

struct RegisteredException {
  std::uint64_t key;
  SaveExceptionFn save;
  RebuildExceptionFn rebuild;
};

// By exact dynamic type (in a worker, to write one) and by key (in the parent, to rebuild it).
// nullopt when this process has no such type, or the key is ambiguous. Never throw.
std::optional<RegisteredException> find_exception_type(const std::type_info& type) noexcept;
std::optional<RegisteredException> find_exception_type(std::uint64_t key) noexcept;

// Taken and released around fork() by ForkGuard, so a child never inherits the table locked.
void lock_exception_types() noexcept;
void unlock_exception_types() noexcept;

}  // namespace concurrent::futures::detail
