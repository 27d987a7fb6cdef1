// Function pointers across processes (write_function and read_function of detail/entry.hpp).
//
// A function pointer travels as the place of its function in the program, never as a name:
//
//   u8 1 (unwind entry), string object, u64 offset, u64 check
//
// `object` is "" for the main program (the first object dl_iterate_phdr reports) and otherwise
// the path the run-time linker loaded a shared object from; `offset` is the function's distance
// from that object's load address, which is the same in every process that loads the object.
// Both sides check the place against the object's own table of function starts, its
// .eh_frame_hdr (elf_object.hpp), which is mapped with the object and survives strip:
//  * the parent sends a pointer only if it is exactly the start of an entry of its object's table;
//  * the worker finds the same object among its own (an error if it has not loaded it), and calls
//    base + offset only if that is the start of an entry of its own table and `check` matches.
// So nothing read from a pipe is called unless the worker's own tables say a function starts
// there. `check` tells the worker it runs the same build of the object as the parent (a program
// rebuilt while running, or later a host with other libraries): a hash of the object's GNU build
// ID, which the linker derives from the whole file, or, for an object linked without one, of the
// function's first code bytes. The build ID comes first because it identifies the whole object
// (many functions share their first bytes: a prologue) and because a debugger's breakpoint in the
// parent rewrites code bytes but not the build ID.
//
// A function its object's table does not list (compiled with -fno-asynchronous-unwind-tables, or
// in a fully static program, which GCC links without .eh_frame_hdr) travels by symbol name
// instead, as long as the symbol tables that strip removes are there (function_symbols.hpp):
//
//   u8 2 (symbol), string object, string symbol
//
// Each process looks each function up once: the parent caches what it wrote for each pointer,
// the worker the address it found for each place. Both caches sit behind one mutex, held on the
// path of every submit and every task only for a hash lookup (entries are never erased, so what
// a lookup found stays valid after the unlock). A lookup that misses runs without it (it reads the
// objects under the run-time linker's own lock, in dl_iterate_phdr, which keeps them mapped
// meanwhile) and takes it again only to store its result, so our lock is never held while the
// run-time linker's is awaited. It is a plain mutex, not a shared_mutex, because ForkGuard holds
// it across fork() and the child unlocks it: glibc's rwlock remembers its writer's thread id,
// which is another one in the child, so a child could never release a shared_mutex.
#include "remote/function_table.hpp"

#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "concurrent/futures/detail/codec.hpp"
#include "concurrent/futures/detail/entry.hpp"
#include "concurrent/futures/errors.hpp"
#include "remote/elf_object.hpp"
#include "remote/function_symbols.hpp"

namespace concurrent::futures::detail {

namespace {

enum class FunctionEncoding : std::uint8_t { unwind_entry = 1, symbol = 2 };

// Without a build ID, this many of the function's first code bytes (fewer at the end of its
// segment) are hashed.
constexpr std::size_t kCodeBytesChecked = 16;

std::uint64_t fnv1a(std::uint64_t seed, std::span<const std::byte> bytes) {
  std::uint64_t h = seed;
  for (const std::byte b : bytes) {
    h ^= static_cast<std::uint8_t>(b);
    h *= 1099511628211ULL;
  }
  return h;
}

// The check of the function at `function` in `object` (see the file comment). The two kinds hash
// from different seeds, so a build ID never matches a code hash.
std::uint64_t check_of(const dl_phdr_info& object, std::uintptr_t function,
                       const CodeSegment& segment) {
  const std::span<const std::byte> id = build_id_of(object);
  if (!id.empty()) return fnv1a(14695981039346656037ULL, id);
  const std::size_t n = std::min<std::uintptr_t>(kCodeBytesChecked, segment.end - function);
  return fnv1a(0x6a09e667f3bcc909ULL, {reinterpret_cast<const std::byte*>(function), n});
}

std::string object_name(std::string_view object) {
  return object.empty() ? std::string("the program") : std::string(object);
}

std::string hex(std::uint64_t value) {
  char text[2 + 16 + 1];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

// The loaded objects as they were when this process was forked (see lock_function_table): a
// forked child reads them here and never takes the run-time linker's lock, which another thread
// of the parent may have held at the fork (unwinding an exception takes it), and which the
// child's only thread would then wait for for ever.
struct LoadedObjects {
  std::vector<dl_phdr_info> infos;
  std::vector<std::string> names;  // what infos[i].dlpi_name points to
  bool forked = false;             // this process is a fork child: use the snapshot
  pid_t taken_by = 0;              // the process that took it
};

LoadedObjects& loaded_objects() {
  static auto* objects = new LoadedObjects;  // never destroyed: children read it to the end
  return *objects;
}

// Calls visit(object, is_main_program) on each loaded object until it returns true. The
// run-time linker keeps every object mapped until dl_iterate_phdr returns; visit must not throw.
template <class Visit>
void for_each_object(Visit&& visit) {
  if (const LoadedObjects& snapshot = loaded_objects(); snapshot.forked) {
    bool first = true;
    for (const dl_phdr_info& info : snapshot.infos) {
      if (visit(info, std::exchange(first, false))) return;
    }
    return;
  }
  struct State {
    Visit& visit;
    bool first = true;
  } state{visit};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto& s = *static_cast<State*>(data);
        const bool main_program = std::exchange(s.first, false);
        return s.visit(*info, main_program) ? 1 : 0;
      },
      &state);
}

// What the parent finds out about a pointer it is asked to send.
struct Located {
  bool in_code = false;  // in an executable segment of some loaded object
  std::string object;
  std::uint64_t offset = 0;
  bool has_table = false;
  std::string why_no_table;
  bool starts_entry = false;
  std::uint64_t check = 0;
};

Located locate(std::uintptr_t address) {
  Located found;
  for_each_object([&](const dl_phdr_info& info, bool main_program) noexcept {
    const std::optional<CodeSegment> segment = code_segment_of(info, address);
    if (!segment) return false;
    try {
      found.in_code = true;
      found.object = main_program || info.dlpi_name == nullptr ? "" : info.dlpi_name;
      found.offset = address - info.dlpi_addr;
      const std::optional<UnwindTable> table = unwind_table_of(info, found.why_no_table);
      found.has_table = table.has_value();
      if (table && table->starts_at(address)) {
        found.starts_entry = true;
        found.check = check_of(info, address, *segment);
      }
    } catch (...) {
      found.in_code = false;  // out of memory for a string: reported as not found
    }
    return true;
  });
  return found;
}

// What is written for `function`, or SerializationError saying why it cannot be sent.
codec::Buffer encode_function(const void* function) {
  const auto address = reinterpret_cast<std::uintptr_t>(function);
  const Located found = locate(address);
  codec::Buffer encoding;
  codec::Writer w(encoding);
  if (found.starts_entry) {
    w.pod(FunctionEncoding::unwind_entry);
    codec::write(w, found.object);
    w.pod(found.offset);
    w.pod(found.check);
    return encoding;
  }
  const std::string prefix = "cannot send a function pointer to a worker process: ";
  if (!found.in_code) {
    throw SerializationError(prefix +
                             "its address is not in the code of the program or of a library it "
                             "has loaded");
  }
  const std::optional<FunctionSymbol> named = function_symbol_at(function);
  if (!named) {
    const std::string where = object_name(found.object);
    if (found.has_table) {
      throw SerializationError(
          prefix + "no function starts at its address in " + where +
          ": no entry of its unwind table (.eh_frame_hdr) starts there (a pointer into a "
          "function, or code compiled without unwind tables) and no symbol does either (is it "
          "stripped?); pass a lambda instead");
    }
    throw SerializationError(prefix + where + " has no table of function starts (" +
                             found.why_no_table +
                             ") and no symbol starts at that address (is it stripped?); pass a "
                             "lambda instead");
  }
  if (find_function_symbol(named->object, named->symbol) != address) {
    throw SerializationError("cannot send function '" + named->symbol +
                             "' to a worker process: its name is ambiguous in the program; give "
                             "it a unique name or pass a lambda instead");
  }
  w.pod(FunctionEncoding::symbol);
  codec::write(w, named->object);
  codec::write(w, named->symbol);
  return encoding;
}

// What the worker finds at a place the parent sent.
struct Resolution {
  enum class Status { not_loaded, not_in_code, no_table, not_an_entry, other_build, found };
  Status status = Status::not_loaded;
  std::string why_no_table;
  std::uintptr_t address = 0;
};

Resolution resolve(std::string_view object, std::uint64_t offset, std::uint64_t check) {
  using Status = Resolution::Status;
  Resolution r;
  for_each_object([&](const dl_phdr_info& info, bool main_program) noexcept {
    if (object.empty() != main_program) return false;
    if (!main_program && (info.dlpi_name == nullptr || object != info.dlpi_name)) return false;
    // Wraps for a corrupt offset: the segment check below then fails.
    const std::uintptr_t address = info.dlpi_addr + static_cast<std::uintptr_t>(offset);
    const std::optional<CodeSegment> segment = code_segment_of(info, address);
    if (!segment) {
      r.status = Status::not_in_code;
      return true;
    }
    std::optional<UnwindTable> table;
    try {
      table = unwind_table_of(info, r.why_no_table);
    } catch (...) {  // out of memory for the reason
    }
    if (!table) {
      r.status = Status::no_table;
    } else if (!table->starts_at(address)) {
      r.status = Status::not_an_entry;
    } else if (check_of(info, address, *segment) != check) {
      r.status = Status::other_build;
    } else {
      r.status = Status::found;
      r.address = address;
    }
    return true;
  });
  return r;
}

const void* checked_address(std::string_view object, std::uint64_t offset, std::uint64_t check) {
  using Status = Resolution::Status;
  const Resolution r = resolve(object, offset, check);
  const std::string where = object_name(object);
  switch (r.status) {
    case Status::found:
      return reinterpret_cast<const void*>(r.address);
    case Status::not_loaded:
      throw SerializationError("the worker process has not loaded " + where +
                               ", which holds the function sent");
    case Status::not_in_code:
    case Status::not_an_entry:
      throw SerializationError("no function starts at offset " + hex(offset) + " of " + where +
                               " in the worker process, so it cannot run the function sent");
    case Status::no_table:
      throw SerializationError("the worker process cannot check the function sent: " + where +
                               " has no table of function starts (" + r.why_no_table + ")");
    case Status::other_build:
      throw SerializationError("the worker process runs another build of " + where +
                               " than the parent, so it cannot run the function sent");
  }
  throw SerializationError("the function sent cannot be found");
}

struct Resolved {
  std::string object;
  std::uint64_t check;
  const void* address;
};

struct FunctionCache {
  std::mutex mu;
  // Parent: what was written for each function pointer.
  std::unordered_map<const void*, codec::Buffer> encodings;
  // Worker: the address found for each place, by offset (rarely more than one object per offset).
  std::unordered_map<std::uint64_t, std::vector<Resolved>> places;
};

FunctionCache& function_cache() {
  static FunctionCache* cache = new FunctionCache;  // never destroyed: used until exit
  return *cache;
}

const void* read_unwind_entry(codec::Reader& r) {
  const std::size_t length = r.size();
  const std::string_view object(reinterpret_cast<const char*>(r.take(length)), length);
  const auto offset = r.pod<std::uint64_t>();
  const auto check = r.pod<std::uint64_t>();
  FunctionCache& cache = function_cache();
  {
    std::lock_guard lock(cache.mu);
    const auto it = cache.places.find(offset);
    if (it != cache.places.end()) {
      for (const Resolved& known : it->second) {
        if (known.check == check && known.object == object) return known.address;
      }
    }
  }
  const void* address = checked_address(object, offset, check);
  std::lock_guard lock(cache.mu);
  std::vector<Resolved>& known = cache.places[offset];
  const bool cached = std::any_of(known.begin(), known.end(), [&](const Resolved& k) {
    return k.check == check && k.object == object;
  });
  if (!cached) known.push_back(Resolved{std::string(object), check, address});
  return address;
}

const void* read_symbol(codec::Reader& r) {
  std::string object;
  std::string symbol;
  codec::read(r, object);
  codec::read(r, symbol);
  const std::uintptr_t address = find_function_symbol(object, symbol);
  if (address == 0) {
    throw SerializationError("the worker process has no function '" + symbol + "'");
  }
  if (address == 1) {
    throw SerializationError("the function name '" + symbol + "' is ambiguous in the worker");
  }
  return reinterpret_cast<const void*>(address);
}

}  // namespace

void lock_function_table() noexcept {
  function_cache().mu.lock();
  lock_function_symbols();
  // The snapshot a fork child will read (ForkGuard serializes the forks that take it).
  LoadedObjects& objects = loaded_objects();
  if (objects.forked) return;  // a fork server: its children keep the snapshot it got
  try {
    objects.infos.clear();
    objects.names.clear();
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
          auto& o = *static_cast<LoadedObjects*>(data);
          o.infos.push_back(*info);
          o.names.emplace_back(info->dlpi_name != nullptr ? info->dlpi_name : "");
          return 0;
        },
        &objects);
    for (std::size_t i = 0; i < objects.infos.size(); ++i) {
      objects.infos[i].dlpi_name = objects.names[i].c_str();
    }
    objects.taken_by = getpid();
  } catch (...) {
    objects.infos.clear();  // out of memory: the child goes to the run-time linker itself
    objects.names.clear();
    objects.taken_by = 0;
  }
}

void unlock_function_table() noexcept {
  LoadedObjects& objects = loaded_objects();
  if (objects.taken_by != 0 && objects.taken_by != getpid()) objects.forked = true;  // the child
  unlock_function_symbols();
  function_cache().mu.unlock();
}

void write_function(codec::Writer& w, const void* function) {
  FunctionCache& cache = function_cache();
  const codec::Buffer* known = nullptr;
  {
    std::lock_guard lock(cache.mu);
    const auto it = cache.encodings.find(function);
    if (it != cache.encodings.end()) known = &it->second;
  }
  if (known != nullptr) {
    w.bytes(known->data(), known->size());
    return;
  }
  codec::Buffer encoding = encode_function(function);
  w.bytes(encoding.data(), encoding.size());
  std::lock_guard lock(cache.mu);
  cache.encodings.try_emplace(function, std::move(encoding));
}

const void* read_function(codec::Reader& r) {
  const auto encoding = r.pod<FunctionEncoding>();
  switch (encoding) {
    case FunctionEncoding::unwind_entry:
      return read_unwind_entry(r);
    case FunctionEncoding::symbol:
      return read_symbol(r);
  }
  throw SerializationError("corrupt message: unknown function encoding " +
                           std::to_string(static_cast<unsigned>(encoding)));
}

}  // namespace concurrent::futures::detail
