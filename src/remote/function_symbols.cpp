// Functions by symbol name (see function_symbols.hpp).
//
// Function names come from the ELF symbol tables of the program and of the shared objects it has
// loaded (.symtab when present, else .dynsym), read once per process.
#include "remote/function_symbols.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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

}  // namespace

std::optional<FunctionSymbol> function_symbol_at(const void* address) {
  FunctionSymbol named;
  if (!SymbolTables::instance().name(reinterpret_cast<std::uintptr_t>(address), named.object,
                                     named.symbol)) {
    return std::nullopt;
  }
  return named;
}

std::uintptr_t find_function_symbol(const std::string& object, const std::string& symbol) {
  return SymbolTables::instance().find(object, symbol);
}

void lock_function_symbols() noexcept { SymbolTables::instance().lock(); }

void unlock_function_symbols() noexcept { SymbolTables::instance().unlock(); }

}  // namespace concurrent::futures::detail
