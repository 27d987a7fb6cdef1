// What may cross into a worker process (transportable.hpp, docs/reference.md "What may cross
// into a worker"): the compile-time rule (bytewise.hpp, checked here with static_asserts; what it
// refuses on the concrete pool is in tests/compile_fail/), and, with real worker processes for
// each start method, every kind of value it accepts: string literals, aggregates checked field by
// field (nested, with C arrays, std members), declared types, cf::partial; through cf::Executor&
// the refused ones fail the future instead; an input that never ends needs buffersize.
#include <unistd.h>

#include <array>
#include <chrono>
#include <complex>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <concurrent/futures.hpp>

#include "infinite_range.hpp"
#include "process_test_util.hpp"
#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
namespace bw = cf::detail::bytewise;

// --- the rule, at compile time ------------------------------------------------------------

struct Point {
  int x;
  int y;
};
struct Nested {
  double weights[4];
  Point corners[2];
  struct {
    std::int16_t a;
    std::uint8_t b;
  } inner;
  std::chrono::milliseconds delay;
  std::optional<int> maybe;
  std::complex<float> z;
  bool flag;
};
struct WithPointer {
  int id;
  const char* name;
};
struct DeepPointer {
  int id;
  Point p;
  struct {
    int a;
    int* where;
  } inner;
};
struct WithStringView {
  std::string_view text;
};
struct WithSpan {
  int n;
  std::span<const int> items;
};
struct WithReference {
  int& counter;
};
struct WithConst {
  const int limit;
};
struct WithFunctionPointer {
  int (*fn)(int);
};
struct WithPointerArray {
  int* pointers[3];
};
union Either {
  int i;
  float f;
};
class Private {
 public:
  Private() = default;
  explicit Private(int v) : v_(v) {}
  int value() const { return v_; }

 private:
  int v_ = 0;
};
class Declared {
 public:
  Declared() = default;
  explicit Declared(int v) : v_(v) {}
  int value() const { return v_; }

 private:
  int v_ = 0;
};
struct Empty {};
struct Big {
  char bytes[5000];
};

}  // namespace

template <>
struct cf::bytewise_transportable<Declared> : std::true_type {};

namespace {

static_assert(bw::allowed_v<int> && bw::allowed_v<double> && bw::allowed_v<std::byte>);
static_assert(bw::allowed_v<Point> && bw::allowed_v<Nested> && bw::allowed_v<Empty>);
static_assert(bw::allowed_v<std::array<Point, 3>> && bw::allowed_v<std::optional<Point>>);
static_assert(bw::allowed_v<std::variant<int, Point>> && bw::allowed_v<Declared>);
static_assert(bw::why<int*>() == bw::Why::pointer);
static_assert(bw::why<const char*>() == bw::Why::pointer);
static_assert(bw::why<int (*)(int)>() == bw::Why::pointer);
static_assert(bw::why<int Point::*>() == bw::Why::member_pointer);
static_assert(bw::why<std::string_view>() == bw::Why::string_view);
static_assert(bw::why<std::span<int>>() == bw::Why::span);
static_assert(bw::why<std::reference_wrapper<int>>() == bw::Why::reference_wrapper);
static_assert(bw::why<WithPointer>() == bw::Why::member);
static_assert(bw::why<DeepPointer>() == bw::Why::member);
static_assert(bw::why<WithStringView>() == bw::Why::member);
static_assert(bw::why<WithSpan>() == bw::Why::member);
static_assert(bw::why<WithFunctionPointer>() == bw::Why::member);
static_assert(bw::why<WithPointerArray>() == bw::Why::member);
static_assert(bw::why<std::optional<int*>>() == bw::Why::pointer);
static_assert(bw::why<std::array<const char*, 2>>() == bw::Why::member);
static_assert(bw::why<WithReference>() == bw::Why::reference_member);
static_assert(bw::why<WithConst>() == bw::Why::reference_member);
static_assert(bw::why<Either>() == bw::Why::union_type);
static_assert(bw::why<Private>() == bw::Why::opaque);
static_assert(bw::why<std::string>() == bw::Why::not_trivially_copyable);
static_assert(bw::why<Big>() == bw::Why::too_many_fields);

// Fields of class type built through their own converting constructor, unions inside a struct
// and anonymous unions are found too; a 64x64 matrix (4096 fields) and __int128 are allowed.
union Slot {
  long n;
  const char* text;
};
struct WithVariantPointer {
  std::variant<int, int*> v;
};
struct WithReferenceWrapper {
  std::reference_wrapper<int> r;
};
struct WithOptionalVariant {
  std::optional<std::variant<int, const char*>> o;
};
struct WithUnion {
  int a;
  Slot s;
};
struct WithAnonymousUnion {
  int kind;
  union {
    int i;
    float f;
  };
  const char* label;
};
struct Matrix {
  double m[64][64];
};
struct Mixed {
  int a;
  std::variant<int, float> v;
  std::optional<int> o;
  double d[3];
  unsigned bits : 3;
};
__extension__ typedef __int128 Wide;  // not arithmetic under strict -std=c++20, yet no address
static_assert(bw::why<WithVariantPointer>() == bw::Why::class_member);
static_assert(!bw::allowed_v<WithReferenceWrapper>);
static_assert(!bw::allowed_v<WithOptionalVariant>);
static_assert(bw::why<WithUnion>() == bw::Why::class_member);
static_assert(!bw::allowed_v<WithAnonymousUnion>);
static_assert(bw::allowed_v<Matrix> && bw::allowed_v<Mixed> && bw::allowed_v<Wide>);

// Values: the codec's rule is the bytewise one for trivially copyable types.
static_assert(cf::detail::codec::serializable_v<Nested>);
static_assert(!cf::detail::codec::serializable_v<WithPointer>);
static_assert(!cf::detail::codec::serializable_v<std::string_view>);
static_assert(!cf::detail::codec::serializable_v<std::vector<std::span<int>>>);
static_assert(!cf::detail::codec::serializable_v<std::tuple<int, std::string_view>>);
static_assert(!cf::detail::codec::serializable_v<Private>);
static_assert(cf::detail::codec::serializable_v<Declared>);
static_assert(cf::detail::codec::serializable_v<std::complex<double>>);

// Callables.
int twice(int x) { return 2 * x; }
struct Scale {
  int factor;
  int operator()(int x) const { return factor * x; }
};
struct PointerFunctor {
  const int* target;
  int operator()() const { return *target; }
};
struct ReferenceFunctor {
  int& target;
  int operator()() const { return target; }
};
static_assert(cf::detail::Transportable<decltype(&twice)>);
static_assert(cf::detail::Transportable<Scale>);
static_assert(!cf::detail::Transportable<PointerFunctor>);
static_assert(!cf::detail::Transportable<ReferenceFunctor>);
static_assert(cf::detail::Transportable<decltype(cf::partial(&twice))>);
static_assert(cf::detail::Transportable<decltype(cf::partial(Scale{2}, std::string()))>);
static_assert(!cf::detail::Transportable<decltype(cf::partial(&twice, std::string_view()))>);

TEST(TransportableRuleTest, LambdasWithoutCapturesTravelThoseWithCapturesDoNot) {
  const auto captureless = [](int x) { return x; };
  int n = 3;
  const auto by_value = [n](int x) { return n * x; };
  const auto by_reference = [&n](int x) { return n * x; };
  static_assert(cf::detail::Transportable<decltype(captureless)>);
  static_assert(!cf::detail::Transportable<decltype(by_value)>);
  static_assert(!cf::detail::Transportable<decltype(by_reference)>);
  static_assert(!cf::detail::Transportable<decltype(cf::partial(by_value))>);
  static_assert(cf::detail::Transportable<decltype(cf::partial(captureless, 1))>);
  EXPECT_EQ(captureless(1) + by_value(1) + by_reference(1), 7);  // all fine in this process
}

// String literals are sent as strings; other pointers are not.
static_assert(cf::detail::sendable_argument_v<const char*>);
static_assert(!cf::detail::sendable_argument_v<char*>);
static_assert(!cf::detail::sendable_argument_v<const int*>);

// --- accepted values, in real worker processes ----------------------------------------------

class TransportableTest : public proctest::StartMethodTest {};
INSTANTIATE_TEST_SUITE_P(StartMethods, TransportableTest, proctest::kAllMethods,
                         proctest::MethodParamName());

std::string greet(const char* name) { return std::string("hello ") + name; }
std::size_t length_of(std::string text) { return text.size(); }
std::string joined(const char* a, std::string b, const char* c) { return a + b + c; }

TEST_P(TransportableTest, StringLiteralArgumentsAreSentAsStrings) {
  cf::ProcessPoolExecutor ex(options());
  EXPECT_EQ(ex.submit(&greet, "worker").result(kDeadlock), "hello worker");
  EXPECT_EQ(ex.submit(&length_of, "twelve chars").result(kDeadlock), 12u);
  EXPECT_EQ(ex.submit(&joined, "a", std::string("b"), "c").result(kDeadlock), "abc");
  std::string local = "built at run time";  // a pointer into this process's heap
  const char* pointer = local.c_str();
  EXPECT_EQ(ex.submit(&greet, pointer).result(kDeadlock), "hello built at run time");
  EXPECT_EQ(ex.submit(&length_of, "").result(kDeadlock), 0u);
}

TEST_P(TransportableTest, NullStringArgumentFailsOnlyItsFuture) {
  cf::ProcessPoolExecutor ex(options());
  const char* nothing = nullptr;
  cf::Future<std::string> f = ex.submit(&greet, nothing);
  const std::exception_ptr e = f.exception(kDeadlock);
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(e)) << proctest::what_of(e);
  EXPECT_NE(proctest::what_of(e).find("null const char*"), std::string::npos);
  EXPECT_EQ(ex.submit(&greet, "after").result(kDeadlock), "hello after");
}

Nested mirrored(Nested n) {
  for (double& w : n.weights) w = -w;
  std::swap(n.corners[0], n.corners[1]);
  n.inner.a = static_cast<std::int16_t>(n.inner.a + 1);
  n.delay *= 2;
  n.maybe = n.maybe ? std::optional<int>(*n.maybe + 1) : std::nullopt;
  n.z = std::conj(n.z);
  n.flag = !n.flag;
  return n;
}

TEST_P(TransportableTest, AggregateCheckedFieldByFieldTravelsBytewise) {
  cf::ProcessPoolExecutor ex(options());
  Nested n{};
  n.weights[0] = 1.5;
  n.weights[3] = -2.0;
  n.corners[0] = {1, 2};
  n.corners[1] = {3, 4};
  n.inner = {7, 8};
  n.delay = std::chrono::milliseconds(21);
  n.maybe = 41;
  n.z = {1.0F, 2.0F};
  n.flag = true;
  const Nested m = ex.submit(&mirrored, n).result(kDeadlock);
  EXPECT_EQ(m.weights[0], -1.5);
  EXPECT_EQ(m.weights[3], 2.0);
  EXPECT_EQ(m.corners[0].x, 3);
  EXPECT_EQ(m.corners[1].y, 2);
  EXPECT_EQ(m.inner.a, 8);
  EXPECT_EQ(m.inner.b, 8);
  EXPECT_EQ(m.delay, std::chrono::milliseconds(42));
  EXPECT_EQ(m.maybe, 42);
  EXPECT_EQ(m.z, std::complex<float>(1.0F, -2.0F));
  EXPECT_FALSE(m.flag);
}

int declared_value(Declared d) { return d.value() + 1; }

TEST_P(TransportableTest, DeclaredTypeTravelsBytewise) {
  cf::ProcessPoolExecutor ex(options());
  EXPECT_EQ(ex.submit(&declared_value, Declared(41)).result(kDeadlock), 42);
  std::vector<Declared> many{Declared(1), Declared(2)};
  EXPECT_EQ(
      ex.submit([](const std::vector<Declared>& v) { return v[0].value() + v[1].value(); }, many)
          .result(kDeadlock),
      3);
}

TEST_P(TransportableTest, AggregateFunctionObjectAndPartialCarryTheirValues) {
  cf::ProcessPoolExecutor ex(options());
  EXPECT_EQ(ex.submit(Scale{3}, 5).result(kDeadlock), 15);
  const auto add = cf::partial([](const std::string& a, const std::string& b) { return a + b; },
                               std::string("bound "));
  EXPECT_EQ(ex.submit(add, std::string("value")).result(kDeadlock), "bound value");
  EXPECT_EQ(ex.submit(add, "literal").result(kDeadlock), "bound literal");
  const auto scaled = cf::partial(Scale{4});  // a partial of a function object, nothing bound
  EXPECT_EQ(ex.submit(scaled, 2).result(kDeadlock), 8);
  std::vector<int> out;
  for (int r : ex.map(cf::partial([](int k, int x) { return k + x; }, 100),
                      std::vector<int>{1, 2, 3}, cf::MapOptions{.chunksize = 2})) {
    out.push_back(r);
  }
  EXPECT_EQ(out, (std::vector<int>{101, 102, 103}));
}

// The same partial runs unchanged on a thread pool.
TEST(TransportableThreadTest, PartialRunsOnAThreadPool) {
  cf::ThreadPoolExecutor ex(2);
  const auto add = cf::partial([](int a, int b, int c) { return a * 100 + b * 10 + c; }, 1, 2);
  EXPECT_EQ(ex.submit(add, 3).result(kDeadlock), 123);
  std::vector<int> out;
  for (int r : ex.map(add, std::vector<int>{4, 5})) out.push_back(r);
  EXPECT_EQ(out, (std::vector<int>{124, 125}));
}

// --- refused values through cf::Executor&: a failed future, never a wrong answer --------------

struct Job {
  int id;
  std::string_view name;  // holds an address: refused
};
int job_id(Job j) { return j.id; }

TEST_P(TransportableTest, RefusedValuesThroughExecutorFailTheFuture) {
  cf::ProcessPoolExecutor pool(options());
  cf::Executor& ex = pool;
  const std::string text = "abcdefghijklmnopqrstuvwxyz";
  const auto sent_view =
      ex.submit([](std::string_view v) { return v.size(); }, std::string_view(text));
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(sent_view.exception(kDeadlock)));
  int counter = 42;
  const auto by_reference = ex.submit([&counter] { return counter; });
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(by_reference.exception(kDeadlock)));
  const auto pointer = ex.submit([](const int* p) { return *p; }, &counter);
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(pointer.exception(kDeadlock)));
  const auto functor = ex.submit(PointerFunctor{&counter});
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(functor.exception(kDeadlock)));
  EXPECT_EQ(ex.submit(&twice, 21).result(kDeadlock), 42);  // the pool goes on
}

TEST_P(TransportableTest, MapOfRefusedItemsThroughExecutorFailsEachItem) {
  cf::ProcessPoolExecutor pool(options());
  cf::Executor& ex = pool;
  const std::vector<Job> jobs{{1, "a"}, {2, "b"}};
  auto results = ex.map(&job_id, jobs);
  auto it = results.begin();
  EXPECT_THROW((void)*it, cf::SerializationError);
}

// --- inputs that never end ----------------------------------------------------------------

using cftest::Naturals;  // the type system knows it never ends
static_assert(cf::detail::known_infinite_v<Naturals>);
static_assert(cf::detail::known_infinite_v<const Naturals&>);
static_assert(!cf::detail::known_infinite_v<std::vector<long>>);

long squared(long x) { return x * x; }

TEST_P(TransportableTest, InfiniteInputWithBuffersizeIsReadAsResultsAreConsumed) {
  cf::ProcessPoolExecutor ex(options());
  long sum = 0;
  long seen = 0;
  for (long r : ex.map(&squared, Naturals{}, cf::MapOptions{.chunksize = 4, .buffersize = 8})) {
    sum += r;
    if (++seen == 100) break;
  }
  EXPECT_EQ(sum, 328350);  // 0^2 + ... + 99^2
}

TEST(TransportableThreadTest, InfiniteInputWithoutBuffersizeIsRefused) {
  cf::ThreadPoolExecutor ex(2);
  // Without MapOptions at all it does not compile (tests/compile_fail); with MapOptions but no
  // buffersize, the options are known only at run time: std::invalid_argument, nothing read.
  EXPECT_THROW((void)ex.map(&squared, Naturals{}, cf::MapOptions{.chunksize = 4}),
               std::invalid_argument);
  std::vector<long> sums;
  for (long r : ex.starmap([](long a, long b) { return a + b; },
                           std::vector<std::tuple<long, long>>{{1, 2}}, cf::MapOptions{})) {
    sums.push_back(r);  // a finite input is not refused
  }
  EXPECT_EQ(sums, std::vector<long>{3});
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
