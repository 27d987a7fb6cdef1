// What the fuzz targets share: the rule every decoder keeps (bytes it cannot read are an exception
// of the kind it documents, never a crash, a hang or another exception), and the types whose
// encodings the targets and make_corpus.cpp agree on.
#pragma once

#include <array>
#include <chrono>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

namespace fuzz {

// A finding: libFuzzer reports the abort, with the input that caused it.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs `decode`; a std::exception of type Allowed is a refused input, anything else a finding.
template <class Allowed, class Decode>
bool refused_only_as(Decode&& decode) {
  try {
    decode();
    return true;
  } catch (const Allowed&) {
    return false;
  } catch (const std::exception& e) {
    fail(std::string("a decoder threw something other than it documents: ") + e.what());
  } catch (...) {
    fail("a decoder threw a non-std exception");
  }
}

// A user's cereal type: its std members are written by cereal's own support, so their lengths
// are cereal's (see detail/codec.hpp, CerealInput).
struct Record {
  std::string name;
  std::vector<std::int32_t> counts;
  std::map<std::string, std::int64_t> prices;
  std::set<std::string> tags;
  std::optional<std::vector<std::string>> notes;
  std::variant<std::int32_t, std::string> code;
  std::array<std::uint16_t, 3> dims{};
  std::pair<std::string, bool> owner;
  std::tuple<std::int32_t, std::string, double> origin;
  std::chrono::milliseconds age{0};
  std::vector<std::vector<std::uint8_t>> blocks;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, counts, prices, tags, notes, code, dims, owner, origin, age, blocks);
  }
};

// A cereal type holding another, with save/load split.
struct Envelope {
  std::uint32_t version = 0;
  std::vector<Record> records;
  template <class Archive>
  void save(Archive& ar) const {
    ar(version, records);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(version, records);
  }
};

// Copied bytewise (an aggregate of fixed-size fields).
struct Point {
  std::int32_t x;
  std::int32_t y;
  double weight;
  char tag[6];
};

enum class Color : std::uint8_t { red, green, blue };

// Containers whose elements encode to no bytes (codec.hpp, kEmptyElementBytes): a cereal type
// saved as nothing, and a cereal type holding a vector of them.
struct Empty {
  template <class Archive>
  void serialize(Archive& /*ar*/) {}
};
struct Shelf {
  std::vector<Empty> slots;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(slots, label);
  }
};

// The kinds fuzz_values decodes, by the index its first byte selects.
using Nested = std::map<
    std::string,
    std::vector<std::optional<std::tuple<std::int32_t, std::variant<std::string, double>>>>>;
using ValueTypes =
    std::tuple<std::int32_t, std::uint64_t, double, bool, Color, std::string,
               std::vector<std::int32_t>, std::vector<bool>, std::vector<std::string>,
               std::vector<std::vector<std::int32_t>>, std::map<std::string, std::int32_t>,
               std::unordered_map<std::int32_t, std::string>, std::set<std::string>,
               std::unordered_set<std::int64_t>, std::tuple<std::int32_t, std::string, double>,
               std::pair<std::string, std::vector<std::int32_t>>, std::optional<std::string>,
               std::variant<std::int32_t, std::string, std::vector<std::int32_t>>,
               std::array<std::string, 3>, std::chrono::milliseconds, std::complex<double>, Nested,
               Record, Envelope, Point, std::vector<Point>, std::optional<bool>,
               std::vector<Record>, std::vector<std::monostate>,
               std::vector<std::vector<std::monostate>>, std::vector<Shelf>>;
inline constexpr std::size_t kValueTypes = std::tuple_size_v<ValueTypes>;

// Whether encoding a decoded T gives back the same bytes (no hash-ordered container in it).
template <class T>
inline constexpr bool stable_encoding_v = true;
template <class K, class V>
inline constexpr bool stable_encoding_v<std::unordered_map<K, V>> = false;
template <class K>
inline constexpr bool stable_encoding_v<std::unordered_set<K>> = false;
// A copy of a struct need not keep its padding bytes.
template <>
inline constexpr bool stable_encoding_v<Point> = false;
template <>
inline constexpr bool stable_encoding_v<std::vector<Point>> = false;

}  // namespace fuzz

namespace fuzz {

// Callables whose entries (detail/entry.hpp) the protocol target runs: empty function objects,
// named so that their entries' keys are the same in every program that includes this header
// (make_corpus writes requests for them). Harmless whatever arguments they get.
struct Add {
  std::int64_t operator()(std::int32_t a, std::int32_t b) const {
    return std::int64_t{a} + std::int64_t{b};
  }
};
struct Join {
  std::string operator()(const std::vector<std::string>& parts, const std::string& glue) const {
    std::string joined;
    for (const std::string& part : parts) {
      if (!joined.empty()) joined += glue;
      joined += part;
    }
    return joined;
  }
};
struct Describe {
  std::size_t operator()(const Record& record) const {
    return record.name.size() + record.counts.size() + record.tags.size();
  }
};
struct Fails {
  int operator()(const std::string& why) const { throw std::invalid_argument(why); }
};
struct Square {
  std::int64_t operator()(std::int32_t x) const { return std::int64_t{x} * x; }
};

// The protocol target's first byte: which decoder reads the rest.
enum class ProtocolInput : std::uint8_t {
  config,     // remote::decode_config: the worker config of the handshake (see overlay)
  reply_int,  // a call's reply as the parent reads it, by result type
  reply_string,
  reply_strings,
  reply_void,
  reply_record,
  task,      // remote::run_task: a task request as a worker reads it, after the key of
             // the entry its next byte picks (kEntries in fuzz_protocol.cpp)
  function,  // read_function: a function pointer's place (see overlay; never called)
  count
};

// config and function: the next byte's bit 0 says whether the rest is the encoding itself (0) or
// is laid over this program's own encoding of a config with an initializer, of a function
// pointer (1: xor, longer input appends; bit 1 also cuts it to the input's length). Function
// places hold this program's build ID, which a fuzzer would not guess.
inline std::vector<std::byte> overlay(std::vector<std::byte> base, std::uint8_t how,
                                      const std::byte* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    if (i < base.size()) {
      base[i] ^= data[i];
    } else {
      base.push_back(data[i]);
    }
  }
  if ((how & 2) != 0 && size < base.size()) base.resize(size);
  return base;
}

}  // namespace fuzz

namespace fuzz {

// Exception types registered with cf::register_exception (exception_transport.hpp).

// With data of its own and no public default constructor.
struct ValidationError : std::runtime_error {
  ValidationError(std::string field_name, int error_code)
      : std::runtime_error("invalid " + field_name),
        field(std::move(field_name)),
        code(error_code) {}
  std::string field;
  int code = 0;
  std::vector<std::string> path;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(field, code, path);
  }

 private:
  friend class cereal::access;
  ValidationError() : std::runtime_error("") {}
};
inline const bool validation_error_registered = cf::register_exception<ValidationError>();

// Registered, without data: rebuilt from its what().
struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};
inline const bool not_found_registered = cf::register_exception<NotFound>();

}  // namespace fuzz
