// The entry table (see detail/entry.hpp): every process running the program registers the same
// entries during static initialisation, so a key from the parent finds the same entry in a worker.
#include <dlfcn.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "concurrent/futures/detail/entry.hpp"
#include "remote/exception_registry.hpp"
#include "remote/function_table.hpp"
#include "remote/program_key.hpp"

namespace concurrent::futures::detail {

namespace {

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

struct EntryTable {
  std::mutex mu;
  std::unordered_map<std::uint64_t, std::pair<std::string, EntryFn>> entries;
};

EntryTable& entry_table() {
  static EntryTable* table = new EntryTable;  // never destroyed: used during static init/exit
  return *table;
}

}  // namespace

std::uint64_t program_key(const char* type_name, const void* code) noexcept {
  std::uint64_t key = fnv1a(type_name);
  Dl_info info{};
  if (dladdr(code, &info) != 0 && info.dli_fbase != nullptr) {
    const auto offset =
        reinterpret_cast<std::uintptr_t>(code) - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
    key ^= (static_cast<std::uint64_t>(offset) + 0x9e3779b97f4a7c15ULL) * 1099511628211ULL;
  }
  return key;
}

std::uint64_t register_entry(const char* type_name, EntryFn fn) noexcept {
  // Two entries in different files can have the same mangled name (lambdas in same-named
  // functions of anonymous namespaces): the entry function's place tells them apart.
  const std::uint64_t key = program_key(type_name, reinterpret_cast<const void*>(fn));
  EntryTable& table = entry_table();
  std::lock_guard lock(table.mu);
  auto [it, inserted] = table.entries.try_emplace(key, type_name, fn);
  // Two different entries with one key would be ambiguous: make the key unusable.
  if (!inserted && it->second.second != fn) it->second.second = nullptr;
  return key;
}

EntryFn find_entry(std::uint64_t key) noexcept {
  EntryTable& table = entry_table();
  std::lock_guard lock(table.mu);
  const auto it = table.entries.find(key);
  return it == table.entries.end() ? nullptr : it->second.second;
}

// Always in this order (entries, function table, exception types): none is taken while holding a
// later one, so the guard cannot deadlock with a thread that uses one table.
ForkGuard::ForkGuard() {
  entry_table().mu.lock();
  lock_function_table();
  lock_exception_types();
}

ForkGuard::~ForkGuard() {
  unlock_exception_types();
  unlock_function_table();
  entry_table().mu.unlock();
}

}  // namespace concurrent::futures::detail
