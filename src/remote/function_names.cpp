// Function pointers by name (see detail/entry.hpp).
//
// Function names come from the ELF symbol tables of the program and of the shared objects it has
// loaded (.symtab when present, else .dynsym), read once per process. A stripped program still
// has lambdas and function objects; its function pointers get a SerializationError that says so.
#include "remote/function_names.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "concurrent/futures/detail/entry.hpp"

namespace concurrent::futures::detail {

namespace {

// One loaded object's function symbols, read in place from its file (mapped, never copied): a
// lookup scans them. Scans are rare (each result is cached), while building hash maps of every
// symbol would cost every new worker process milliseconds before its first task.
struct ObjectSymbols {
  std::string path;  // "" for the main program
  std::uintptr_t bias = 0;
  const Elf64_Sym* symbols = nullptr;
  std::size_t count = 0;
  const char* strings = nullptr;
  std::size_t strings_size = 0;

  const char* name_of(const Elf64_Sym& sym) const {
    return sym.st_name < strings_size ? strings + sym.st_name : nullptr;
  }
  static bool is_function(const Elf64_Sym& sym) {
    return ELF64_ST_TYPE(sym.st_info) == STT_FUNC && sym.st_shndx != SHN_UNDEF && sym.st_value != 0;
  }
};

// Maps the ELF file at `file` (loaded at `bias`) and finds its symbol table: .symtab when
// present, else .dynsym. The mapping stays for the life of the process.
bool map_symbols(const std::string& file, std::uintptr_t bias, ObjectSymbols& out) {
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    close(fd);
    return false;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return false;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  const bool valid = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
                     eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_shoff > 0 &&
                     eh->e_shoff + std::size_t{eh->e_shnum} * sizeof(Elf64_Shdr) <= size;
  if (valid) {
    const auto* sections = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    const Elf64_Shdr* table = nullptr;
    for (int pass = 0; pass < 2 && table == nullptr; ++pass) {
      const std::uint32_t wanted = pass == 0 ? SHT_SYMTAB : SHT_DYNSYM;
      for (unsigned i = 0; i < eh->e_shnum; ++i) {
        if (sections[i].sh_type == wanted) table = &sections[i];
      }
    }
    if (table != nullptr && table->sh_link < eh->e_shnum &&
        table->sh_offset + table->sh_size <= size &&
        sections[table->sh_link].sh_offset + sections[table->sh_link].sh_size <= size) {
      const Elf64_Shdr& strtab = sections[table->sh_link];
      out.path = file;
      out.bias = bias;
      out.symbols = reinterpret_cast<const Elf64_Sym*>(base + table->sh_offset);
      out.count = table->sh_size / sizeof(Elf64_Sym);
      out.strings = reinterpret_cast<const char*>(base + strtab.sh_offset);
      out.strings_size = strtab.sh_size;
      return true;
    }
  }
  munmap(map, size);
  return false;
}

class SymbolTables {
 public:
  static SymbolTables& instance() {
    static SymbolTables* tables = new SymbolTables;  // never destroyed
    return *tables;
  }

  // (object, symbol) naming exactly the function at `address`; false if none.
  bool name(std::uintptr_t address, std::string& object, std::string& symbol) {
    std::lock_guard lock(mu_);
    load();
    for (const ObjectSymbols& o : objects_) {
      if (address < o.bias) continue;
      const std::uintptr_t value = address - o.bias;
      for (std::size_t i = 0; i < o.count; ++i) {
        const Elf64_Sym& sym = o.symbols[i];
        if (sym.st_value != value || !ObjectSymbols::is_function(sym)) continue;
        const char* n = o.name_of(sym);
        if (n == nullptr || *n == '\0') continue;
        object = o.path;
        symbol = n;
        return true;
      }
    }
    return false;
  }

  void lock() { mu_.lock(); }
  void unlock() { mu_.unlock(); }

  // The function named (object, symbol); 0 if unknown, 1 if ambiguous.
  std::uintptr_t find(const std::string& object, const std::string& symbol) {
    std::lock_guard lock(mu_);
    const auto cached = found_.find(object + '\0' + symbol);
    if (cached != found_.end()) return cached->second;
    load();
    std::uintptr_t result = 0;
    for (const ObjectSymbols& o : objects_) {
      if (o.path != object) continue;
      for (std::size_t i = 0; i < o.count; ++i) {
        const Elf64_Sym& sym = o.symbols[i];
        if (!ObjectSymbols::is_function(sym)) continue;
        const char* n = o.name_of(sym);
        if (n == nullptr || symbol != n) continue;
        const std::uintptr_t address = o.bias + sym.st_value;
        if (result != 0 && result != address) {
          result = 1;  // two functions of that name
          break;
        }
        result = address;
      }
      break;
    }
    found_.emplace(object + '\0' + symbol, result);
    return result;
  }

 private:
  void load() {
    if (loaded_) return;
    loaded_ = true;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* self) {
          auto& objects = static_cast<SymbolTables*>(self)->objects_;
          const std::string path = info->dlpi_name != nullptr ? info->dlpi_name : "";
          ObjectSymbols o;
          if (map_symbols(path.empty() ? "/proc/self/exe" : path, info->dlpi_addr, o)) {
            o.path = path;
            objects.push_back(std::move(o));
          }
          return 0;
        },
        this);
  }

  std::mutex mu_;
  bool loaded_ = false;
  std::vector<ObjectSymbols> objects_;
  std::unordered_map<std::string, std::uintptr_t> found_;  // "object\0symbol" -> find()
};

// Lookups by address repeat for every task: cache them.
struct NameCache {
  std::shared_mutex mu;
  std::unordered_map<const void*, std::pair<std::string, std::string>> names;
};

NameCache& name_cache() {
  static NameCache* cache = new NameCache;
  return *cache;
}

}  // namespace

void lock_function_names() noexcept {
  SymbolTables::instance().lock();
  name_cache().mu.lock();
}

void unlock_function_names() noexcept {
  name_cache().mu.unlock();
  SymbolTables::instance().unlock();
}

void write_function(codec::Writer& w, const void* function) {
  NameCache& cache = name_cache();
  {
    std::shared_lock lock(cache.mu);
    const auto it = cache.names.find(function);
    if (it != cache.names.end()) {
      codec::write(w, it->second.first);
      codec::write(w, it->second.second);
      return;
    }
  }
  std::string object;
  std::string symbol;
  if (!SymbolTables::instance().name(reinterpret_cast<std::uintptr_t>(function), object, symbol)) {
    throw SerializationError(
        "cannot send a function pointer to a worker process: no function symbol starts at its "
        "address (is the program stripped?); pass a lambda instead");
  }
  if (SymbolTables::instance().find(object, symbol) != reinterpret_cast<std::uintptr_t>(function)) {
    throw SerializationError("cannot send function '" + symbol +
                             "' to a worker process: its name is ambiguous in the program; give "
                             "it a unique name or pass a lambda instead");
  }
  codec::write(w, object);
  codec::write(w, symbol);
  std::unique_lock lock(cache.mu);
  cache.names.try_emplace(function, std::move(object), std::move(symbol));
}

const void* read_function(codec::Reader& r) {
  std::string object;
  std::string symbol;
  codec::read(r, object);
  codec::read(r, symbol);
  const std::uintptr_t address = SymbolTables::instance().find(object, symbol);
  if (address == 0) {
    throw SerializationError("the worker process has no function '" + symbol + "'");
  }
  if (address == 1) {
    throw SerializationError("the function name '" + symbol + "' is ambiguous in the worker");
  }
  return reinterpret_cast<const void*>(address);
}

}  // namespace concurrent::futures::detail
