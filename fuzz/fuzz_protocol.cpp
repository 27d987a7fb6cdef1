// The protocol's payloads (remote/protocol.hpp, detail/entry.hpp, detail/task.hpp): the worker
// config of the handshake, the replies the parent reads for each kind of result, the task requests
// a worker reads (run_task, with the entries of fuzz_support.hpp: an unknown key must run nothing
// and come back as an error reply), and function pointers' places. The first byte picks one
// (fuzz::ProtocolInput). A function read from the bytes is never called here: the rule checked is
// that decoding refuses what it cannot name, with SerializationError.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include <concurrent/futures/detail/entry.hpp>
#include <concurrent/futures/detail/task.hpp>

#include "fuzz_support.hpp"
#include "remote/protocol.hpp"

namespace {

namespace codec = cf::detail::codec;
namespace remote = cf::detail::remote;

// Named by a config's initializer and a function place; never called.
void initializer_never_called() { fuzz::fail("an initializer read from the bytes was called"); }

std::vector<std::byte> bytes_of(const codec::Buffer& b) {
  return std::vector<std::byte>(b.data(), b.data() + b.size());
}

// The entries a task request may name (odr-used here, so registered), by the index its byte picks.
const std::uint64_t kEntries[] = {
    cf::detail::CallEntry<fuzz::Add, std::int32_t, std::int32_t>::key,
    cf::detail::CallEntry<fuzz::Join, std::vector<std::string>, std::string>::key,
    cf::detail::CallEntry<fuzz::Describe, fuzz::Record>::key,
    cf::detail::CallEntry<fuzz::Fails, std::string>::key,
    cf::detail::ChunkEntry<fuzz::Square, std::tuple<std::int32_t>, std::int64_t>::key,
};

template <class R>
void read_reply(const std::byte* data, std::size_t size) {
  cf::Future<R> future;
  fuzz::refused_only_as<cf::SerializationError>([&] {
    codec::Reader r(data, size);
    cf::detail::complete_from_reply(future, r);
  });
  if (future.done()) {
    try {
      if constexpr (std::is_void_v<R>) {
        future.result();
      } else {
        (void)future.result();
      }
    } catch (const std::exception&) {
    } catch (...) {
      fuzz::fail("a reply completed a future with a non-std exception");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  using fuzz::ProtocolInput;
  const auto input = static_cast<ProtocolInput>(bytes[0] % static_cast<int>(ProtocolInput::count));
  const auto* data = reinterpret_cast<const std::byte*>(bytes + 1);
  const std::size_t n = size - 1;
  switch (input) {
    case ProtocolInput::config: {
      static const std::vector<std::byte> real =
          bytes_of(remote::encode(remote::WorkerConfig{3, &initializer_never_called}));
      const std::vector<std::byte> config =
          n > 0 && (data[0] & std::byte{1}) != std::byte{0}
              ? fuzz::overlay(real, static_cast<std::uint8_t>(data[0]), data + 1, n - 1)
              : std::vector<std::byte>(data, data + n);
      fuzz::refused_only_as<cf::SerializationError>(
          [&] { (void)remote::decode_config(std::span<const std::byte>(config)); });
      break;
    }
    case ProtocolInput::reply_int:
      read_reply<std::int64_t>(data, n);
      break;
    case ProtocolInput::reply_string:
      read_reply<std::string>(data, n);
      break;
    case ProtocolInput::reply_strings:
      read_reply<std::vector<std::string>>(data, n);
      break;
    case ProtocolInput::reply_void:
      read_reply<void>(data, n);
      break;
    case ProtocolInput::reply_record:
      read_reply<fuzz::Record>(data, n);
      break;
    case ProtocolInput::task: {
      if (n == 0) break;
      const std::uint64_t key = kEntries[static_cast<std::size_t>(data[0]) % std::size(kEntries)];
      std::vector<std::byte> request(sizeof key);
      std::memcpy(request.data(), &key, sizeof key);
      request.insert(request.end(), data + 1, data + n);
      // Never throws: whatever the request, the reply is a value or an error the parent reads.
      const codec::Buffer reply = remote::run_task(request);
      if (reply.size() == 0) fuzz::fail("run_task gave an empty reply");
      // An unknown key runs nothing: an error reply, never a call.
      const codec::Buffer unknown = remote::run_task(std::span<const std::byte>(data, n));
      if (unknown.size() == 0) fuzz::fail("run_task gave an empty reply");
      break;
    }
    case ProtocolInput::function: {
      static const std::vector<std::byte> real = [] {
        codec::Buffer b;
        codec::Writer w(b);
        cf::detail::write_function(w, reinterpret_cast<const void*>(&initializer_never_called));
        return bytes_of(b);
      }();
      const std::vector<std::byte> place =
          n > 0 && (data[0] & std::byte{1}) != std::byte{0}
              ? fuzz::overlay(real, static_cast<std::uint8_t>(data[0]), data + 1, n - 1)
              : std::vector<std::byte>(data, data + n);
      fuzz::refused_only_as<cf::SerializationError>([&] {
        codec::Reader r(place.data(), place.size());
        (void)cf::detail::read_function(r);
      });
      break;
    }
    case ProtocolInput::count:
      break;
  }
  return 0;
}
