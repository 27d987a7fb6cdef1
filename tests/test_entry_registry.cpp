// The entry table and the transport of callables (detail/entry.hpp, src/remote/entry_registry.cpp,
// src/remote/function_names.cpp) without a worker process: keys, lookups, what an entry reads and
// replies, and how function pointers and function objects are written and read back.
//
// Requests are encoded by the library's own encode_call/encode_chunk (what submit and map send)
// and run as a worker runs them (remote::run_task: read the key, find the entry, call it with the
// rest of the request and an empty reply).
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures/detail/codec.hpp>
#include <concurrent/futures/detail/entry.hpp>
#include <concurrent/futures/errors.hpp>

#include "test_util.hpp"

// Functions sent by name: external linkage, in a named namespace.
namespace entry_test {

int add(int a, int b) { return a + b; }
int negate(int a) { return -a; }

// Entries registered by hand (they are never run through the table).
void first_entry(concurrent::futures::detail::codec::Reader& /*request*/,
                 concurrent::futures::detail::codec::Writer& reply) noexcept {
  reply.pod(std::uint8_t{1});
}
void second_entry(concurrent::futures::detail::codec::Reader& /*request*/,
                  concurrent::futures::detail::codec::Writer& reply) noexcept {
  reply.pod(std::uint8_t{2});
}

}  // namespace entry_test

namespace {

namespace detail = concurrent::futures::detail;
namespace codec = concurrent::futures::detail::codec;
using detail::ReplyStatus;

// A function object with state: its bytes are all there is to it.
struct Affine {
  int a;
  int b;
  int operator()(int x) const { return a * x + b; }
};

// A result whose serialization fails after the entry has started its reply.
struct FailsToSave {
  int value = 0;
  template <class Archive>
  void save(Archive& /*archive*/) const {
    throw std::runtime_error("cannot save this result");
  }
  template <class Archive>
  void load(Archive& archive) {
    archive(value);
  }
};

// --- helpers --------------------------------------------------------------------------------

// The request for fn(args...), as ProcessPoolExecutor::submit sends it.
template <class F, class... Args>
codec::Buffer call_request(const F& fn, const Args&... args) {
  codec::Buffer request;
  codec::Writer w(request);
  detail::encode_call(w, fn, args...);
  return request;
}

// The request for one map chunk of fn over items, as a process pool's ChunkTask sends it.
template <class R, class Fn, class Item>
codec::Buffer chunk_request(const Fn& fn, const std::vector<Item>& items) {
  codec::Buffer request;
  codec::Writer w(request);
  detail::encode_chunk<Fn, Item, R>(w, fn, items);
  return request;
}

// What a worker does with a request (remote::run_task): read the key, find the entry, run it on
// the rest of the request into an empty reply.
codec::Buffer serve(const std::byte* data, std::size_t size) {
  codec::Buffer reply;
  codec::Reader request(data, size);
  const auto key = request.pod<std::uint64_t>();
  const detail::EntryFn entry = detail::find_entry(key);
  if (entry == nullptr) {
    ADD_FAILURE() << "no entry for key " << key;
    return reply;
  }
  codec::Writer w(reply);
  entry(request, w);
  return reply;
}

codec::Buffer serve(const codec::Buffer& request) { return serve(request.data(), request.size()); }

template <class R>
R value_of(const codec::Buffer& reply) {
  codec::Reader r(reply.data(), reply.size());
  EXPECT_EQ(r.pod<ReplyStatus>(), ReplyStatus::value);
  R value{};
  codec::read(r, value);
  EXPECT_EQ(r.remaining(), 0u);
  return value;
}

std::exception_ptr error_of(codec::Reader& r) {
  EXPECT_EQ(r.pod<ReplyStatus>(), ReplyStatus::error);
  std::exception_ptr e = codec::read_exception(r);
  EXPECT_EQ(r.remaining(), 0u);
  return e;
}

std::exception_ptr error_of(const codec::Buffer& reply) {
  codec::Reader r(reply.data(), reply.size());
  return error_of(r);
}

// --- the table ------------------------------------------------------------------------------

TEST(EntryRegistryTest, RegisteringTheSameEntryAgainGivesTheSameKey) {
  const std::uint64_t key = detail::register_entry("entry_test::again", &entry_test::first_entry);
  EXPECT_EQ(detail::register_entry("entry_test::again", &entry_test::first_entry), key);
  EXPECT_EQ(detail::find_entry(key), &entry_test::first_entry);
}

TEST(EntryRegistryTest, UnknownKeyFindsNoEntry) {
  const std::uint64_t key = detail::register_entry("entry_test::known", &entry_test::first_entry);
  EXPECT_EQ(detail::find_entry(key ^ 0x5a5a5a5a5a5a5a5aULL), nullptr);
  EXPECT_EQ(detail::find_entry(0), nullptr);
}

TEST(EntryRegistryTest, SameTypeNameWithAnotherFunctionGetsAnotherKey) {
  // Two entries may share a mangled name (lambdas in same-named functions of anonymous
  // namespaces); the function's place in its object file tells them apart.
  const std::uint64_t first =
      detail::register_entry("entry_test::shared", &entry_test::first_entry);
  const std::uint64_t second =
      detail::register_entry("entry_test::shared", &entry_test::second_entry);
  EXPECT_NE(first, second);
  EXPECT_EQ(detail::find_entry(first), &entry_test::first_entry);
  EXPECT_EQ(detail::find_entry(second), &entry_test::second_entry);
}

TEST(EntryRegistryTest, KeyClaimedByTwoFunctionsBecomesUnusable) {
  // Addresses in no loaded object: their key is the name's hash alone, so two of them under one
  // name collide, which is what two entries with one key look like. They are never called.
  const long page = sysconf(_SC_PAGESIZE);
  void* area =
      mmap(nullptr, static_cast<std::size_t>(page), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(area, MAP_FAILED);
  auto* base = static_cast<char*>(area);
  Dl_info info{};
  ASSERT_EQ(dladdr(base, &info), 0) << "the test needs an address outside every object";
  const auto one = reinterpret_cast<detail::EntryFn>(base);
  const auto other = reinterpret_cast<detail::EntryFn>(base + 64);

  const std::uint64_t key = detail::register_entry("entry_test::ambiguous", one);
  EXPECT_EQ(detail::find_entry(key), one);
  EXPECT_EQ(detail::register_entry("entry_test::ambiguous", other), key);
  EXPECT_EQ(detail::find_entry(key), nullptr);
  // Registering the first one again does not make the key usable again.
  detail::register_entry("entry_test::ambiguous", one);
  EXPECT_EQ(detail::find_entry(key), nullptr);
  munmap(area, static_cast<std::size_t>(page));
}

TEST(EntryRegistryTest, CallEntryIsRegisteredUnderItsKeyAtStartup) {
  using AddEntry = detail::CallEntry<int (*)(int, int), int, int>;
  EXPECT_EQ(detail::find_entry(AddEntry::key), &AddEntry::run);
  // Other argument types are another entry.
  using LongEntry = detail::CallEntry<int (*)(int, int), long, long>;
  EXPECT_NE(LongEntry::key, AddEntry::key);
  EXPECT_EQ(detail::find_entry(LongEntry::key), &LongEntry::run);
}

// --- running entries ------------------------------------------------------------------------

TEST(EntryRegistryTest, RequestIsTheKeyThenTheCallableThenTheArguments) {
  // The worker reads the key first, and the entry the rest: the layout both sides rely on.
  auto fn = [](int a, std::string b) { return b + std::to_string(a); };
  const codec::Buffer request = call_request(fn, 5, std::string("five"));
  codec::Buffer expected;
  {
    codec::Writer w(expected);
    w.pod(detail::CallEntry<decltype(fn), int, std::string>::key);
    detail::write_callable(w, fn);
    codec::write(w, 5);
    codec::write(w, std::string("five"));
  }
  ASSERT_EQ(request.size(), expected.size());
  EXPECT_EQ(std::memcmp(request.data(), expected.data(), expected.size()), 0);
}

TEST(EntryRegistryTest, FunctionPointerRequestRunsAndRepliesWithTheValue) {
  int (*fn)(int, int) = &entry_test::add;
  EXPECT_EQ(value_of<int>(serve(call_request(fn, 2, 40))), 42);
}

TEST(EntryRegistryTest, LambdaRequestRunsOnItsContainerArguments) {
  auto fn = [](std::vector<int> values, std::string label) {
    int total = 0;
    for (int v : values) total += v;
    return label + "=" + std::to_string(total);
  };
  const codec::Buffer reply =
      serve(call_request(fn, std::vector<int>{1, 2, 3}, std::string("sum")));
  EXPECT_EQ(value_of<std::string>(reply), "sum=6");
}

TEST(EntryRegistryTest, VoidCallRepliesWithTheValueStatusAlone) {
  auto fn = [](int x) {
    if (x < 0) throw std::invalid_argument("negative");
  };
  const codec::Buffer reply = serve(call_request(fn, 1));
  ASSERT_EQ(reply.size(), sizeof(ReplyStatus));
  codec::Reader r(reply.data(), reply.size());
  EXPECT_EQ(r.pod<ReplyStatus>(), ReplyStatus::value);
  const std::exception_ptr e = error_of(serve(call_request(fn, -1)));
  EXPECT_EQ(cftest::dynamic_type(e), typeid(std::invalid_argument));
}

TEST(EntryRegistryTest, ThrowingCallRepliesWithTheErrorAndItsException) {
  auto fn = [](int x) -> int { throw std::out_of_range("index " + std::to_string(x)); };
  const std::exception_ptr e = error_of(serve(call_request(fn, 7)));
  ASSERT_TRUE(e);
  EXPECT_EQ(cftest::dynamic_type(e), typeid(std::out_of_range));
  EXPECT_EQ(cftest::what_of(e), "index 7");
}

TEST(EntryRegistryTest, ResultThatFailsToSerializeRepliesWithOnlyTheError) {
  // The entry had written the value status before saving the result threw: all of it goes.
  auto fn = [](int v) { return FailsToSave{v}; };
  const std::exception_ptr e = error_of(serve(call_request(fn, 3)));
  ASSERT_TRUE(e);
  EXPECT_EQ(cftest::dynamic_type(e), typeid(std::runtime_error));
  EXPECT_EQ(cftest::what_of(e), "cannot save this result");
}

TEST(EntryRegistryTest, RequestCutShortRepliesWithASerializationError) {
  auto fn = [](std::string a, std::string b) { return a + b; };
  const codec::Buffer request = call_request(fn, std::string("left"), std::string("right"));
  // Every cut after the key: the callable or an argument is missing or incomplete.
  for (std::size_t cut = sizeof(std::uint64_t); cut < request.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const std::exception_ptr e = error_of(serve(request.data(), cut));
    ASSERT_TRUE(e);
    EXPECT_EQ(cftest::dynamic_type(e), typeid(concurrent::futures::SerializationError))
        << cftest::what_of(e);
  }
}

TEST(EntryRegistryTest, ChunkEntryRunsEveryItemAndOneThrowingItemFailsOnlyItself) {
  auto fn = [](int x) {
    if (x == 3) throw std::domain_error("three");
    return x * 10;
  };
  const std::vector<std::tuple<int>> items{{1}, {2}, {3}, {4}, {5}};
  const codec::Buffer reply = serve(chunk_request<int>(fn, items));
  codec::Reader r(reply.data(), reply.size());
  ASSERT_EQ(r.pod<ReplyStatus>(), ReplyStatus::value);
  ASSERT_EQ(r.size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    SCOPED_TRACE("item " + std::to_string(i));
    // Each item's outcome has its own length, so the parent can read each one alone.
    const std::size_t length = r.size();
    codec::Reader item(r.take(length), length);
    const int x = std::get<0>(items[i]);
    if (x == 3) {
      const std::exception_ptr e = error_of(item);
      EXPECT_EQ(cftest::dynamic_type(e), typeid(std::domain_error));
      EXPECT_EQ(cftest::what_of(e), "three");
    } else {
      ASSERT_EQ(item.pod<ReplyStatus>(), ReplyStatus::value);
      EXPECT_EQ(item.pod<int>(), x * 10);
      EXPECT_EQ(item.remaining(), 0u);
    }
  }
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(EntryRegistryTest, ChunkEntryOfAVoidFunctionRepliesWithAStatusPerItem) {
  auto fn = [](int x, std::string s) {
    if (x < 0) throw std::invalid_argument(s);
  };
  const std::vector<std::tuple<int, std::string>> items{{1, "a"}, {-1, "bad"}, {2, "c"}};
  const codec::Buffer reply = serve(chunk_request<void>(fn, items));
  codec::Reader r(reply.data(), reply.size());
  ASSERT_EQ(r.pod<ReplyStatus>(), ReplyStatus::value);
  ASSERT_EQ(r.size(), 3u);
  std::vector<ReplyStatus> statuses;
  for (int i = 0; i < 3; ++i) {
    const std::size_t length = r.size();
    codec::Reader item(r.take(length), length);
    statuses.push_back(item.pod<ReplyStatus>());
    if (statuses.back() == ReplyStatus::value) {
      EXPECT_EQ(length, sizeof(ReplyStatus));  // nothing after the status of a void call
    }
  }
  EXPECT_EQ(statuses,
            (std::vector<ReplyStatus>{ReplyStatus::value, ReplyStatus::error, ReplyStatus::value}));
}

// --- callables ------------------------------------------------------------------------------

TEST(EntryRegistryTest, FunctionPointerRoundTripsByName) {
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    detail::write_function(w, reinterpret_cast<const void*>(&entry_test::add));
    detail::write_function(w, reinterpret_cast<const void*>(&entry_test::negate));
  }
  codec::Reader r(buffer.data(), buffer.size());
  const void* first = detail::read_function(r);
  const void* second = detail::read_function(r);
  EXPECT_EQ(first, reinterpret_cast<const void*>(&entry_test::add));
  EXPECT_EQ(second, reinterpret_cast<const void*>(&entry_test::negate));
  EXPECT_EQ(r.remaining(), 0u);
  // What travels is the symbol's name, not its address.
  codec::Reader names(buffer.data(), buffer.size());
  std::string object;
  std::string symbol;
  codec::read(names, object);
  codec::read(names, symbol);
  EXPECT_NE(symbol.find("entry_test"), std::string::npos) << symbol;
  EXPECT_NE(symbol.find("add"), std::string::npos) << symbol;
}

TEST(EntryRegistryTest, PointerIntoTheMiddleOfAFunctionCannotBeSent) {
  codec::Buffer buffer;
  codec::Writer w(buffer);
  const auto* start = reinterpret_cast<const char*>(&entry_test::add);
  EXPECT_THROW(detail::write_function(w, start + 1), concurrent::futures::SerializationError);
  EXPECT_EQ(buffer.size(), 0u);
}

TEST(EntryRegistryTest, UnknownFunctionNameIsASerializationErrorWhenRead) {
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    codec::write(w, std::string());  // the main program
    codec::write(w, std::string("entry_test_there_is_no_such_function"));
  }
  codec::Reader r(buffer.data(), buffer.size());
  EXPECT_THROW(detail::read_function(r), concurrent::futures::SerializationError);
}

TEST(EntryRegistryTest, CallablesRoundTripThroughWriteCallable) {
  auto lambda = [](int x) { return x * 3; };
  const Affine affine{2, 5};
  int (*pointer)(int) = &entry_test::negate;
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    detail::write_callable(w, lambda);
    detail::write_callable(w, affine);
    detail::write_callable(w, pointer);
  }
  codec::Reader r(buffer.data(), buffer.size());
  auto lambda_back = detail::read_callable<decltype(lambda)>(r);
  const Affine affine_back = detail::read_callable<Affine>(r);
  int (*pointer_back)(int) = detail::read_callable<int (*)(int)>(r);
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(lambda_back(4), 12);
  EXPECT_EQ(affine_back(10), 25);  // the state came along
  EXPECT_EQ(pointer_back, pointer);
  EXPECT_EQ(pointer_back(9), -9);
  // A captureless lambda is its bytes: nothing more than its size.
  codec::Buffer alone;
  {
    codec::Writer w(alone);
    detail::write_callable(w, lambda);
  }
  EXPECT_EQ(alone.size(), sizeof(lambda));
}

}  // namespace
