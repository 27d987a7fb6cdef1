// Reading a loaded ELF object's function starts and build ID (see elf_object.hpp).
#include "remote/elf_object.hpp"

#include <elf.h>

#include <cstring>

namespace concurrent::futures::detail {

namespace {

// DWARF pointer encodings (DW_EH_PE_*, LSB "Linux Standard Base Core Specification", 10.6).
constexpr std::uint8_t kOmit = 0xff;
constexpr std::uint8_t kFormatMask = 0x0f;
constexpr std::uint8_t kApplicationMask = 0x70;
constexpr std::uint8_t kIndirect = 0x80;
constexpr std::uint8_t kAbsptr = 0x00;
constexpr std::uint8_t kUdata2 = 0x02;
constexpr std::uint8_t kUdata4 = 0x03;
constexpr std::uint8_t kUdata8 = 0x04;
constexpr std::uint8_t kSdata2 = 0x0a;
constexpr std::uint8_t kSdata4 = 0x0b;
constexpr std::uint8_t kSdata8 = 0x0c;
constexpr std::uint8_t kDatarel = 0x30;

// The size of a value in a fixed-size format; 0 for LEB128 and unknown formats.
std::size_t format_size(std::uint8_t encoding) {
  switch (encoding & kFormatMask) {
    case kAbsptr:
      return sizeof(void*);
    case kUdata2:
    case kSdata2:
      return 2;
    case kUdata4:
    case kSdata4:
      return 4;
    case kUdata8:
    case kSdata8:
      return 8;
    default:
      return 0;
  }
}

// A value in a fixed-size format (format_size(encoding) != 0), signed ones sign-extended. An
// udata8 beyond 2^63 wraps: no object spans that much, so order within one table is kept.
// One T from p (unaligned), widened.
template <class T>
std::int64_t load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return static_cast<std::int64_t>(v);
}

std::int64_t read_value(const std::byte* p, std::uint8_t encoding) {
  switch (encoding & kFormatMask) {
    case kUdata2:
      return load<std::uint16_t>(p);
    case kSdata2:
      return load<std::int16_t>(p);
    case kUdata4:
      return load<std::uint32_t>(p);
    case kSdata4:
      return load<std::int32_t>(p);
    default: {  // absptr (on a 64-bit target), udata8, sdata8
      std::uint64_t v = 0;
      std::memcpy(&v, p, format_size(encoding));
      return static_cast<std::int64_t>(v);
    }
  }
}

std::string hex(unsigned value) {
  static constexpr char digits[] = "0123456789abcdef";
  return std::string("0x") + digits[(value >> 4) & 0xf] + digits[value & 0xf];
}

// True if [begin, begin + size) lies in one loadable segment of `object`'s file image (so it is
// mapped and was written by the linker, not zero-filled).
bool in_loaded_file_image(const dl_phdr_info& object, std::uintptr_t begin, std::size_t size) {
  for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = object.dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_R) == 0) continue;
    const std::uintptr_t seg = object.dlpi_addr + ph.p_vaddr;
    if (begin >= seg && begin - seg <= ph.p_filesz && size <= ph.p_filesz - (begin - seg)) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::optional<UnwindTable> UnwindTable::parse(const std::byte* hdr, std::size_t size,
                                              std::string& why) {
  if (size < 4) {
    why = ".eh_frame_hdr is truncated";
    return std::nullopt;
  }
  const auto version = static_cast<std::uint8_t>(hdr[0]);
  const auto frame_pointer_encoding = static_cast<std::uint8_t>(hdr[1]);
  const auto count_encoding = static_cast<std::uint8_t>(hdr[2]);
  const auto table_encoding = static_cast<std::uint8_t>(hdr[3]);
  if (version != 1) {
    why = ".eh_frame_hdr version " + std::to_string(version) + " is unknown";
    return std::nullopt;
  }
  if (count_encoding == kOmit || table_encoding == kOmit) {
    why = ".eh_frame_hdr has no search table";
    return std::nullopt;
  }
  // The pointer to .eh_frame is only skipped, but its size must be known to find what follows.
  std::size_t frame_pointer_size = 0;
  if (frame_pointer_encoding != kOmit) {
    frame_pointer_size = format_size(frame_pointer_encoding);
    if (frame_pointer_size == 0 || (frame_pointer_encoding & kIndirect) != 0) {
      why = ".eh_frame_hdr encodes its .eh_frame pointer as " + hex(frame_pointer_encoding) +
            ", which this reader does not know";
      return std::nullopt;
    }
  }
  const std::size_t count_size = format_size(count_encoding);
  if (count_size == 0 || (count_encoding & (kApplicationMask | kIndirect)) != 0) {
    why = ".eh_frame_hdr encodes its entry count as " + hex(count_encoding) +
          ", which this reader does not know";
    return std::nullopt;
  }
  const std::size_t value_size = format_size(table_encoding);
  if ((table_encoding & (kApplicationMask | kIndirect)) != kDatarel ||
      (value_size != 4 && value_size != 8) || (table_encoding & kFormatMask) == kAbsptr) {
    why = ".eh_frame_hdr encodes its search table as " + hex(table_encoding) +
          ", which this reader does not know";
    return std::nullopt;
  }
  std::size_t offset = 4 + frame_pointer_size;
  if (size < offset + count_size) {
    why = ".eh_frame_hdr is truncated";
    return std::nullopt;
  }
  const std::int64_t count = read_value(hdr + offset, count_encoding);
  offset += count_size;
  const std::size_t entry_size = 2 * value_size;
  if (count < 0 || static_cast<std::uint64_t>(count) > (size - offset) / entry_size) {
    why = ".eh_frame_hdr's search table runs past its end";
    return std::nullopt;
  }
  return UnwindTable(hdr, hdr + offset, static_cast<std::size_t>(count), table_encoding);
}

std::int64_t UnwindTable::start_of(std::size_t i) const noexcept {
  return read_value(entries_ + i * 2 * format_size(encoding_), encoding_);
}

bool UnwindTable::starts_at(std::uintptr_t address) const noexcept {
  // Unsigned subtraction wraps: an address below the header gives a negative distance.
  const auto wanted = static_cast<std::int64_t>(address - reinterpret_cast<std::uintptr_t>(hdr_));
  std::size_t low = 0;
  std::size_t high = count_;
  while (low < high) {
    const std::size_t mid = low + (high - low) / 2;
    const std::int64_t start = start_of(mid);
    if (start == wanted) return true;
    if (start < wanted) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return false;
}

std::optional<CodeSegment> code_segment_of(const dl_phdr_info& object, std::uintptr_t address) {
  for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = object.dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    const std::uintptr_t begin = object.dlpi_addr + ph.p_vaddr;
    if (address >= begin && address - begin < ph.p_memsz) {
      return CodeSegment{begin, begin + ph.p_memsz};
    }
  }
  return std::nullopt;
}

std::optional<UnwindTable> unwind_table_of(const dl_phdr_info& object, std::string& why) {
  for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = object.dlpi_phdr[i];
    if (ph.p_type != PT_GNU_EH_FRAME) continue;
    const std::uintptr_t begin = object.dlpi_addr + ph.p_vaddr;
    if (!in_loaded_file_image(object, begin, ph.p_memsz)) {
      why = "its .eh_frame_hdr is not in a loaded segment";
      return std::nullopt;
    }
    return UnwindTable::parse(reinterpret_cast<const std::byte*>(begin), ph.p_memsz, why);
  }
  why = "it has no .eh_frame_hdr (no PT_GNU_EH_FRAME program header)";
  return std::nullopt;
}

std::span<const std::byte> build_id_of(const dl_phdr_info& object) {
  for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = object.dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const std::uintptr_t begin = object.dlpi_addr + ph.p_vaddr;
    if (!in_loaded_file_image(object, begin, ph.p_filesz)) continue;
    // Notes are padded to 4 bytes, or to 8 in a segment aligned so (.note.gnu.property).
    const std::size_t align = ph.p_align == 8 ? 8 : 4;
    const auto pad = [align](std::uint64_t n) { return (n + align - 1) / align * align; };
    const auto* notes = reinterpret_cast<const std::byte*>(begin);
    std::uint64_t at = 0;
    while (ph.p_filesz - at >= sizeof(ElfW(Nhdr))) {
      ElfW(Nhdr) note;
      std::memcpy(&note, notes + at, sizeof note);
      const std::uint64_t name = at + sizeof note;
      const std::uint64_t desc = name + pad(note.n_namesz);
      const std::uint64_t next = desc + pad(note.n_descsz);
      if (next > ph.p_filesz) break;
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
          std::memcmp(notes + name, "GNU", 4) == 0 && note.n_descsz > 0) {
        return {notes + desc, note.n_descsz};
      }
      at = next;
    }
  }
  return {};
}

}  // namespace concurrent::futures::detail
