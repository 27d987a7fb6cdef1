// The table of registered exception types (detail/exception_registry.hpp): filled during static
// initialisation, read by the codec in workers (by type) and in the parent (by key).
#include "remote/exception_registry.hpp"

#include <mutex>
#include <typeindex>
#include <unordered_map>

#include "remote/program_key.hpp"

namespace concurrent::futures::detail {

namespace {

struct ExceptionTable {
  // Held only to look up or insert, never while a type's functions run (they are user code).
  std::mutex mu;
  std::unordered_map<std::type_index, RegisteredException> by_type;
  // A key two types claim maps to nullopt: usable by neither.
  std::unordered_map<std::uint64_t, std::optional<RegisteredException>> by_key;
};

ExceptionTable& exception_table() {
  static ExceptionTable* table = new ExceptionTable;  // never destroyed: used during static init
  return *table;
}

bool same(const RegisteredException& a, const RegisteredException& b) {
  return a.key == b.key && a.save == b.save && a.rebuild == b.rebuild;
}

}  // namespace

bool register_exception_type(const std::type_info& type, SaveExceptionFn save,
                             RebuildExceptionFn rebuild) noexcept {
  try {
    const RegisteredException entry{
        program_key(type.name(), reinterpret_cast<const void*>(rebuild)), save, rebuild};
    ExceptionTable& table = exception_table();
    std::lock_guard lock(table.mu);
    auto [at_key, new_key] = table.by_key.try_emplace(entry.key, entry);
    if (!new_key && !(at_key->second && same(*at_key->second, entry))) {
      at_key->second.reset();
      return false;
    }
    // The same type registered from two shared objects has two keys (its functions sit in two
    // places); a worker writes the first one, and the parent knows both.
    table.by_type.try_emplace(std::type_index(type), entry);
    return true;
  } catch (...) {
    return false;  // out of memory during static initialisation: the type stays a RemoteError
  }
}

std::optional<RegisteredException> find_exception_type(const std::type_info& type) noexcept {
  ExceptionTable& table = exception_table();
  std::lock_guard lock(table.mu);
  const auto it = table.by_type.find(std::type_index(type));
  if (it == table.by_type.end()) return std::nullopt;
  // Its key may have become ambiguous since: then it is not sent as itself.
  const auto at_key = table.by_key.find(it->second.key);
  if (at_key == table.by_key.end() || !at_key->second) return std::nullopt;
  return it->second;
}

std::optional<RegisteredException> find_exception_type(std::uint64_t key) noexcept {
  ExceptionTable& table = exception_table();
  std::lock_guard lock(table.mu);
  const auto it = table.by_key.find(key);
  return it == table.by_key.end() ? std::nullopt : it->second;
}

void lock_exception_types() noexcept { exception_table().mu.lock(); }
void unlock_exception_types() noexcept { exception_table().mu.unlock(); }

}  // namespace concurrent::futures::detail
