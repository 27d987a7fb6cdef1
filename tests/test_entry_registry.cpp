// The entry table and the transport of callables (detail/entry.hpp, src/remote/entry_registry.cpp,
// src/remote/function_table.cpp, src/remote/elf_object.cpp) without a worker process: keys,
// lookups, what an entry reads and replies, how function pointers and function objects are written
// and read back, and how a function pointer that is not a function's start, or not one of the
// same build, is refused before anything is called.
//
// Requests are encoded by the library's own encode_call/encode_chunk (what submit and map send)
// and run as a worker runs them (remote::run_task: read the key, find the entry, call it with the
// rest of the request and an empty reply).
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <typeinfo>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures/detail/codec.hpp>
#include <concurrent/futures/detail/entry.hpp>
#include <concurrent/futures/errors.hpp>

#include "no_unwind_function.hpp"
#include "remote/elf_object.hpp"
#include "scenario_process.hpp"
#include "test_util.hpp"

// Functions sent to a worker (and one that counts its calls, to show a refused request never
// calls anything).
namespace entry_test {

int add(int a, int b) { return a + b; }
int negate(int a) { return -a; }

int calls = 0;
int counted(int x) {
  ++calls;
  return x;
}

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

// No symbol of the dynamic symbol table names a function of an anonymous namespace.
int unnamed_twice(int x) { return 2 * x; }

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

// --- function pointers (src/remote/function_table.cpp) -------------------------------------

// A function pointer as write_function encodes it: an unwind-table place (kind 1: object,
// offset, check) or a symbol (kind 2: object, symbol).
struct Encoded {
  std::uint8_t kind = 0;
  std::string object;
  std::uint64_t offset = 0;
  std::uint64_t check = 0;
  std::string symbol;
};

constexpr std::uint8_t kUnwindEntry = 1;
constexpr std::uint8_t kSymbol = 2;

Encoded decode_function(codec::Reader& r) {
  Encoded e;
  e.kind = r.pod<std::uint8_t>();
  codec::read(r, e.object);
  if (e.kind == kUnwindEntry) {
    e.offset = r.pod<std::uint64_t>();
    e.check = r.pod<std::uint64_t>();
  } else {
    codec::read(r, e.symbol);
  }
  return e;
}

void encode_function(codec::Writer& w, const Encoded& e) {
  w.pod(e.kind);
  codec::write(w, e.object);
  if (e.kind == kUnwindEntry) {
    w.pod(e.offset);
    w.pod(e.check);
  } else {
    codec::write(w, e.symbol);
  }
}

Encoded encoding_of(const void* function) {
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    detail::write_function(w, function);
  }
  codec::Reader r(buffer.data(), buffer.size());
  Encoded e = decode_function(r);
  EXPECT_EQ(r.remaining(), 0u);
  return e;
}

template <class F>
const void* address_of(F* function) {
  return reinterpret_cast<const void*>(function);
}

// The request for counted(x), its function pointer changed by `change`: what a corrupt or forged
// message would carry.
template <class Change>
codec::Buffer counted_request_with(int x, Change change) {
  int (*fn)(int) = &entry_test::counted;
  const codec::Buffer request = call_request(fn, x);
  codec::Reader r(request.data(), request.size());
  const auto key = r.pod<std::uint64_t>();
  Encoded e = decode_function(r);
  change(e);
  codec::Buffer changed;
  codec::Writer w(changed);
  w.pod(key);
  encode_function(w, e);
  const std::size_t arguments = r.remaining();
  w.bytes(r.take(arguments), arguments);
  return changed;
}

// The main program's load address, as the run-time linker reports it.
std::uintptr_t program_base() {
  std::uintptr_t base = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        *static_cast<std::uintptr_t*>(out) = info->dlpi_addr;
        return 1;  // the first object is the program
      },
      &base);
  return base;
}

std::exception_ptr reading_error(const codec::Buffer& encoded) {
  try {
    codec::Reader r(encoded.data(), encoded.size());
    detail::read_function(r);
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

TEST(EntryRegistryTest, FunctionPointerTravelsAsItsPlaceInTheProgramNotItsName) {
  const Encoded add = encoding_of(address_of(&entry_test::add));
  EXPECT_EQ(add.kind, kUnwindEntry);
  EXPECT_EQ(add.object, "");  // the main program
  EXPECT_EQ(add.offset, reinterpret_cast<std::uintptr_t>(&entry_test::add) - program_base());
  const Encoded negate = encoding_of(address_of(&entry_test::negate));
  EXPECT_EQ(negate.kind, kUnwindEntry);
  EXPECT_NE(negate.offset, add.offset);
  EXPECT_EQ(negate.check, add.check);  // one build of one object

  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    detail::write_function(w, address_of(&entry_test::add));
    detail::write_function(w, address_of(&entry_test::negate));
  }
  const std::string bytes(reinterpret_cast<const char*>(buffer.data()), buffer.size());
  EXPECT_EQ(bytes.find("add"), std::string::npos);  // no symbol name travels
  codec::Reader r(buffer.data(), buffer.size());
  EXPECT_EQ(detail::read_function(r), address_of(&entry_test::add));
  EXPECT_EQ(detail::read_function(r), address_of(&entry_test::negate));
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(EntryRegistryTest, FunctionsWithoutDynamicSymbolAndLibraryFunctionsRoundTrip) {
  int (*const libc_abs)(int) = &::abs;
  double (*const libm_cbrt)(double) = &::cbrt;
  const void* functions[] = {address_of(&unnamed_twice), address_of(libc_abs),
                             address_of(libm_cbrt)};
  for (const void* function : functions) {
    codec::Buffer buffer;
    {
      codec::Writer w(buffer);
      detail::write_function(w, function);
    }
    codec::Reader r(buffer.data(), buffer.size());
    EXPECT_EQ(detail::read_function(r), function);
  }
  // A library's function travels with the library's path.
  const Encoded cbrt = encoding_of(address_of(libm_cbrt));
  EXPECT_EQ(cbrt.kind, kUnwindEntry);
  EXPECT_NE(cbrt.object.find("libm"), std::string::npos) << cbrt.object;
  EXPECT_EQ(value_of<int>(serve(call_request(&unnamed_twice, 21))), 42);
  EXPECT_EQ(value_of<int>(serve(call_request(libc_abs, -3))), 3);
}

TEST(EntryRegistryTest, PointerIntoTheMiddleOfAFunctionCannotBeSent) {
  codec::Buffer buffer;
  codec::Writer w(buffer);
  const auto* start = reinterpret_cast<const char*>(&entry_test::add);
  try {
    detail::write_function(w, start + 1);
    ADD_FAILURE() << "a pointer into a function was sent";
  } catch (const concurrent::futures::SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("no function starts at its address"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(buffer.size(), 0u);
}

TEST(EntryRegistryTest, AddressOutsideTheCodeOfEveryObjectCannotBeSent) {
  const long page = sysconf(_SC_PAGESIZE);
  void* area =
      mmap(nullptr, static_cast<std::size_t>(page), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(area, MAP_FAILED);
  codec::Buffer buffer;
  codec::Writer w(buffer);
  EXPECT_THROW(detail::write_function(w, area), concurrent::futures::SerializationError);
  // Data of the program is not code either.
  EXPECT_THROW(detail::write_function(w, &entry_test::calls),
               concurrent::futures::SerializationError);
  EXPECT_EQ(buffer.size(), 0u);
  munmap(area, static_cast<std::size_t>(page));
}

// A request whose function pointer was changed: the task fails with SerializationError, and the
// function is never called.
void expect_refused_without_a_call(const codec::Buffer& request, const char* reason) {
  SCOPED_TRACE(reason);
  const int calls_before = entry_test::calls;
  const std::exception_ptr e = error_of(serve(request));
  ASSERT_TRUE(e);
  EXPECT_EQ(cftest::dynamic_type(e), typeid(concurrent::futures::SerializationError))
      << cftest::what_of(e);
  EXPECT_EQ(entry_test::calls, calls_before);
}

TEST(EntryRegistryTest, CorruptOffsetFailsTheTaskWithoutACall) {
  // The unchanged request runs: the changes below are what make it fail.
  const int calls_before = entry_test::calls;
  EXPECT_EQ(value_of<int>(serve(counted_request_with(5, [](Encoded&) {}))), 5);
  EXPECT_EQ(entry_test::calls, calls_before + 1);

  expect_refused_without_a_call(counted_request_with(5, [](Encoded& e) { e.offset += 1; }),
                                "into the function");
  expect_refused_without_a_call(counted_request_with(5, [](Encoded& e) { e.offset -= 1; }),
                                "just before the function");
  expect_refused_without_a_call(counted_request_with(5, [](Encoded& e) { e.offset = ~0ULL; }),
                                "far past every object");
  expect_refused_without_a_call(counted_request_with(5, [](Encoded& e) { e.offset = 0; }),
                                "the program's first byte");
  const std::uint64_t data_offset =
      reinterpret_cast<std::uintptr_t>(&entry_test::calls) - program_base();
  expect_refused_without_a_call(
      counted_request_with(5, [&](Encoded& e) { e.offset = data_offset; }), "program data");
}

TEST(EntryRegistryTest, WrongCheckFailsTheTaskWithoutACall) {
  // What a worker running another build of the program would see.
  expect_refused_without_a_call(counted_request_with(5, [](Encoded& e) { e.check ^= 1; }),
                                "check off by one bit");
  const std::exception_ptr e = reading_error([] {
    codec::Buffer b;
    codec::Writer w(b);
    Encoded changed = encoding_of(address_of(&entry_test::counted));
    changed.check += 1;
    encode_function(w, changed);
    return b;
  }());
  EXPECT_NE(cftest::what_of(e).find("another build"), std::string::npos) << cftest::what_of(e);
}

TEST(EntryRegistryTest, PlaceInAnObjectTheWorkerLacksOrInAnotherObjectIsRefused) {
  expect_refused_without_a_call(
      counted_request_with(5, [](Encoded& e) { e.object = "/nonexistent/libentry_test.so"; }),
      "an object the worker has not loaded");
  // libm's function at the same offset of the program: no function of the program, or not one of
  // the same build.
  double (*const libm_cbrt)(double) = &::cbrt;
  const Encoded cbrt = encoding_of(address_of(libm_cbrt));
  expect_refused_without_a_call(counted_request_with(5,
                                                     [&](Encoded& e) {
                                                       e.offset = cbrt.offset;
                                                       e.check = cbrt.check;
                                                     }),
                                "libm's place in the program");
  // And the program's function in libm.
  expect_refused_without_a_call(
      counted_request_with(5, [&](Encoded& e) { e.object = cbrt.object; }),
      "the program's place in libm");
}

TEST(EntryRegistryTest, UnknownFunctionEncodingOrOneCutShortIsASerializationError) {
  expect_refused_without_a_call(counted_request_with(5, [](Encoded& e) { e.kind = 7; }),
                                "unknown kind");
  codec::Buffer full;
  {
    codec::Writer w(full);
    detail::write_function(w, address_of(&entry_test::counted));
  }
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    codec::Reader r(full.data(), cut);
    EXPECT_THROW(detail::read_function(r), concurrent::futures::SerializationError);
  }
}

TEST(EntryRegistryTest, FunctionWithoutUnwindEntryTravelsByItsSymbol) {
  // no_unwind::triple is in no unwind table; this test program is not stripped, so its symbol
  // names it (stripped_program checks the stripped case).
  const Encoded triple = encoding_of(address_of(&no_unwind::triple));
  EXPECT_EQ(triple.kind, kSymbol);
  EXPECT_EQ(triple.object, "");
  EXPECT_NE(triple.symbol.find("triple"), std::string::npos) << triple.symbol;
  EXPECT_EQ(value_of<int>(serve(call_request(&no_unwind::triple, 14))), 42);
}

TEST(EntryRegistryTest, UnknownFunctionNameIsASerializationErrorWhenRead) {
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    encode_function(
        w,
        Encoded{.kind = kSymbol, .object = "", .symbol = "entry_test_there_is_no_such_function"});
  }
  codec::Reader r(buffer.data(), buffer.size());
  EXPECT_THROW(detail::read_function(r), concurrent::futures::SerializationError);
}

TEST(EntryRegistryTest, FunctionTableIsSafeToUseFromManyThreads) {
  // First lookups race with each other and with cached ones; every thread must get its own
  // functions back.
  int (*const libc_abs)(int) = &::abs;
  const void* functions[] = {address_of(&entry_test::add),
                             address_of(&entry_test::negate),
                             address_of(&entry_test::counted),
                             address_of(&unnamed_twice),
                             address_of(libc_abs),
                             address_of(&no_unwind::triple)};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 2000; ++round) {
        const void* function = functions[(t + round) % std::size(functions)];
        codec::Buffer buffer;
        codec::Writer w(buffer);
        detail::write_function(w, function);
        codec::Reader r(buffer.data(), buffer.size());
        if (detail::read_function(r) != function) ++mismatches;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(EntryRegistryTest, ChildForkedUnderForkGuardSendsAndReceivesFunctions) {
  // A fork launcher's child (launch_fork.cpp) uses the tables the parent held locked across
  // fork(): it must find them usable, not locked forever.
  const void* function = address_of(&entry_test::negate);
  (void)encoding_of(function);  // cached in the parent before the fork
  pid_t pid;
  {
    detail::ForkGuard guard;
    pid = fork();
  }
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int status = 1;
    try {
      codec::Buffer buffer;
      codec::Writer w(buffer);
      detail::write_function(w, function);
      detail::write_function(w, address_of(&entry_test::add));  // a first lookup in the child
      codec::Reader r(buffer.data(), buffer.size());
      const bool ok = detail::read_function(r) == function &&
                      detail::read_function(r) == address_of(&entry_test::add);
      status = ok ? 0 : 2;
    } catch (...) {
      status = 3;
    }
    _exit(status);
  }
  const std::optional<int> status = scenario::wait_child_for(pid, cftest::kDeadlock);
  if (!status) {
    scenario::kill_child(pid);
    FAIL() << "the child is stuck on a lock it inherited";
  }
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST(EntryRegistryTest, FunctionPointerCostsLittleOnceSeen) {
  // What submit pays for a function pointer it has sent before, and a worker for one it has run
  // before: one hash lookup under a mutex, and a copy of about 25 bytes.
  const void* function = address_of(&entry_test::add);
  codec::Buffer buffer;
  {
    codec::Writer w(buffer);
    detail::write_function(w, function);
    codec::Reader r(buffer.data(), buffer.size());
    ASSERT_EQ(detail::read_function(r), function);
  }
  constexpr int kRounds = 200'000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) {
    buffer.clear();
    codec::Writer w(buffer);
    detail::write_function(w, function);
  }
  const auto t1 = std::chrono::steady_clock::now();
  const void* read = nullptr;
  for (int i = 0; i < kRounds; ++i) {
    codec::Reader r(buffer.data(), buffer.size());
    read = detail::read_function(r);
  }
  const auto t2 = std::chrono::steady_clock::now();
  EXPECT_EQ(read, function);
  const double write_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / kRounds;
  const double read_ns = std::chrono::duration<double, std::nano>(t2 - t1).count() / kRounds;
  std::printf("write_function %.1f ns, read_function %.1f ns (%zu bytes)\n", write_ns, read_ns,
              buffer.size());
  RecordProperty("write_function_ns", std::to_string(write_ns));
  RecordProperty("read_function_ns", std::to_string(read_ns));
  // Bounds for a loaded machine and sanitizer builds: a few hundred times what it takes.
  EXPECT_LT(write_ns, 5000.0);
  EXPECT_LT(read_ns, 5000.0);
}

// --- the table of function starts (src/remote/elf_object.cpp) -------------------------------

// An .eh_frame_hdr: version 1, no .eh_frame pointer, a udata4 count, then entries of
// `table_encoding` whose FDE starts are `starts` (relative to the header's first byte).
std::vector<std::byte> eh_frame_hdr(std::uint8_t table_encoding,
                                    const std::vector<std::int64_t>& starts) {
  std::vector<std::byte> bytes{std::byte{1}, std::byte{0xff}, std::byte{0x03},
                               std::byte{table_encoding}};
  const auto append = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    bytes.insert(bytes.end(), b, b + n);
  };
  const auto count = static_cast<std::uint32_t>(starts.size());
  append(&count, sizeof count);
  const bool eight = (table_encoding & 0x0f) == 0x04 || (table_encoding & 0x0f) == 0x0c;
  for (const std::int64_t start : starts) {
    if (eight) {
      append(&start, 8);
      append(&start, 8);  // the FDE's address: never read
    } else {
      const auto narrow = static_cast<std::int32_t>(start);
      append(&narrow, 4);
      append(&narrow, 4);
    }
  }
  return bytes;
}

TEST(EntryRegistryTest, UnwindTableFindsExactlyTheStartsItLists) {
  for (const std::uint8_t encoding : {std::uint8_t{0x3b}, std::uint8_t{0x3c}}) {  // sdata4, sdata8
    SCOPED_TRACE("encoding " + std::to_string(encoding));
    const std::vector<std::byte> hdr = eh_frame_hdr(encoding, {-0x1000, -16, 0x40, 0x90});
    std::string why;
    const auto table = detail::UnwindTable::parse(hdr.data(), hdr.size(), why);
    ASSERT_TRUE(table) << why;
    EXPECT_EQ(table->size(), 4u);
    const auto at = [&](std::int64_t offset) {
      return reinterpret_cast<std::uintptr_t>(hdr.data()) + static_cast<std::uintptr_t>(offset);
    };
    for (const std::int64_t listed : {-0x1000, -16, 0x40, 0x90}) {
      EXPECT_TRUE(table->starts_at(at(listed))) << listed;
    }
    for (const std::int64_t other : {-0x1001, -15, 0, 0x41, 0x8f, 0x1000}) {
      EXPECT_FALSE(table->starts_at(at(other))) << other;
    }
  }
}

TEST(EntryRegistryTest, UnwindTableThisReaderCannotReadIsRefusedWithTheReason) {
  const auto refused = [](std::vector<std::byte> hdr, const char* expected) {
    SCOPED_TRACE(expected);
    std::string why;
    EXPECT_FALSE(detail::UnwindTable::parse(hdr.data(), hdr.size(), why));
    EXPECT_NE(why.find(expected), std::string::npos) << why;
  };
  std::vector<std::byte> hdr = eh_frame_hdr(0x3b, {0, 8});
  hdr[0] = std::byte{2};
  refused(hdr, "version 2");
  refused(eh_frame_hdr(0xff, {}), "no search table");
  refused(eh_frame_hdr(0x1b, {0, 8}), "search table as 0x1b");  // pcrel, not datarel
  refused(eh_frame_hdr(0x31, {0, 8}), "search table as 0x31");  // uleb128
  refused(eh_frame_hdr(0xbb, {0, 8}), "search table as 0xbb");  // indirect
  hdr = eh_frame_hdr(0x3b, {0, 8});
  hdr[1] = std::byte{0x01};  // a uleb128 .eh_frame pointer
  refused(hdr, "pointer as 0x01");
  hdr = eh_frame_hdr(0x3b, {0, 8, 16});
  hdr.pop_back();
  refused(hdr, "runs past its end");
  refused(std::vector<std::byte>(3, std::byte{1}), "truncated");
}

TEST(EntryRegistryTest, ProgramsOwnUnwindTableListsItsFunctions) {
  struct Found {
    std::optional<detail::UnwindTable> table;
    std::string why;
    bool add_in_code = false;
  } found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        auto& f = *static_cast<Found*>(out);
        f.table = detail::unwind_table_of(*info, f.why);
        const auto add = reinterpret_cast<std::uintptr_t>(&entry_test::add);
        f.add_in_code = detail::code_segment_of(*info, add).has_value();
        if (f.table) {
          EXPECT_TRUE(f.table->starts_at(add));
          EXPECT_FALSE(f.table->starts_at(add + 1));
          EXPECT_FALSE(f.table->starts_at(reinterpret_cast<std::uintptr_t>(&no_unwind::triple)));
        }
        return 1;  // the program only
      },
      &found);
  ASSERT_TRUE(found.table) << found.why;
  EXPECT_GT(found.table->size(), 100u);
  EXPECT_TRUE(found.add_in_code);
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
