// The codec (detail/codec.hpp, src/remote/codec.cpp) on its own, without a worker process: round
// trips of every kind of value docs/reference.md §4.2 lists, which types are serializable, Buffers
// that move to a memfd, corrupt input, and exceptions. One test at the end checks a user's cereal
// type through a real ProcessPoolExecutor.
//
// The only library header included is the umbrella one, on purpose: a user's cereal type whose
// serialize() writes std members must compile with nothing else (no cereal/types/*.hpp), and
// that is what this file checks by compiling (detail/codec.hpp comes with the umbrella header).
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

// Types whose demangled names the tests check, so in a named namespace.
namespace codec_test {

class CustomError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Derives from a <stdexcept> type without being one: not rebuilt as std::logic_error.
class CustomLogicError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace codec_test

namespace {

namespace codec = cf::detail::codec;
using cftest::kDeadlock;

// --- values ---------------------------------------------------------------------------------

enum class Color : std::uint8_t { red = 1, green = 2, blue = 3 };
enum Plain { kZero, kOne, kBig = 1 << 20 };

// Trivially copyable, no cereal functions: copied bytewise.
struct Sample {
  int id;
  double weight;
  char tag[6];
};

using cftest::Marked;

// A user's cereal type whose serialize() writes std members, with no cereal/types header in
// sight (see the file comment).
struct Inventory {
  std::string name;
  std::vector<int> counts;
  std::map<std::string, int> prices;
  std::optional<int> discount;
  std::variant<int, std::string> code;
  std::array<int, 3> dims{};
  std::pair<std::string, int> owner;
  std::tuple<int, std::string, double> origin;
  std::set<std::string> tags;
  std::unordered_map<std::string, int> stock;
  std::chrono::milliseconds shelf_life{0};

  template <class Archive>
  void serialize(Archive& archive) {
    archive(name, counts, prices, discount, code, dims, owner, origin, tags, stock, shelf_life);
  }
  bool operator==(const Inventory&) const = default;
};

Inventory sample_inventory() {
  Inventory inv;
  inv.name = "warehouse 7";
  inv.counts = {3, 1, 4, 1, 5};
  inv.prices = {{"apple", 30}, {"pear", 45}};
  inv.discount = 15;
  inv.code = std::string("A-113");
  inv.dims = {2, 3, 5};
  inv.owner = {"ada", 36};
  inv.origin = {7, "harbour", 0.25};
  inv.tags = {"cold", "dry"};
  inv.stock = {{"apple", 120}, {"pear", 0}};
  inv.shelf_life = std::chrono::milliseconds(86'400'000);
  return inv;
}

// A cereal type holding a vector: its length is cereal's, not the codec's.
struct Readings {
  std::vector<std::uint64_t> values;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(values);
  }
};

// A cereal type whose data is one bool.
struct Flagged {
  bool flag = false;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(flag);
  }
};

// A cereal type with nothing to write: each one encodes to zero bytes.
struct Stateless {
  std::string cache;  // rebuilt on demand, never sent
  template <class Archive>
  void serialize(Archive& /*archive*/) {}
};

// A cereal type holding a vector of elements that are saved as nothing.
struct Shelf {
  std::vector<Stateless> slots;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(slots);
  }
};

// A cereal type saved as nothing, large in memory: kEmptyElementBytes holds few of them.
struct Blank {
  char scratch[4096];
  template <class Archive>
  void serialize(Archive& /*archive*/) {}
};
constexpr std::size_t kBlanksAllowed = codec::kEmptyElementBytes / sizeof(Blank);
// Small ones are charged kEmptyElementMinCharge each: the allowance holds this many.
constexpr std::size_t kSmallEmptiesAllowed =
    codec::kEmptyElementBytes / codec::kEmptyElementMinCharge;

// Not serializable: neither trivially copyable nor a cereal type.
struct Opaque {
  std::string text;
};

// --- helpers --------------------------------------------------------------------------------

template <class T>
codec::Buffer encode(const T& value) {
  codec::Buffer buffer;
  codec::Writer w(buffer);
  codec::write(w, value);
  return buffer;
}

template <class T>
T decode(const std::byte* data, std::size_t size) {
  codec::Reader r(data, size);
  T value{};
  codec::read(r, value);
  EXPECT_EQ(r.remaining(), 0u) << "the reader left bytes of " << typeid(T).name();
  return value;
}

template <class T>
T round_trip(const T& value) {
  const codec::Buffer buffer = encode(value);
  return decode<T>(buffer.data(), buffer.size());
}

// Bytes to read back, assembled by hand (corrupt messages).
class Bytes {
 public:
  template <class T>
  Bytes& pod(const T& value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& zeros(std::size_t n) {
    bytes_.resize(bytes_.size() + n);
    return *this;
  }
  const std::byte* data() const { return bytes_.data(); }
  std::size_t size() const { return bytes_.size(); }

 private:
  std::vector<std::byte> bytes_;
};

template <class T>
void expect_corrupt(const std::byte* data, std::size_t size, const char* what) {
  codec::Reader r(data, size);
  T value{};
  EXPECT_THROW(codec::read(r, value), cf::SerializationError)
      << what << " read as " << typeid(T).name();
}

// Every proper prefix of value's encoding is refused.
template <class T>
void expect_every_prefix_refused(const T& value) {
  const codec::Buffer buffer = encode(value);
  ASSERT_GT(buffer.size(), 0u);
  for (std::size_t cut = 0; cut < buffer.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(buffer.size()));
    expect_corrupt<T>(buffer.data(), cut, "a truncated encoding");
  }
}

std::exception_ptr exception_round_trip(const std::exception_ptr& error) {
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    codec::write_exception(w, error);
  }
  codec::Reader r(buffer.data(), buffer.size());
  std::exception_ptr back = codec::read_exception(r);
  EXPECT_EQ(r.remaining(), 0u);
  return back;
}

// The exception comes back as exactly E, with the same what().
template <class E>
void expect_rebuilt_as_itself(const E& original) {
  SCOPED_TRACE(cf::detail::demangle(typeid(E)));
  const std::exception_ptr back = exception_round_trip(std::make_exception_ptr(original));
  ASSERT_TRUE(back);
  try {
    std::rethrow_exception(back);
  } catch (const std::exception& e) {
    EXPECT_EQ(typeid(e), typeid(E)) << "came back as " << cf::detail::demangle(typeid(e));
    EXPECT_STREQ(e.what(), original.what());
  } catch (...) {
    ADD_FAILURE() << "came back as something that is not a std::exception";
  }
}

// The exception comes back as a RemoteError; returns it (type_name() empty if it did not).
cf::RemoteError expect_remote_error(const std::exception_ptr& original) {
  const std::exception_ptr back = exception_round_trip(original);
  try {
    std::rethrow_exception(back);
  } catch (const cf::RemoteError& e) {
    EXPECT_EQ(typeid(e), typeid(cf::RemoteError));
    return e;
  } catch (...) {
    ADD_FAILURE() << "not a RemoteError: " << cf::detail::exception_type_name(back);
  }
  return cf::RemoteError("", "");
}

std::size_t open_descriptor_count() {
  std::size_t n = 0;
  for (int fd = 0; fd < 4096; ++fd) n += fcntl(fd, F_GETFD) != -1 ? 1 : 0;
  return n;
}

std::string descriptor_target(int fd) {
  char target[256] = {};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string();
}

// --- round trips (docs/reference.md §4.2) --------------------------------------------------------

TEST(CodecTest, ArithmeticValuesRoundTripWithTheirExactBits) {
  EXPECT_EQ(round_trip(0), 0);
  EXPECT_EQ(round_trip(std::numeric_limits<int>::min()), std::numeric_limits<int>::min());
  EXPECT_EQ(round_trip(std::numeric_limits<std::uint64_t>::max()),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(round_trip(std::int8_t{-7}), std::int8_t{-7});
  EXPECT_EQ(round_trip('z'), 'z');
  EXPECT_EQ(round_trip(true), true);
  EXPECT_EQ(round_trip(false), false);
  EXPECT_EQ(round_trip(-1.5e300), -1.5e300);
  EXPECT_EQ(round_trip(0.1f), 0.1f);
  EXPECT_EQ(round_trip(std::numeric_limits<double>::denorm_min()),
            std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(encode(std::int32_t{5}).size(), sizeof(std::int32_t));
  EXPECT_EQ(encode(1.0).size(), sizeof(double));
}

TEST(CodecTest, EnumsRoundTripAsTheirUnderlyingBytes) {
  EXPECT_EQ(round_trip(Color::blue), Color::blue);
  EXPECT_EQ(round_trip(kBig), kBig);
  EXPECT_EQ(encode(Color::green).size(), sizeof(Color));
}

TEST(CodecTest, StringsRoundTripIncludingEmptyAndEmbeddedNul) {
  EXPECT_EQ(round_trip(std::string()), "");
  const std::string with_nul("h\xC3\xA9llo\0world", 12);
  EXPECT_EQ(round_trip(with_nul), with_nul);
  const std::string long_one(100'000, 'q');
  EXPECT_EQ(round_trip(long_one), long_one);
  // A length, then the characters.
  EXPECT_EQ(encode(std::string("abc")).size(), sizeof(std::uint64_t) + 3);
}

TEST(CodecTest, VectorOfTriviallyCopyableRoundTripsAsOneBlock) {
  const std::vector<int> v{1, -2, 3, 40000, -50000};
  EXPECT_EQ(round_trip(v), v);
  // One length, then the elements' bytes exactly as they are in memory.
  const codec::Buffer buffer = encode(v);
  ASSERT_EQ(buffer.size(), sizeof(std::uint64_t) + v.size() * sizeof(int));
  EXPECT_EQ(std::memcmp(buffer.data() + sizeof(std::uint64_t), v.data(), v.size() * sizeof(int)),
            0);
  const std::vector<Sample> samples{{1, 0.5, "a"}, {2, 1.5, "bb"}};
  EXPECT_EQ(encode(samples).size(), sizeof(std::uint64_t) + 2 * sizeof(Sample));
  const auto back = round_trip(samples);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].id, 2);
  EXPECT_STREQ(back[1].tag, "bb");
  EXPECT_TRUE(round_trip(std::vector<double>{}).empty());
}

// A map's item replies put a 1-byte status before each result, so a vector's elements often
// start at an address not aligned for them: short and long vectors are read back exactly, into a
// vector that already held other elements.
TEST(CodecTest, VectorReadFromUnalignedBytesHoldsExactlyItsElements) {
  for (const std::size_t n : {0, 1, 3, 31, 32, 33, 1000}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::vector<std::uint64_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = 0x0102030405060708ULL * (i + 1);
    const codec::Buffer buffer = encode(v);
    std::vector<std::byte> shifted(buffer.size() + 1);
    std::memcpy(shifted.data() + 1, buffer.data(), buffer.size());
    codec::Reader r(shifted.data() + 1, buffer.size());
    std::vector<std::uint64_t> back{7, 7, 7, 7, 7};
    codec::read(r, back);
    EXPECT_EQ(back, v);
    EXPECT_EQ(r.remaining(), 0u);
  }
}

TEST(CodecTest, VectorOfBoolRoundTripsOneBytePerElement) {
  std::vector<bool> v;
  for (int i = 0; i < 13; ++i) v.push_back(i % 3 == 0);  // not a multiple of 8
  EXPECT_EQ(round_trip(v), v);
  EXPECT_EQ(encode(v).size(), sizeof(std::uint64_t) + v.size());
  EXPECT_TRUE(round_trip(std::vector<bool>{}).empty());
}

TEST(CodecTest, VectorOfStringsRoundTripsElementByElement) {
  const std::vector<std::string> v{"a", "", "ccc", std::string(1000, 'x')};
  EXPECT_EQ(round_trip(v), v);
}

TEST(CodecTest, ArrayPairAndTupleRoundTrip) {
  EXPECT_EQ(round_trip(std::array<int, 4>{4, 3, 2, 1}), (std::array<int, 4>{4, 3, 2, 1}));
  EXPECT_EQ(round_trip(std::array<std::string, 2>{"x", "yz"}),
            (std::array<std::string, 2>{"x", "yz"}));
  EXPECT_EQ(round_trip(std::pair<int, std::string>{7, "seven"}),
            (std::pair<int, std::string>{7, "seven"}));
  EXPECT_EQ(round_trip(std::tuple<int, double, std::string>{1, 2.5, "x"}),
            (std::tuple<int, double, std::string>{1, 2.5, "x"}));
  EXPECT_EQ(round_trip(std::tuple<>{}), std::tuple<>{});
  // An array has no length of its own: its size is in its type.
  EXPECT_EQ(encode(std::array<std::int16_t, 3>{}).size(), 3 * sizeof(std::int16_t));
}

TEST(CodecTest, OptionalRoundTripsEngagedAndEmpty) {
  EXPECT_EQ(round_trip(std::optional<int>(5)), std::optional<int>(5));
  EXPECT_EQ(round_trip(std::optional<int>()), std::optional<int>());
  EXPECT_EQ(round_trip(std::optional<std::string>("here")), std::optional<std::string>("here"));
  EXPECT_EQ(round_trip(std::optional<std::string>()), std::optional<std::string>());
  // Reading an empty optional over an engaged one empties it.
  const codec::Buffer empty = encode(std::optional<int>());
  codec::Reader r(empty.data(), empty.size());
  std::optional<int> target = 9;
  codec::read(r, target);
  EXPECT_FALSE(target.has_value());
}

TEST(CodecTest, VariantRoundTripsEachAlternative) {
  using V = std::variant<int, std::string, std::vector<double>>;
  const V as_int = 3;
  const V as_string = std::string("alt");
  const V as_vector = std::vector<double>{0.5, 1.5};
  EXPECT_EQ(round_trip(as_int), as_int);
  EXPECT_EQ(round_trip(as_string), as_string);
  EXPECT_EQ(round_trip(as_vector), as_vector);
  // Two alternatives of one type stay apart.
  using Same = std::variant<int, int>;
  const Same second(std::in_place_index<1>, 8);
  const Same back = round_trip(second);
  EXPECT_EQ(back.index(), 1u);
  EXPECT_EQ(std::get<1>(back), 8);
}

TEST(CodecTest, MapsAndSetsRoundTrip) {
  const std::map<std::string, int> m{{"one", 1}, {"two", 2}};
  EXPECT_EQ(round_trip(m), m);
  const std::unordered_map<int, std::string> um{{1, "a"}, {2, "b"}, {3, "c"}};
  EXPECT_EQ(round_trip(um), um);
  EXPECT_EQ(round_trip(std::set<int>{3, 1, 2}), (std::set<int>{1, 2, 3}));
  const std::unordered_set<std::string> us{"x", "y", ""};
  EXPECT_EQ(round_trip(us), us);
  EXPECT_TRUE(round_trip(std::map<int, int>{}).empty());
  // Reading into a non-empty container replaces what it held.
  const codec::Buffer one = encode(std::set<int>{42});
  codec::Reader r(one.data(), one.size());
  std::set<int> target{1, 2, 3};
  codec::read(r, target);
  EXPECT_EQ(target, std::set<int>{42});
}

TEST(CodecTest, DurationsRoundTripWithTheirRepresentation) {
  EXPECT_EQ(round_trip(std::chrono::milliseconds(1234)), std::chrono::milliseconds(1234));
  EXPECT_EQ(round_trip(std::chrono::nanoseconds::max()), std::chrono::nanoseconds::max());
  EXPECT_EQ(round_trip(std::chrono::duration<double>(0.25)), std::chrono::duration<double>(0.25));
  EXPECT_EQ(encode(std::chrono::duration<std::int16_t, std::milli>(3)).size(),
            sizeof(std::int16_t));
}

TEST(CodecTest, NestedContainersRoundTrip) {
  using Inner = std::vector<std::optional<std::pair<int, std::string>>>;
  const std::map<std::string, Inner> nested{
      {"first", {std::pair<int, std::string>{1, "one"}, std::nullopt}},
      {"empty", {}},
  };
  EXPECT_EQ(round_trip(nested), nested);
  using Deep = std::tuple<std::variant<std::set<std::string>, std::array<std::vector<int>, 2>>,
                          std::unordered_map<std::string, std::vector<std::chrono::seconds>>>;
  const Deep deep{std::array<std::vector<int>, 2>{std::vector<int>{1, 2}, std::vector<int>{}},
                  {{"t", {std::chrono::seconds(1), std::chrono::seconds(2)}}}};
  EXPECT_EQ(round_trip(deep), deep);
  const std::vector<std::vector<std::vector<int>>> cube{{{1}, {}}, {}, {{2, 3}}};
  EXPECT_EQ(round_trip(cube), cube);
}

TEST(CodecTest, TriviallyCopyableStructRoundTripsBytewise) {
  const Sample in{7, 1.25, "tag"};
  EXPECT_EQ(encode(in).size(), sizeof(Sample));
  const Sample out = round_trip(in);
  EXPECT_EQ(out.id, 7);
  EXPECT_EQ(out.weight, 1.25);
  EXPECT_STREQ(out.tag, "tag");
}

TEST(CodecTest, CerealFunctionsWinOverTheBytewiseCopy) {
  const Marked back = round_trip(Marked{5, false});
  EXPECT_EQ(back.value, 5);
  EXPECT_TRUE(back.via_cereal);
  // Inside a vector, each element goes through its cereal functions too (no block copy).
  const auto many = round_trip(std::vector<Marked>{{1, false}, {2, false}});
  ASSERT_EQ(many.size(), 2u);
  EXPECT_TRUE(many[0].via_cereal);
  EXPECT_TRUE(many[1].via_cereal);
  EXPECT_EQ(many[1].value, 2);
}

TEST(CodecTest, CerealFunctionsWinInsideAVectorOfStdWrappers) {
  // std::array<Marked, N> and std::optional<Marked> are trivially copyable, but a vector of them
  // must still run Marked's own cereal functions (detail/codec.hpp: they win over the bytewise
  // copy), as std::vector<Marked> does.
  const auto arrays = round_trip(std::vector<std::array<Marked, 1>>{{Marked{1, false}}});
  ASSERT_EQ(arrays.size(), 1u);
  EXPECT_TRUE(arrays[0][0].via_cereal);
  const auto optionals = round_trip(std::vector<std::optional<Marked>>{Marked{2, false}});
  ASSERT_EQ(optionals.size(), 1u);
  ASSERT_TRUE(optionals[0].has_value());
  EXPECT_TRUE(optionals[0]->via_cereal);
}

TEST(CodecTest, VectorOfElementsEncodedInZeroBytesRoundTrips) {
  // Elements written one by one in zero bytes (std::monostate, which cereal's support writes as
  // nothing; a cereal type with nothing to save): the count exceeds the bytes that follow it.
  EXPECT_EQ(round_trip(std::vector<std::monostate>(3)).size(), 3u);
  EXPECT_EQ(round_trip(std::vector<Stateless>(2)).size(), 2u);
  EXPECT_EQ(round_trip(std::set<std::monostate>{{}}).size(), 1u);
  EXPECT_EQ(round_trip(std::map<std::monostate, std::monostate>{{{}, {}}}).size(), 1u);
  // Inside a cereal type, where cereal's support reads the count.
  Shelf shelf;
  shelf.slots.resize(5);
  EXPECT_EQ(round_trip(shelf).slots.size(), 5u);
  // The whole allowance, in one vector and split over nested ones, by memory and by number.
  EXPECT_EQ(round_trip(std::vector<Blank>(kBlanksAllowed)).size(), kBlanksAllowed);
  EXPECT_EQ(round_trip(std::vector<std::monostate>(kSmallEmptiesAllowed)).size(),
            kSmallEmptiesAllowed);
  const std::vector<std::vector<Blank>> split{std::vector<Blank>(kBlanksAllowed / 2),
                                              std::vector<Blank>(kBlanksAllowed / 2)};
  EXPECT_EQ(round_trip(split)[1].size(), kBlanksAllowed / 2);
}

TEST(CodecTest, MoreElementsThatEncodeToNothingThanTheBoundAreRefusedWhenWritten) {
  // A reader allows a message kEmptyElementBytes of elements that take no bytes (each charged its
  // size, at least kEmptyElementMinCharge), so the writer refuses more, with the error at the
  // sender: in one container, or added up over several.
  const auto refused = [](const auto& value, const char* what) {
    codec::Buffer buffer;
    codec::Writer w(buffer);
    try {
      codec::write(w, value);
      ADD_FAILURE() << what << " was written";
    } catch (const cf::SerializationError& e) {
      EXPECT_NE(std::string(e.what()).find("encode to nothing"), std::string::npos) << e.what();
    }
  };
  refused(std::vector<Blank>(kBlanksAllowed + 1), "one vector past the bound");
  refused(std::vector<std::monostate>(kSmallEmptiesAllowed + 1), "more small elements");
  const std::size_t half = kBlanksAllowed / 2 + 1;
  refused(std::pair(std::vector<Blank>(half), std::vector<Blank>(half)),
          "two vectors that add up past the bound");
  // Elements that take a byte each never count.
  EXPECT_EQ(round_trip(std::vector<std::optional<Blank>>(kBlanksAllowed + 1)).size(),
            kBlanksAllowed + 1);
}

TEST(CodecTest, CerealTypeWithStdMembersRoundTripsWithOnlyTheUmbrellaHeader) {
  static_assert(codec::serializable_v<Inventory>);
  const Inventory in = sample_inventory();
  EXPECT_EQ(round_trip(in), in);
  EXPECT_EQ(round_trip(Inventory{}), Inventory{});
}

TEST(CodecTest, ValuesWrittenOneAfterAnotherReadBackInOrder) {
  // A cereal value between codec values reads only its own bytes.
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    codec::write(w, 11);
    codec::write(w, Marked{22, false});
    codec::write(w, std::string("middle"));
    codec::write(w, sample_inventory());
    codec::write(w, std::uint8_t{33});
  }
  codec::Reader r(buffer.data(), buffer.size());
  int a = 0;
  Marked b;
  std::string c;
  Inventory d;
  std::uint8_t e = 0;
  codec::read(r, a);
  codec::read(r, b);
  codec::read(r, c);
  codec::read(r, d);
  codec::read(r, e);
  EXPECT_EQ(a, 11);
  EXPECT_EQ(b.value, 22);
  EXPECT_TRUE(b.via_cereal);
  EXPECT_EQ(c, "middle");
  EXPECT_EQ(d, sample_inventory());
  EXPECT_EQ(e, 33);
  EXPECT_EQ(r.remaining(), 0u);
}

// --- which types are serializable -----------------------------------------------------------

TEST(CodecTest, ListedTypesAreSerializable) {
  EXPECT_TRUE(codec::serializable_v<int>);
  EXPECT_TRUE(codec::serializable_v<const double>);
  EXPECT_TRUE(codec::serializable_v<bool>);
  EXPECT_TRUE(codec::serializable_v<Color>);
  EXPECT_TRUE(codec::serializable_v<Plain>);
  EXPECT_TRUE(codec::serializable_v<std::string>);
  EXPECT_TRUE(codec::serializable_v<std::vector<int>>);
  EXPECT_TRUE(codec::serializable_v<std::vector<bool>>);
  EXPECT_TRUE((codec::serializable_v<std::array<std::string, 2>>));
  EXPECT_TRUE((codec::serializable_v<std::pair<int, std::string>>));
  EXPECT_TRUE((codec::serializable_v<std::tuple<int, std::string, double>>));
  EXPECT_TRUE(codec::serializable_v<std::optional<std::string>>);
  EXPECT_TRUE((codec::serializable_v<std::variant<int, std::string>>));
  EXPECT_TRUE((codec::serializable_v<std::map<std::string, std::vector<int>>>));
  EXPECT_TRUE((codec::serializable_v<std::unordered_map<int, std::string>>));
  EXPECT_TRUE(codec::serializable_v<std::set<std::string>>);
  EXPECT_TRUE(codec::serializable_v<std::unordered_set<int>>);
  EXPECT_TRUE(codec::serializable_v<std::chrono::milliseconds>);
  EXPECT_TRUE(codec::serializable_v<std::chrono::duration<double>>);
  EXPECT_TRUE(codec::serializable_v<Sample>);
  EXPECT_TRUE(codec::serializable_v<Marked>);
  EXPECT_TRUE(codec::serializable_v<Inventory>);
  EXPECT_TRUE((codec::serializable_v<std::vector<std::optional<std::pair<int, Inventory>>>>));
}

TEST(CodecTest, PointersAndOpaqueTypesAreNotSerializable) {
  EXPECT_FALSE(codec::serializable_v<void>);
  EXPECT_FALSE(codec::serializable_v<int*>);
  EXPECT_FALSE(codec::serializable_v<const char*>);
  EXPECT_FALSE(codec::serializable_v<void (*)()>);
  EXPECT_FALSE(codec::serializable_v<int Sample::*>);
  EXPECT_FALSE(codec::serializable_v<Marked*>);
  EXPECT_FALSE(codec::serializable_v<Opaque>);
  EXPECT_FALSE(codec::serializable_v<std::unique_ptr<int>>);
  EXPECT_FALSE(codec::serializable_v<std::function<int()>>);
  // A container is serializable only if what it holds is.
  EXPECT_FALSE(codec::serializable_v<std::vector<int*>>);
  EXPECT_FALSE(codec::serializable_v<std::vector<Opaque>>);
  EXPECT_FALSE((codec::serializable_v<std::array<Opaque, 2>>));
  EXPECT_FALSE((codec::serializable_v<std::pair<int, Opaque>>));
  EXPECT_FALSE((codec::serializable_v<std::tuple<int, std::string, Opaque>>));
  EXPECT_FALSE(codec::serializable_v<std::optional<Opaque>>);
  EXPECT_FALSE((codec::serializable_v<std::variant<int, Opaque>>));
  EXPECT_FALSE((codec::serializable_v<std::map<std::string, Opaque>>));
  EXPECT_FALSE((codec::serializable_v<std::unordered_map<int, int*>>));
  EXPECT_FALSE(codec::serializable_v<std::set<const char*>>);
}

// --- buffers --------------------------------------------------------------------------------

TEST(CodecBufferTest, BufferMovesToAMemfdOnlyPastTheSharedThreshold) {
  codec::Buffer buffer;
  const std::string chunk(1024, 'k');
  while (buffer.size() + chunk.size() <= codec::kSharedThreshold) {
    buffer.append(chunk.data(), chunk.size());
  }
  ASSERT_EQ(buffer.size(), codec::kSharedThreshold);
  EXPECT_FALSE(buffer.shared());
  EXPECT_EQ(buffer.fd(), -1);
  buffer.append("!", 1);
  EXPECT_TRUE(buffer.shared());
  ASSERT_GE(buffer.fd(), 0);
  EXPECT_NE(descriptor_target(buffer.fd()).find("memfd:"), std::string::npos)
      << descriptor_target(buffer.fd());
  // Nothing was lost in the move.
  ASSERT_EQ(buffer.size(), codec::kSharedThreshold + 1);
  EXPECT_EQ(static_cast<char>(buffer.data()[0]), 'k');
  EXPECT_EQ(static_cast<char>(buffer.data()[codec::kSharedThreshold - 1]), 'k');
  EXPECT_EQ(static_cast<char>(buffer.data()[codec::kSharedThreshold]), '!');
}

TEST(CodecBufferTest, LargeValueIsWrittenIntoSharedMemoryAndRoundTrips) {
  std::vector<std::uint32_t> big(codec::kSharedThreshold / sizeof(std::uint32_t) + 1000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint32_t>(i * 2654435761u);
  const codec::Buffer buffer = encode(big);
  EXPECT_TRUE(buffer.shared());
  EXPECT_EQ(decode<std::vector<std::uint32_t>>(buffer.data(), buffer.size()), big);
}

TEST(CodecBufferTest, SharedBufferGrowingInSmallStepsKeepsEveryByte) {
  // Many grows after the move to the memfd (the mapping is resized each time).
  codec::Buffer buffer;
  constexpr std::size_t kStep = 4093;  // odd-sized, so steps straddle pages
  constexpr std::size_t kTotal = std::size_t{3} << 20;
  std::vector<unsigned char> step(kStep);
  std::size_t written = 0;
  while (written < kTotal) {
    for (std::size_t i = 0; i < kStep; ++i) step[i] = static_cast<unsigned char>((written + i) * 7);
    buffer.append(step.data(), kStep);
    written += kStep;
  }
  ASSERT_TRUE(buffer.shared());
  ASSERT_EQ(buffer.size(), written);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < written; ++i) {
    mismatches += static_cast<unsigned char>(buffer.data()[i]) != static_cast<unsigned char>(i * 7);
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(CodecBufferTest, ReceivedSharedPayloadHasTheSameBytesAndRefusesWrites) {
  const std::string big(codec::kSharedThreshold + 123, 'r');
  const codec::Buffer sent = encode(big);
  ASSERT_TRUE(sent.shared());
  // What the receiving process does with the descriptor it gets: map it read-only.
  const int copy = fcntl(sent.fd(), F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(copy, 0);
  codec::Buffer received = codec::Buffer::map_shared(copy, sent.size());
  ASSERT_EQ(received.size(), sent.size());
  EXPECT_EQ(std::memcmp(received.data(), sent.data(), sent.size()), 0);
  EXPECT_EQ(decode<std::string>(received.data(), received.size()), big);
  EXPECT_THROW(received.append("x", 1), std::logic_error);
}

TEST(CodecBufferTest, BuffersKeepTheirSegmentForALaterPayloadAndLetItGoOnRequest) {
  codec::release_idle_segments();
  const std::size_t before = open_descriptor_count();
  {
    codec::Buffer a = encode(std::string(codec::kSharedThreshold + 1, 'a'));
    ASSERT_TRUE(a.shared());
    EXPECT_EQ(open_descriptor_count(), before + 1);
    codec::Buffer b = std::move(a);  // moves the descriptor, does not copy it
    EXPECT_EQ(open_descriptor_count(), before + 1);
    codec::Buffer c = encode(std::string(codec::kSharedThreshold + 1, 'c'));
    EXPECT_EQ(open_descriptor_count(), before + 2);
    c.release();  // a sender that let the memfd go keeps only the mapping
    EXPECT_EQ(open_descriptor_count(), before + 1);
    EXPECT_EQ(static_cast<char>(c.data()[sizeof(std::uint64_t)]), 'c');
    b = std::move(c);  // b's segment stays open and mapped, idle, for a later payload
    EXPECT_EQ(open_descriptor_count(), before + 1);
  }
  {
    // The idle segment is reused: no new memfd.
    codec::Buffer d = encode(std::string(codec::kSharedThreshold + 1, 'd'));
    ASSERT_TRUE(d.shared());
    EXPECT_EQ(open_descriptor_count(), before + 1);
  }
  codec::release_idle_segments();
  EXPECT_EQ(open_descriptor_count(), before);
}

TEST(CodecBufferTest, MovedFromBufferIsEmptyAndTruncateKeepsOnlyThePrefix) {
  codec::Buffer a;
  a.append("abcdef", 6);
  codec::Buffer b = std::move(a);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_EQ(a.data(), nullptr);
  ASSERT_EQ(b.size(), 6u);
  b.truncate(10);  // longer than the content: nothing happens
  EXPECT_EQ(b.size(), 6u);
  b.truncate(2);
  ASSERT_EQ(b.size(), 2u);
  b.append("Z", 1);
  EXPECT_EQ(std::memcmp(b.data(), "abZ", 3), 0);
  b.clear();
  EXPECT_EQ(b.size(), 0u);
}

TEST(CodecBufferTest, ALargeBuffersMemoryGoesToTheNextBufferOfAboutItsSize) {
  if (!codec::keeps_spare_blocks()) GTEST_SKIP() << "spare blocks are off under AddressSanitizer";
  // A chunk reply copied out of the channel by one thread and freed by another, then the next:
  // freeing each let glibc give the heap's top back and fault it in again for the next one.
  const std::vector<std::byte> first(45'000, std::byte{1});
  const std::byte* storage = nullptr;
  {
    codec::Buffer a;
    a.append(first.data(), first.size());
    storage = a.data();
  }
  // Blocks of that size taken meanwhile: memory the buffer gave back to malloc would be handed out
  // here, and the next buffer would need other memory.
  std::vector<std::unique_ptr<std::byte[]>> fillers;
  for (int i = 0; i < 4; ++i) fillers.push_back(std::make_unique<std::byte[]>(first.size()));
  const std::vector<std::byte> second(47'000, std::byte{2});
  codec::Buffer b;
  b.append(second.data(), second.size());
  EXPECT_EQ(b.data(), storage);
  ASSERT_EQ(b.size(), second.size());
  EXPECT_EQ(std::memcmp(b.data(), second.data(), second.size()), 0);
}

TEST(CodecBufferTest, BuffersMadeAndFreedByTwoThreadsAtOnceKeepTheirBytes) {
  // The spare blocks are shared by every thread (a dispatcher takes, an iterating thread gives).
  auto churn = [](std::byte mark) {
    for (int i = 0; i < 2000; ++i) {
      codec::Buffer b;
      const std::vector<std::byte> bytes(20'000 + static_cast<std::size_t>(i % 7) * 9'000, mark);
      b.append(bytes.data(), bytes.size());
      if (std::memcmp(b.data(), bytes.data(), bytes.size()) != 0) return false;
    }
    return true;
  };
  std::future<bool> other = std::async(std::launch::async, churn, std::byte{7});
  EXPECT_TRUE(churn(std::byte{9}));
  EXPECT_TRUE(other.get());
}

// --- corrupt input --------------------------------------------------------------------------

TEST(CodecCorruptInputTest, TruncatedDataIsASerializationError) {
  expect_every_prefix_refused(12345);
  expect_every_prefix_refused(std::string("truncated"));
  expect_every_prefix_refused(std::vector<int>{1, 2, 3});
  expect_every_prefix_refused(std::vector<bool>{true, false, true});
  expect_every_prefix_refused(std::vector<std::string>{"ab", "cd"});
  expect_every_prefix_refused(std::array<std::string, 2>{"ab", "cd"});
  expect_every_prefix_refused(std::pair<int, std::string>{1, "one"});
  expect_every_prefix_refused(std::tuple<int, std::string, double>{1, "x", 2.0});
  expect_every_prefix_refused(std::optional<std::string>("x"));
  expect_every_prefix_refused(std::variant<int, std::string>(std::string("v")));
  expect_every_prefix_refused(std::map<std::string, int>{{"a", 1}, {"b", 2}});
  expect_every_prefix_refused(std::unordered_set<int>{4, 5});
  expect_every_prefix_refused(std::chrono::milliseconds(5));
  expect_every_prefix_refused(Sample{1, 2.0, "s"});
}

TEST(CodecCorruptInputTest, LengthLargerThanTheDataIsASerializationErrorNotAnAllocation) {
  // A length of 2^60 followed by a few bytes: honouring it would allocate exabytes.
  for (const std::uint64_t length :
       {std::uint64_t{1} << 60, std::uint64_t{17}, ~std::uint64_t{0}}) {
    SCOPED_TRACE("length " + std::to_string(length));
    Bytes bytes;
    bytes.pod(length).zeros(16);
    expect_corrupt<std::string>(bytes.data(), bytes.size(), "string");
    expect_corrupt<std::vector<char>>(bytes.data(), bytes.size(), "vector<char>");
    expect_corrupt<std::vector<int>>(bytes.data(), bytes.size(), "vector<int>");
    expect_corrupt<std::vector<bool>>(bytes.data(), bytes.size(), "vector<bool>");
    expect_corrupt<std::vector<std::string>>(bytes.data(), bytes.size(), "vector<string>");
    expect_corrupt<std::vector<std::vector<int>>>(bytes.data(), bytes.size(), "nested vectors");
    expect_corrupt<std::map<int, int>>(bytes.data(), bytes.size(), "map");
    expect_corrupt<std::unordered_map<int, std::string>>(bytes.data(), bytes.size(),
                                                         "unordered_map");
    expect_corrupt<std::set<std::string>>(bytes.data(), bytes.size(), "set");
    expect_corrupt<std::unordered_set<int>>(bytes.data(), bytes.size(), "unordered_set");
  }
  // Fewer elements than the length says, though the length alone fits the data: 10 ints need
  // 40 bytes, 16 are there.
  Bytes short_block;
  short_block.pod(std::uint64_t{10}).zeros(16);
  expect_corrupt<std::vector<int>>(short_block.data(), short_block.size(), "vector<int>");
}

TEST(CodecCorruptInputTest, CountOfEmptyElementsPastTheBoundIsASerializationError) {
  // Elements that encode to nothing may outnumber the bytes left by what kEmptyElementBytes holds
  // of them, no more.
  Bytes at_bound;
  at_bound.pod(std::uint64_t{kBlanksAllowed});
  EXPECT_EQ(decode<std::vector<Blank>>(at_bound.data(), at_bound.size()).size(), kBlanksAllowed);
  for (const std::uint64_t count :
       {std::uint64_t{codec::kEmptyElementBytes} + 1, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
    SCOPED_TRACE("count " + std::to_string(count));
    Bytes bytes;
    bytes.pod(count);
    expect_corrupt<std::vector<std::monostate>>(bytes.data(), bytes.size(), "vector<monostate>");
    expect_corrupt<std::vector<Stateless>>(bytes.data(), bytes.size(), "vector<Stateless>");
    expect_corrupt<std::map<std::monostate, std::monostate>>(bytes.data(), bytes.size(), "map");
  }
  Bytes blanks;
  blanks.pod(std::uint64_t{kBlanksAllowed + 1});
  expect_corrupt<std::vector<Blank>>(blanks.data(), blanks.size(), "vector<Blank>");
  // Inside a cereal type: the count's own 8 bytes plus kCerealCountsBeyondData.
  Bytes cereal_at_bound;
  cereal_at_bound.pod(std::uint64_t{codec::kCerealCountsBeyondData + 8});
  EXPECT_EQ(decode<Shelf>(cereal_at_bound.data(), cereal_at_bound.size()).slots.size(),
            codec::kCerealCountsBeyondData + 8);
  Bytes cereal_past;
  cereal_past.pod(std::uint64_t{codec::kCerealCountsBeyondData + 9});
  expect_corrupt<Shelf>(cereal_past.data(), cereal_past.size(), "a cereal type's vector");
}

TEST(CodecCorruptInputTest, EmptyElementsAreBoundedPerMessageNotPerCount) {
  // Each count below is within the bound on its own; together they are past it. Bounded per
  // count, nested vectors would multiply: a few bytes of inner counts, each allowed the whole
  // bound, would ask for gigabytes.
  const std::uint64_t each = kBlanksAllowed / 2 + 1;
  Bytes nested;
  nested.pod(std::uint64_t{3}).pod(each).pod(each).pod(each);
  expect_corrupt<std::vector<std::vector<Blank>>>(nested.data(), nested.size(),
                                                  "vector<vector<Blank>>");
  // Within the allowance together, they are read.
  const std::uint64_t quarter = kBlanksAllowed / 4;
  Bytes fits;
  fits.pod(std::uint64_t{2}).pod(quarter).pod(quarter);
  const auto both = decode<std::vector<std::vector<Blank>>>(fits.data(), fits.size());
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].size(), quarter);
}

TEST(CodecCorruptInputTest, CerealCountsThatEachFitTheBytesLeftAreBoundedTogether) {
  // m shelves, each saying it holds as many empty slots as there are bytes after its count: each
  // count fits the bytes left, and together they would be about 4 m^2 slots from 8 m bytes.
  const std::uint64_t m = 200;
  Bytes shelves;
  shelves.pod(m);
  for (std::uint64_t i = 1; i <= m; ++i) shelves.pod(8 * (m - i));
  expect_corrupt<std::vector<Shelf>>(shelves.data(), shelves.size(), "shelves that add up");
  // The same shape with counts that add up to less than the bytes plus the allowance is read.
  Bytes few;
  few.pod(m);
  for (std::uint64_t i = 1; i <= m; ++i) few.pod(std::uint64_t{100});
  const auto back = decode<std::vector<Shelf>>(few.data(), few.size());
  ASSERT_EQ(back.size(), m);
  EXPECT_EQ(back[m - 1].slots.size(), 100u);
}

TEST(CodecCorruptInputTest, BadVariantIndexIsASerializationError) {
  using V = std::variant<int, std::string>;
  for (const std::uint32_t index : {std::uint32_t{2}, std::uint32_t{7}, ~std::uint32_t{0}}) {
    SCOPED_TRACE("index " + std::to_string(index));
    Bytes bytes;
    bytes.pod(index).pod(std::int32_t{0}).zeros(8);
    expect_corrupt<V>(bytes.data(), bytes.size(), "variant");
  }
  // The largest valid index still reads.
  Bytes valid;
  valid.pod(std::uint32_t{1}).pod(std::uint64_t{0});
  EXPECT_EQ(decode<V>(valid.data(), valid.size()), V(std::string()));
}

TEST(CodecCorruptInputTest, UnknownOrTruncatedExceptionIsASerializationError) {
  codec::Buffer good;
  {
    codec::Writer w(good);
    codec::write_exception(w, std::make_exception_ptr(std::runtime_error("boom")));
  }
  // The first byte says which type to rebuild: one past the last known kind is corrupt.
  std::vector<std::byte> bad(good.data(), good.data() + good.size());
  bad[0] = std::byte{200};
  codec::Reader unknown(bad.data(), bad.size());
  EXPECT_THROW(codec::read_exception(unknown), cf::SerializationError);
  for (std::size_t cut = 0; cut < good.size(); ++cut) {
    codec::Reader truncated(good.data(), cut);
    EXPECT_THROW(codec::read_exception(truncated), cf::SerializationError) << "cut at " << cut;
  }
}

TEST(CodecCorruptInputTest, TruncatedCerealTypeIsASerializationError) {
  // A cereal type's own reads are cereal's: data cut short must still come out as
  // cf::SerializationError, like every other corrupt message (not cereal::Exception).
  const codec::Buffer buffer = encode(sample_inventory());
  codec::Reader r(buffer.data(), buffer.size() / 2);
  Inventory back;
  EXPECT_THROW(codec::read(r, back), cf::SerializationError);
}

TEST(CodecCorruptInputTest, CerealLengthLargerThanTheDataIsASerializationError) {
  // Inside a cereal type, lengths are read by cereal's support for the std types, which resizes a
  // vector or string to the length before reading its elements: 2^61 elements exceed max_size()
  // (std::length_error), and 2^33 of them would ask for 64 GiB. Each must be refused before
  // anything is allocated, as the codec's own containers are.
  for (const std::uint64_t length :
       {std::uint64_t{1} << 61, std::uint64_t{1} << 33, std::uint64_t{3}, ~std::uint64_t{0}}) {
    SCOPED_TRACE("length " + std::to_string(length));
    Bytes bytes;
    bytes.pod(length).zeros(16);
    expect_corrupt<Readings>(bytes.data(), bytes.size(), "a cereal type's vector");
    expect_corrupt<Inventory>(bytes.data(), bytes.size(), "a cereal type's string");
  }
}

TEST(CodecCorruptInputTest, BoolOtherThanZeroOrOneIsASerializationError) {
  // Copying any other byte into a bool would make a bool with no valid value.
  for (const std::uint8_t byte : {std::uint8_t{2}, std::uint8_t{0x80}, std::uint8_t{0xff}}) {
    SCOPED_TRACE("byte " + std::to_string(byte));
    Bytes bytes;
    bytes.pod(byte);
    expect_corrupt<bool>(bytes.data(), bytes.size(), "bool");
    Bytes engaged;
    engaged.pod(std::uint8_t{1}).pod(byte);
    expect_corrupt<std::optional<bool>>(engaged.data(), engaged.size(), "optional<bool>");
    expect_corrupt<Flagged>(bytes.data(), bytes.size(), "a cereal type's bool");
  }
  EXPECT_TRUE(round_trip(true));
  EXPECT_FALSE(round_trip(false));
  EXPECT_TRUE(round_trip(Flagged{true}).flag);
}

// --- exceptions (docs/reference.md §4.2 "Exceptions") --------------------------------------------

TEST(CodecExceptionTest, StdExceptionsComeBackAsTheSameTypeWithTheSameMessage) {
  expect_rebuilt_as_itself(std::logic_error("logic"));
  expect_rebuilt_as_itself(std::invalid_argument("invalid argument"));
  expect_rebuilt_as_itself(std::domain_error("domain"));
  expect_rebuilt_as_itself(std::length_error("length"));
  expect_rebuilt_as_itself(std::out_of_range("out of range"));
  expect_rebuilt_as_itself(std::runtime_error("runtime"));
  expect_rebuilt_as_itself(std::range_error("range"));
  expect_rebuilt_as_itself(std::overflow_error("overflow"));
  expect_rebuilt_as_itself(std::underflow_error("underflow"));
  expect_rebuilt_as_itself(std::bad_alloc());
  expect_rebuilt_as_itself(std::runtime_error(""));
  expect_rebuilt_as_itself(std::runtime_error(std::string("with\0nul", 8)));
}

TEST(CodecExceptionTest, CfErrorsComeBackAsTheSameTypeWithTheSameMessage) {
  expect_rebuilt_as_itself(cf::Error("error"));
  expect_rebuilt_as_itself(cf::CancelledError());
  expect_rebuilt_as_itself(cf::CancelledError("cancelled by the test"));
  expect_rebuilt_as_itself(cf::TimeoutError("timeout"));
  expect_rebuilt_as_itself(cf::InvalidStateError("invalid state"));
  expect_rebuilt_as_itself(cf::BrokenExecutor("broken executor"));
  expect_rebuilt_as_itself(cf::BrokenThreadPool("broken thread pool"));
  expect_rebuilt_as_itself(cf::BrokenProcessPool("broken process pool"));
  expect_rebuilt_as_itself(cf::ShutdownError());
  expect_rebuilt_as_itself(cf::SerializationError("serialization"));
}

TEST(CodecExceptionTest, UnknownTypeBecomesRemoteErrorWithItsDemangledName) {
  const cf::RemoteError custom =
      expect_remote_error(std::make_exception_ptr(codec_test::CustomError("custom")));
  EXPECT_EQ(custom.type_name(), "codec_test::CustomError");
  EXPECT_STREQ(custom.what(), "custom");
  // Deriving from a rebuilt type is not being one.
  const cf::RemoteError derived =
      expect_remote_error(std::make_exception_ptr(codec_test::CustomLogicError("derived")));
  EXPECT_EQ(derived.type_name(), "codec_test::CustomLogicError");
  EXPECT_STREQ(derived.what(), "derived");
  // Not a std::exception at all.
  const cf::RemoteError not_std = expect_remote_error(std::make_exception_ptr(42));
  EXPECT_EQ(not_std.type_name(), "int");
}

TEST(CodecExceptionTest, RemoteErrorPassedOnKeepsItsOriginalTypeName) {
  const cf::RemoteError once =
      expect_remote_error(std::make_exception_ptr(cf::RemoteError("origin::Type", "first hop")));
  EXPECT_EQ(once.type_name(), "origin::Type");
  EXPECT_STREQ(once.what(), "first hop");
  const cf::RemoteError twice = expect_remote_error(std::make_exception_ptr(once));
  EXPECT_EQ(twice.type_name(), "origin::Type");
  EXPECT_STREQ(twice.what(), "first hop");
}

// --- through a worker process ---------------------------------------------------------------

TEST(CodecProcessTest, CerealTypeWithStdMembersRoundTripsThroughAWorker) {
  cf::ProcessPoolExecutor ex(1);  // forkserver, the default start method
  const Inventory sent = sample_inventory();
  const Inventory back = ex.submit(
                               [](Inventory inv) {
                                 inv.counts.push_back(static_cast<int>(inv.name.size()));
                                 inv.tags.insert("seen by a worker");
                                 inv.shelf_life *= 2;
                                 return inv;
                               },
                               sent)
                             .result(kDeadlock);
  Inventory expected = sent;
  expected.counts.push_back(static_cast<int>(sent.name.size()));
  expected.tags.insert("seen by a worker");
  expected.shelf_life *= 2;
  EXPECT_EQ(back, expected);
}

}  // namespace
