// Values of every kind the codec encodes (detail/codec.hpp): the arguments a worker reads and the
// results the parent reads. The first byte picks the type (fuzz::ValueTypes), the rest is read as
// its encoding. A decoder may refuse bytes only with SerializationError, and must not allocate
// more than the bytes can hold (make fuzz runs with -malloc_limit_mb). What it accepts must encode
// again, read back, and (for types without hash order) encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <typeinfo>
#include <utility>

#include "fuzz_support.hpp"

namespace {

namespace codec = cf::detail::codec;

template <class T>
void decode_as(const std::byte* data, std::size_t size) {
  T value{};
  const bool accepted = fuzz::refused_only_as<cf::SerializationError>([&] {
    codec::Reader r(data, size);
    codec::read(r, value);
  });
  if (!accepted) return;
  codec::Buffer again;
  {
    codec::Writer w(again);
    codec::write(w, value);
  }
  T back{};
  const bool reread = fuzz::refused_only_as<cf::SerializationError>([&] {
    codec::Reader r(again.data(), again.size());
    codec::read(r, back);
    if (r.remaining() != 0) fuzz::fail("a re-encoded value left bytes unread");
  });
  if (!reread)
    fuzz::fail(std::string("a value read once cannot be read again: ") + typeid(T).name());
  if constexpr (fuzz::stable_encoding_v<T>) {
    codec::Buffer twice;
    codec::Writer w(twice);
    codec::write(w, back);
    if (twice.size() != again.size() ||
        std::memcmp(twice.data(), again.data(), again.size()) != 0) {
      fuzz::fail(std::string("a value changed on its way back: ") + typeid(T).name());
    }
  }
}

template <std::size_t... I>
void decode_kind(std::size_t kind, const std::byte* data, std::size_t size,
                 std::index_sequence<I...>) {
  ((kind == I ? decode_as<std::tuple_element_t<I, fuzz::ValueTypes>>(data, size) : void()), ...);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t kind = data[0] % fuzz::kValueTypes;
  decode_kind(kind, reinterpret_cast<const std::byte*>(data + 1), size - 1,
              std::make_index_sequence<fuzz::kValueTypes>{});
  return 0;
}
