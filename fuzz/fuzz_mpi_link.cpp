// The header of an MPI pool's messages (src/mpi/link.hpp, read_header): every message between a
// client and its worker ranks starts with it, and it says whether a payload follows in messages of
// its own and how large. A header no sender makes is refused with std::runtime_error, before any
// memory is made for the payload it announces.
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

#include "fuzz_support.hpp"
#include "mpi/link.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace mpi = cf::detail::mpi;
  fuzz::refused_only_as<std::runtime_error>([&] {
    const mpi::Header header = mpi::read_header(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
    if (header.separate > 1) fuzz::fail("a header with bad flags was accepted");
    if (header.separate && header.size <= mpi::kInlinePayload) {
      fuzz::fail("a separate payload small enough to be inline was accepted");
    }
  });
  return 0;
}
