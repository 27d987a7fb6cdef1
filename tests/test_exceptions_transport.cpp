// cf::register_exception (exception_transport.hpp; docs/reference.md §4.2 "Exceptions"): a
// program's own exception types come back from a process task as themselves, with their data and
// their what(), so that the catch clause that matches on a ThreadPoolExecutor matches on a
// ProcessPoolExecutor with every start method, through submit, map (items inside a chunk too) and
// then(pool, fn). Types not registered, or derived from a registered one, stay RemoteError; a type
// whose own functions fail, or a record that is corrupt, gives RemoteError with a note or
// SerializationError, never a lost failure or a crash.
//
// The first part runs real pools (each executor of executor_fixture.hpp: a thread pool, and a
// process pool per start method; spawn needs this file's main). The second part checks the
// encoding itself, without processes. Every wait is bounded (kDeadlock).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "executor_fixture.hpp"
#include "process_test_util.hpp"  // also ThreadSanitizer's view of exception_ptr (see its end)
#include "test_util.hpp"

// The exception types, in a named namespace: the tests check their demangled names.
namespace exc_test {

// Data of its own, and no constructor from a message alone: rebuilt from a private default
// constructor (through cereal::access), its data loaded and its message restored.
struct ValidationError : std::runtime_error {
  ValidationError(std::string field_name, int error_code)
      : std::runtime_error("invalid " + field_name + " (code " + std::to_string(error_code) + ")"),
        field(std::move(field_name)),
        code(error_code) {}
  std::string field;
  int code = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(field, code);
  }

 private:
  friend class cereal::access;
  ValidationError() : std::runtime_error("") {}
};
inline const bool validation_error_registered = cf::register_exception<ValidationError>();

// No data: rebuilt from its message; the registration line is all it needs.
struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};
inline const bool not_found_registered = cf::register_exception<NotFound>();

// Not a std::runtime_error: what() comes from its own data, all of it fixed-size (the corrupt
// record tests flip any byte of it without making a length out of it).
struct Overdrawn : std::exception {
  Overdrawn() = default;
  Overdrawn(long cents_short, int account_number) : cents(cents_short), account(account_number) {
    std::snprintf(message, sizeof message, "account %d is %ld cents short", account, cents);
  }
  const char* what() const noexcept override { return message; }
  long cents = 0;
  int account = 0;
  char message[64] = {};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(cents, account, message);
  }
};
inline const bool overdrawn_registered = cf::register_exception<Overdrawn>();

// Derives from a registered type without being registered: exact types only.
struct DerivedValidationError : ValidationError {
  using ValidationError::ValidationError;
};

// Never registered.
struct Unregistered : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Registered, but its save throws (in the worker).
struct FailsToSave : std::runtime_error {
  using std::runtime_error::runtime_error;
  template <class Archive>
  void save(Archive&) const {
    throw std::runtime_error("cannot save");
  }
  template <class Archive>
  void load(Archive&) {}
};
inline const bool fails_to_save_registered = cf::register_exception<FailsToSave>();

// Registered, but its load throws (in the parent).
struct FailsToLoad : std::runtime_error {
  using std::runtime_error::runtime_error;
  int value = 7;
  template <class Archive>
  void save(Archive& ar) const {
    ar(value);
  }
  template <class Archive>
  void load(Archive&) {
    throw std::invalid_argument("cannot load");
  }
};
inline const bool fails_to_load_registered = cf::register_exception<FailsToLoad>();

// Its constructor from a string takes a path, not the message: rebuilt from the message, its
// what() would be wrong, so it comes back as RemoteError with a note instead.
struct FileError : std::runtime_error {
  explicit FileError(const std::string& file) : std::runtime_error("cannot open " + file) {}
};
inline const bool file_error_registered = cf::register_exception<FileError>();

// Its load reads less than its save wrote.
struct ReadsLess : std::runtime_error {
  ReadsLess() : std::runtime_error("reads less") {}
  int a = 1;
  int b = 2;
  template <class Archive>
  void save(Archive& ar) const {
    ar(a, b);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(a);
  }
};
inline const bool reads_less_registered = cf::register_exception<ReadsLess>();

}  // namespace exc_test

namespace {

namespace codec = cf::detail::codec;
using cftest::kDeadlock;
using exc_test::ValidationError;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// --- what runs in the workers: plain functions, sent by name --------------------------------

// Fails for negative values with the value as its code.
int validate(int x) {
  if (x < 0) throw ValidationError("amount", x);
  return 2 * x;
}

int throw_validation_error(std::string field, int code) { throw ValidationError(field, code); }
int throw_not_found(std::string what) { throw exc_test::NotFound(what); }
int throw_overdrawn(long cents, int account) { throw exc_test::Overdrawn(cents, account); }
int throw_derived(int code) { throw exc_test::DerivedValidationError("derived", code); }
int throw_unregistered() { throw exc_test::Unregistered("nobody registered me"); }
int throw_fails_to_save() { throw exc_test::FailsToSave("original message"); }
int throw_fails_to_load() { throw exc_test::FailsToLoad("loaded badly"); }
int throw_file_error(std::string path) { throw exc_test::FileError(path); }

// --- fixture ----------------------------------------------------------------------------------

template <class Factory>
class ExceptionTransportTest : public ::testing::Test {
 protected:
  static constexpr bool kInProcess = std::is_same_v<Factory, cftest::ThreadPoolFactory>;

  cf::Executor& pool() {
    if (!pool_) pool_ = Factory::make(2);  // two CPUs: two workers are enough
    return *pool_;
  }
  void TearDown() override {
    if (pool_) pool_->shutdown();
  }

 private:
  std::unique_ptr<cf::Executor> pool_;
};
TYPED_TEST_SUITE(ExceptionTransportTest, cftest::AllExecutors, cftest::ExecutorName);

// `e` holds exactly a ValidationError with this field and code (and the what() they make).
void expect_validation_error(const std::exception_ptr& e, const std::string& field, int code) {
  ASSERT_TRUE(e) << "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const ValidationError& v) {
    EXPECT_EQ(typeid(v), typeid(ValidationError));
    EXPECT_EQ(v.field, field);
    EXPECT_EQ(v.code, code);
    EXPECT_EQ(std::string(v.what()), "invalid " + field + " (code " + std::to_string(code) + ")");
  } catch (...) {
    ADD_FAILURE() << "came back as " << cf::detail::exception_type_name(e) << ": "
                  << cftest::what_of(e);
  }
}

// `e` holds exactly a RemoteError; returns it (empty if it did not).
cf::RemoteError expect_remote_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const cf::RemoteError& r) {
    EXPECT_EQ(typeid(r), typeid(cf::RemoteError));
    return r;
  } catch (...) {
    ADD_FAILURE() << "not a RemoteError: " << cf::detail::exception_type_name(e) << ": "
                  << cftest::what_of(e);
  }
  return cf::RemoteError("", "");
}

// --- registered types come back as themselves ------------------------------------------------

TEST(ExceptionRegistrationTest, RegisteringSucceedsAndRegisteringAgainChangesNothing) {
  EXPECT_TRUE(exc_test::validation_error_registered);
  EXPECT_TRUE(exc_test::not_found_registered);
  EXPECT_TRUE(exc_test::overdrawn_registered);
  EXPECT_TRUE(cf::register_exception<ValidationError>()) << "registering again changes nothing";
}

TYPED_TEST(ExceptionTransportTest, SubmitRethrowsARegisteredTypeAsItselfWithItsData) {
  cf::Future<int> f = this->pool().submit(&throw_validation_error, std::string("email"), 422);
  try {
    f.result(kDeadlock);
    ADD_FAILURE() << "no exception";
  } catch (const ValidationError& e) {  // the clause a thread pool's user wrote
    EXPECT_EQ(typeid(e), typeid(ValidationError));
    EXPECT_EQ(e.field, "email");
    EXPECT_EQ(e.code, 422);
    EXPECT_STREQ(e.what(), "invalid email (code 422)");
  }
  expect_validation_error(f.exception(kDeadlock), "email", 422);
}

TYPED_TEST(ExceptionTransportTest, RegisteredTypeWithoutDataIsRebuiltFromItsMessage) {
  cf::Future<int> f = this->pool().submit(&throw_not_found, std::string("no such user: 42"));
  try {
    f.result(kDeadlock);
    ADD_FAILURE() << "no exception";
  } catch (const exc_test::NotFound& e) {
    EXPECT_EQ(typeid(e), typeid(exc_test::NotFound));
    EXPECT_STREQ(e.what(), "no such user: 42");
  }
}

TYPED_TEST(ExceptionTransportTest, RegisteredTypeWhoseWhatComesFromItsDataIsRebuilt) {
  cf::Future<int> f = this->pool().submit(&throw_overdrawn, 1250L, 7);
  try {
    f.result(kDeadlock);
    ADD_FAILURE() << "no exception";
  } catch (const exc_test::Overdrawn& e) {
    EXPECT_EQ(typeid(e), typeid(exc_test::Overdrawn));
    EXPECT_EQ(e.cents, 1250);
    EXPECT_EQ(e.account, 7);
    EXPECT_STREQ(e.what(), "account 7 is 1250 cents short");
  }
}

// ChunkEntry writes each item's exception with the same encoding: items inside a chunk, next to
// items that succeed, come back as themselves too.
TYPED_TEST(ExceptionTransportTest, MapItemsRethrowARegisteredTypeAsItself) {
  for (const std::size_t chunksize : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE("chunksize " + std::to_string(chunksize));
    auto results = this->pool().map(&validate, std::vector<int>{1, -2, 3, -4, 5},
                                    cf::MapOptions{.chunksize = chunksize});
    std::size_t index = 0;
    for (auto it = results.begin(); it != results.end(); ++it, ++index) {
      const int item = std::vector<int>{1, -2, 3, -4, 5}[index];
      if (item >= 0) {
        EXPECT_EQ(*it, 2 * item);
        continue;
      }
      try {
        (void)*it;
        ADD_FAILURE() << "item " << index << " did not throw";
      } catch (const ValidationError& e) {
        EXPECT_EQ(typeid(e), typeid(ValidationError));
        EXPECT_EQ(e.field, "amount");
        EXPECT_EQ(e.code, item);
      }
    }
    EXPECT_EQ(index, 5u);
  }
}

TYPED_TEST(ExceptionTransportTest, ThenOnThePoolRethrowsWhatFnThrowsAsItself) {
  cf::Future<int> f;
  cf::Future<int> g = f.then(this->pool(), &validate);
  f.set_result(-9);
  expect_validation_error(g.exception(kDeadlock), "amount", -9);
}

TYPED_TEST(ExceptionTransportTest, ThenPassesOnARegisteredTypeFromTheTaskBefore) {
  cf::Executor& ex = this->pool();
  cf::Future<int> g =
      ex.submit(&throw_validation_error, std::string("name"), 3).then(ex, &validate);
  expect_validation_error(g.exception(kDeadlock), "name", 3);
}

// --- everything else stays RemoteError -------------------------------------------------------

TYPED_TEST(ExceptionTransportTest, UnregisteredTypeIsStillARemoteError) {
  const std::exception_ptr e = this->pool().submit(&throw_unregistered).exception(kDeadlock);
  if constexpr (TestFixture::kInProcess) {
    EXPECT_EQ(cftest::dynamic_type(e), typeid(exc_test::Unregistered));
  } else {
    const cf::RemoteError r = expect_remote_error(e);
    EXPECT_EQ(r.type_name(), "exc_test::Unregistered");
    EXPECT_STREQ(r.what(), "nobody registered me");
  }
}

TYPED_TEST(ExceptionTransportTest, TypeDerivedFromARegisteredOneIsNotCoveredByItsRegistration) {
  const std::exception_ptr e = this->pool().submit(&throw_derived, 5).exception(kDeadlock);
  if constexpr (TestFixture::kInProcess) {
    EXPECT_EQ(cftest::dynamic_type(e), typeid(exc_test::DerivedValidationError));
  } else {
    const cf::RemoteError r = expect_remote_error(e);
    EXPECT_EQ(r.type_name(), "exc_test::DerivedValidationError");
    EXPECT_STREQ(r.what(), "invalid derived (code 5)");
  }
}

// --- failures of the type's own functions: RemoteError with a note, the pool goes on ----------

TYPED_TEST(ExceptionTransportTest, SaveThatThrowsFallsBackToARemoteErrorNamingTheType) {
  cf::Executor& ex = this->pool();
  const std::exception_ptr e = ex.submit(&throw_fails_to_save).exception(kDeadlock);
  if constexpr (TestFixture::kInProcess) {
    EXPECT_EQ(cftest::dynamic_type(e), typeid(exc_test::FailsToSave));
  } else {
    const cf::RemoteError r = expect_remote_error(e);
    EXPECT_EQ(r.type_name(), "exc_test::FailsToSave");
    EXPECT_THAT(r.what(), StartsWith("original message ["));
    EXPECT_THAT(r.what(), HasSubstr("not sent as itself: saving it threw std::runtime_error: "
                                    "cannot save"));
  }
  EXPECT_EQ(ex.submit(&validate, 4).result(kDeadlock), 8);
}

TYPED_TEST(ExceptionTransportTest, LoadThatThrowsFallsBackToARemoteErrorNamingTheType) {
  const std::exception_ptr e = this->pool().submit(&throw_fails_to_load).exception(kDeadlock);
  if constexpr (TestFixture::kInProcess) {
    EXPECT_EQ(cftest::dynamic_type(e), typeid(exc_test::FailsToLoad));
  } else {
    const cf::RemoteError r = expect_remote_error(e);
    EXPECT_EQ(r.type_name(), "exc_test::FailsToLoad");
    EXPECT_THAT(r.what(), StartsWith("loaded badly ["));
    EXPECT_THAT(r.what(), HasSubstr("rebuilding it threw std::invalid_argument: cannot load"));
  }
}

TYPED_TEST(ExceptionTransportTest, RebuiltWhatThatDiffersGivesARemoteErrorWithTheOriginalWhat) {
  const std::exception_ptr e =
      this->pool().submit(&throw_file_error, std::string("/data/in.csv")).exception(kDeadlock);
  if constexpr (TestFixture::kInProcess) {
    EXPECT_EQ(cftest::dynamic_type(e), typeid(exc_test::FileError));
  } else {
    const cf::RemoteError r = expect_remote_error(e);
    EXPECT_EQ(r.type_name(), "exc_test::FileError");
    EXPECT_THAT(r.what(), StartsWith("cannot open /data/in.csv ["));
    EXPECT_THAT(r.what(), HasSubstr("cannot open cannot open /data/in.csv"));
  }
}

// --- the encoding itself, without processes ---------------------------------------------------

codec::Buffer encode_exception(const std::exception_ptr& error) {
  codec::Buffer buffer;
  codec::Writer w(buffer);
  codec::write_exception(w, error);
  return buffer;
}

std::exception_ptr decode_exception(const std::byte* data, std::size_t size) {
  codec::Reader r(data, size);
  return codec::read_exception(r);
}

// Where a registered exception's key starts in its record: code, type name, what().
std::size_t key_offset(const std::string& type, const std::string& what) {
  return 1 + 8 + type.size() + 8 + what.size();
}

TEST(ExceptionEncodingTest, RegisteredTypeRoundTripsWithNothingLeftOver) {
  const codec::Buffer b = encode_exception(std::make_exception_ptr(ValidationError("zip", 12)));
  codec::Reader r(b.data(), b.size());
  expect_validation_error(codec::read_exception(r), "zip", 12);
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(ExceptionEncodingTest, EveryTruncationIsASerializationError) {
  const codec::Buffer b = encode_exception(std::make_exception_ptr(ValidationError("zip", 12)));
  for (std::size_t cut = 0; cut < b.size(); ++cut) {
    EXPECT_THROW(decode_exception(b.data(), cut), cf::SerializationError) << "cut at " << cut;
  }
}

TEST(ExceptionEncodingTest, UnknownKeyIsARemoteErrorWithANote) {
  const codec::Buffer b = encode_exception(std::make_exception_ptr(ValidationError("zip", 12)));
  std::vector<std::byte> bytes(b.data(), b.data() + b.size());
  const std::size_t at = key_offset("exc_test::ValidationError", "invalid zip (code 12)");
  ASSERT_LT(at + 8, bytes.size());
  bytes[at] ^= std::byte{0x5a};
  const cf::RemoteError r = expect_remote_error(decode_exception(bytes.data(), bytes.size()));
  EXPECT_EQ(r.type_name(), "exc_test::ValidationError");
  EXPECT_THAT(r.what(), StartsWith("invalid zip (code 12) ["));
  EXPECT_THAT(r.what(), HasSubstr("no type with its key is registered here"));
}

TEST(ExceptionEncodingTest, GarbageDataIsARemoteErrorWithANote) {
  // All ones: the string's length inside the data is far beyond anything (std::length_error from
  // the user's load, before any allocation), and the rebuild fails without a crash.
  const codec::Buffer b = encode_exception(std::make_exception_ptr(ValidationError("zip", 12)));
  std::vector<std::byte> bytes(b.data(), b.data() + b.size());
  const std::size_t data_at = key_offset("exc_test::ValidationError", "invalid zip (code 12)") + 16;
  ASSERT_LT(data_at, bytes.size());
  for (std::size_t i = data_at; i < bytes.size(); ++i) bytes[i] = std::byte{0xff};
  const cf::RemoteError r = expect_remote_error(decode_exception(bytes.data(), bytes.size()));
  EXPECT_EQ(r.type_name(), "exc_test::ValidationError");
  EXPECT_THAT(r.what(), HasSubstr("not rebuilt as itself: rebuilding it threw"));
}

TEST(ExceptionEncodingTest, LoadThatReadsLessThanSaveWroteIsARemoteErrorWithANote) {
  const codec::Buffer b = encode_exception(std::make_exception_ptr(exc_test::ReadsLess()));
  const cf::RemoteError r = expect_remote_error(decode_exception(b.data(), b.size()));
  EXPECT_EQ(r.type_name(), "exc_test::ReadsLess");
  EXPECT_THAT(r.what(), HasSubstr("its load read 4 of the 8 bytes its save wrote"));
}

TEST(ExceptionEncodingTest, NoByteFlipCrashesOrLosesTheFailure) {
  // Overdrawn's data is fixed-size, so a flipped byte never makes a length that the user's load
  // would allocate. Whatever byte is spoiled, the result is one of three: the library refuses the
  // record (SerializationError), the exception comes back as a RemoteError, or as an Overdrawn
  // whose what() is the one that was sent (a flip in its other data).
  const codec::Buffer b = encode_exception(std::make_exception_ptr(exc_test::Overdrawn(99, 3)));
  for (std::size_t at = 0; at < b.size(); ++at) {
    SCOPED_TRACE("byte " + std::to_string(at));
    std::vector<std::byte> bytes(b.data(), b.data() + b.size());
    bytes[at] ^= std::byte{0xff};
    std::exception_ptr back;
    try {
      back = decode_exception(bytes.data(), bytes.size());
    } catch (const cf::SerializationError&) {
      continue;
    }
    ASSERT_TRUE(back);
    const std::type_info& type = cftest::dynamic_type(back);
    EXPECT_TRUE(type == typeid(cf::RemoteError) || type == typeid(exc_test::Overdrawn))
        << cf::detail::exception_type_name(back);
    if (type == typeid(exc_test::Overdrawn)) {
      EXPECT_EQ(cftest::what_of(back), "account 3 is 99 cents short");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);  // the spawn workers start here
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
