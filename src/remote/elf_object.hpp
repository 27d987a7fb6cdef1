// What the library reads from a loaded ELF object's own memory (the program or a shared object,
// as dl_iterate_phdr reports it) to know where its functions start, even when it is stripped.
//
// Strip removes .symtab, but not what the program needs at run time. Among that is the
// .eh_frame_hdr section (program header PT_GNU_EH_FRAME): a table sorted by address with one
// entry per FDE, the unwind description of one piece of code, which the C++ unwinder
// binary-searches to throw an exception. Every function the compiler emitted with unwind tables
// (GCC's and Clang's default on x86-64 and AArch64 Linux) starts an FDE; so does each cold part
// GCC splits off a function ("f.cold"), which no C++ expression can point to. The run-time linker
// maps the table with the object, so reading it costs no file access.
//
// Everything here reads memory of an object the caller got from dl_iterate_phdr, and only while
// its callback runs: the run-time linker then keeps the object mapped. Every read is bounded by
// the object's own program headers; bytes this reader does not know give a reason, never a read
// out of bounds.
#pragma once

#include <link.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace concurrent::futures::detail {

// The binary-search table of an .eh_frame_hdr, read in place (nothing is copied).
class UnwindTable {
 public:
  // The table of the .eh_frame_hdr that starts at `hdr` and spans `size` bytes; nullopt, with the
  // reason in `why`, when it has none or one in an encoding this reader does not know. Linkers
  // (GNU ld, gold, lld, mold) write version 1 with entries DW_EH_PE_datarel | sdata4; any
  // datarel entry of 4 or 8 bytes, signed or not, is read.
  static std::optional<UnwindTable> parse(const std::byte* hdr, std::size_t size, std::string& why);

  // True if an FDE starts exactly at `address`: a binary search, about log2(size()) steps.
  bool starts_at(std::uintptr_t address) const noexcept;
  std::size_t size() const noexcept { return count_; }

 private:
  UnwindTable(const std::byte* hdr, const std::byte* entries, std::size_t count,
              std::uint8_t encoding)
      : hdr_(hdr), entries_(entries), count_(count), encoding_(encoding) {}
  std::int64_t start_of(std::size_t i) const noexcept;

  const std::byte* hdr_;      // entries are relative to the header's first byte (datarel)
  const std::byte* entries_;  // count_ pairs (FDE start, FDE address)
  std::size_t count_;
  std::uint8_t encoding_;
};

// The range [begin, end) of the executable segment of `object` that holds `address`, or nullopt.
struct CodeSegment {
  std::uintptr_t begin;
  std::uintptr_t end;
};
std::optional<CodeSegment> code_segment_of(const dl_phdr_info& object, std::uintptr_t address);

// The table of function starts of `object` (its PT_GNU_EH_FRAME); nullopt and the reason in
// `why` when it has none (GCC links fully static programs without one) or one not understood.
std::optional<UnwindTable> unwind_table_of(const dl_phdr_info& object, std::string& why);

// The object's GNU build ID (NT_GNU_BUILD_ID: a hash the linker makes of its output, kept by
// strip), or an empty span when it has none (linked with --build-id=none).
std::span<const std::byte> build_id_of(const dl_phdr_info& object);

}  // namespace concurrent::futures::detail
