// Exception records (codec::read_exception): what the parent reads from an error reply or an
// init_failed message. Whatever the bytes, the result is an exception (the type the record names,
// a registered type rebuilt by its own functions, or RemoteError) or a SerializationError: a
// registered type's functions may run on the record's data, nothing else does.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

namespace {

namespace codec = cf::detail::codec;

// A registered type's record up to its data: the code, names and key this program writes for
// `sample`, so that the fuzzer reaches the type's own load (keys differ from program to program).
template <class E>
std::vector<std::byte> record_prefix(const E& sample) {
  codec::Buffer record;
  {
    codec::Writer w(record);
    codec::write_exception(w, std::make_exception_ptr(sample));
  }
  codec::Buffer data;
  if constexpr (cf::detail::exception_has_data_v<E>) {
    codec::Writer w(data);
    codec::write(w, sample);
  }
  const std::size_t prefix = record.size() - data.size() - sizeof(std::uint64_t);
  return std::vector<std::byte>(record.data(), record.data() + prefix);
}

}  // namespace

// The first byte: 0, a whole record as it comes; 1 and 2, the data of a registered type
// (ValidationError, NotFound) after this program's own prefix for it.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  static const std::vector<std::byte> validation_prefix =
      record_prefix(fuzz::ValidationError("field", 7));
  static const std::vector<std::byte> not_found_prefix = record_prefix(fuzz::NotFound("missing"));
  std::vector<std::byte> input;
  const int mode = bytes[0] % 3;
  if (mode != 0) {
    input = mode == 1 ? validation_prefix : not_found_prefix;
    const std::uint64_t length = size - 1;
    const auto* l = reinterpret_cast<const std::byte*>(&length);
    input.insert(input.end(), l, l + sizeof length);
  }
  input.insert(input.end(), reinterpret_cast<const std::byte*>(bytes + 1),
               reinterpret_cast<const std::byte*>(bytes + size));
  std::exception_ptr error;
  fuzz::refused_only_as<cf::SerializationError>([&] {
    codec::Reader r(input.data(), input.size());
    error = codec::read_exception(r);
    if (!error) fuzz::fail("read_exception returned no exception");
  });
  if (!error) return 0;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    const std::string what = e.what();  // every rebuilt exception has a readable what()
    (void)what;
  } catch (...) {
    fuzz::fail("a record rebuilt as something that is not a std::exception");
  }
  return 0;
}
