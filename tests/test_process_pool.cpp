// cf::ProcessPoolExecutor (docs/reference.md §4.2), for each start method (fork, forkserver,
// spawn): what can be sent (callables, values, exceptions), worker start-up and reuse,
// max_tasks_per_child, the initializer, terminate/kill_workers, shutdown, and the executor, wait,
// as_completed and map behaviour of real worker processes. Ports CPython's test_process_pool (I),
// the process variants of the executor (E), shutdown (F), initializer (H), wait and as_completed
// tests. Failures and crashes are in test_process_failures.cpp, process hygiene in
// test_process_hygiene.cpp.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <concurrent/futures.hpp>

#include "process_test_util.hpp"
#include "test_util.hpp"

// Types whose names the tests check (RemoteError::type_name), so in a named namespace.
namespace proc_pool_test {

class CustomError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Derives from a <stdexcept> type but is not one: still a RemoteError.
class CustomLogicError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// A cereal type with a class version: cereal writes the version once per archive, with the
// first value of the type, and each reader expects it with its own first one.
struct Versioned {
  int value = 0;
  std::uint32_t version_read = 0;
  template <class Archive>
  void serialize(Archive& archive, const std::uint32_t version) {
    archive(value);
    version_read = version;
  }
};

}  // namespace proc_pool_test

CEREAL_CLASS_VERSION(proc_pool_test::Versioned, 3);

namespace {

using cftest::kDeadlock;
using proctest::ProcessGate;
using proctest::square;

// --- tasks ----------------------------------------------------------------------------------

int power(int base, int exponent) {
  int r = 1;
  for (int i = 0; i < exponent; ++i) r *= base;
  return r;
}

void fail_if_negative(int x) {
  if (x < 0) throw std::out_of_range("negative: " + std::to_string(x));
}

std::pair<int, int> divmod(int a, int b) {
  if (b == 0) throw std::domain_error("integer division or modulo by zero");
  return {a / b, a % b};
}

// Throws the exception type numbered `kind` (see kRebuiltTypes) with `message`.
int throw_kind(int kind, std::string message) {
  switch (kind) {
    case 0:
      throw std::logic_error(message);
    case 1:
      throw std::invalid_argument(message);
    case 2:
      throw std::domain_error(message);
    case 3:
      throw std::length_error(message);
    case 4:
      throw std::out_of_range(message);
    case 5:
      throw std::runtime_error(message);
    case 6:
      throw std::range_error(message);
    case 7:
      throw std::overflow_error(message);
    case 8:
      throw std::underflow_error(message);
    case 9:
      throw std::bad_alloc();
    case 10:
      throw cf::Error(message);
    case 11:
      throw cf::CancelledError(message);
    case 12:
      throw cf::TimeoutError(message);
    case 13:
      throw cf::InvalidStateError(message);
    case 14:
      throw cf::BrokenExecutor(message);
    case 15:
      throw cf::BrokenThreadPool(message);
    case 16:
      throw cf::BrokenProcessPool(message);
    case 17:
      throw cf::ShutdownError(message);
    case 18:
      throw cf::SerializationError(message);
    default:
      return kind;
  }
}

struct RebuiltType {
  int kind;
  const std::type_info& type;
};
const RebuiltType kRebuiltTypes[] = {
    {0, typeid(std::logic_error)},
    {1, typeid(std::invalid_argument)},
    {2, typeid(std::domain_error)},
    {3, typeid(std::length_error)},
    {4, typeid(std::out_of_range)},
    {5, typeid(std::runtime_error)},
    {6, typeid(std::range_error)},
    {7, typeid(std::overflow_error)},
    {8, typeid(std::underflow_error)},
    {9, typeid(std::bad_alloc)},
    {10, typeid(cf::Error)},
    {11, typeid(cf::CancelledError)},
    {12, typeid(cf::TimeoutError)},
    {13, typeid(cf::InvalidStateError)},
    {14, typeid(cf::BrokenExecutor)},
    {15, typeid(cf::BrokenThreadPool)},
    {16, typeid(cf::BrokenProcessPool)},
    {17, typeid(cf::ShutdownError)},
    {18, typeid(cf::SerializationError)},
};

int throw_custom(std::string message) { throw proc_pool_test::CustomError(message); }
int throw_custom_logic(std::string message) { throw proc_pool_test::CustomLogicError(message); }
int throw_int() { throw 42; }

// Set by the initializer, in the worker only.
int g_init_count = 0;
int g_init_marker = 0;
void count_initializer_runs() {
  ++g_init_count;
  g_init_marker = 4242;
}
std::pair<int, int> read_initializer_globals() { return {g_init_count, g_init_marker}; }
void failing_initializer() { throw std::invalid_argument("error in initializer"); }

// Runs `index`, waiting on the gate first (CPython's tests that hold a worker mid-task).
int gated_index(int index, std::string gate_dir) {
  proctest::report_started(gate_dir);
  proctest::wait_gate(gate_dir);
  return index;
}

int block_on_gate_if_last(int index, std::string gate_dir) {
  if (index == 2) proctest::wait_gate(gate_dir);
  return index;
}

// --- values ---------------------------------------------------------------------------------

// Copied bytewise: trivially copyable, no cereal functions.
struct Sample {
  int id;
  double weight;
  char tag[6];
};

enum class Color : std::uint8_t { red = 1, green = 2, blue = 3 };

using cftest::Marked;

// A function object carrying state: its bytes travel.
struct Affine {
  int a;
  int b;
  int operator()(int x) const { return a * x + b; }
};

// Not serializable (no cereal functions, not trivially copyable).
struct Opaque {
  std::string text;
};

// --- fixture --------------------------------------------------------------------------------

class ProcessPoolTest : public proctest::StartMethodTest {};

INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessPoolTest, proctest::kAllMethods,
                         proctest::MethodParamName());

// Tests of max_tasks_per_child, which fork refuses.
class ProcessPoolNonForkTest : public ProcessPoolTest {};
INSTANTIATE_TEST_SUITE_P(StartMethods, ProcessPoolNonForkTest, proctest::kNonForkMethods,
                         proctest::MethodParamName());

template <class T>
T round_trip(cf::ProcessPoolExecutor& ex, const T& value) {
  return ex.submit([](T v) { return v; }, value).result(kDeadlock);
}

// --- construction (CPython E17, I9, §1.9) ---------------------------------------------------

TEST_P(ProcessPoolTest, ZeroMaxWorkersIsInvalidArgument) {
  try {
    cf::ProcessPoolExecutor ex(options(0));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "max_workers must be greater than 0");
  }
}

TEST_P(ProcessPoolTest, DefaultMaxWorkersIsTheNumberOfUsableCpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  cf::ProcessPoolOptions o;
  o.start_method = GetParam();
  cf::ProcessPoolExecutor ex(o);
  EXPECT_EQ(ex.max_workers(), static_cast<std::size_t>(CPU_COUNT(&set)));
  EXPECT_EQ(cf::ProcessPoolExecutor(3).max_workers(), 3u);
}

TEST_P(ProcessPoolTest, MaxTasksPerChildIsRefusedOnlyWithFork) {
  cf::ProcessPoolOptions o = options(1);
  o.max_tasks_per_child = 2;
  if (is_fork()) {
    EXPECT_THROW(cf::ProcessPoolExecutor ex(o), std::invalid_argument);
  } else {
    cf::ProcessPoolExecutor ex(o);
    EXPECT_EQ(ex.submit(&square, 7).result(kDeadlock), 49);
  }
}

TEST_P(ProcessPoolTest, ForkServerRunsOnlyWithTheForkserverMethod) {
  cf::ProcessPoolExecutor ex(options());
  if (GetParam() == cf::StartMethod::forkserver) {
    const int server = ex.forkserver_pid();
    ASSERT_GT(server, 0);  // made with the executor, before any submit
    EXPECT_FALSE(proctest::process_ended(server));
    ex.shutdown();
    EXPECT_EQ(ex.forkserver_pid(), -1);
    EXPECT_TRUE(proctest::process_ended(server)) << "the fork server outlived shutdown(wait=true)";
  } else {
    EXPECT_EQ(ex.forkserver_pid(), -1);
  }
}

// --- submit: callables (CPython E1; docs/reference.md §4.2 "What may cross into a worker") -------

TEST_P(ProcessPoolTest, FunctionPointerRunsInAnotherProcess) {
  cf::ProcessPoolExecutor ex(options());
  EXPECT_EQ(ex.submit(&power, 2, 8).result(kDeadlock), 256);
  EXPECT_EQ(ex.submit(power, 3, 3).result(kDeadlock), 27);  // a function decays to a pointer
  const int pid = ex.submit(&proctest::worker_pid).result(kDeadlock);
  EXPECT_NE(pid, getpid());
}

TEST_P(ProcessPoolTest, CapturelessLambdaRuns) {
  cf::ProcessPoolExecutor ex(options());
  auto f = ex.submit([](int a, int b) { return a * 10 + b; }, 4, 2);
  EXPECT_EQ(f.result(kDeadlock), 42);
  auto pid = ex.submit([] { return static_cast<int>(getpid()); });
  EXPECT_NE(pid.result(kDeadlock), getpid());
}

TEST_P(ProcessPoolTest, AggregateFunctionObjectCarriesItsState) {
  cf::ProcessPoolExecutor ex(options());
  EXPECT_EQ(ex.submit(Affine{3, 4}, 5).result(kDeadlock), 19);
}

// A lambda's captures cannot be checked (a compile error: tests/compile_fail); cf::partial binds
// values instead, through submit, map and starmap.
TEST_P(ProcessPoolTest, PartialCarriesItsBoundValues) {
  cf::ProcessPoolExecutor ex(options());
  int a = 7;  // not constants: a constant would not need binding
  const std::string prefix = "n=";
  auto affine = cf::partial([](int k, int m, int x) { return k * x + m; }, a, -2);
  EXPECT_EQ(ex.submit(affine, 6).result(kDeadlock), 40);
  auto label =
      cf::partial([](const std::string& p, int x) { return p + std::to_string(x); }, prefix);
  EXPECT_EQ(ex.submit(label, 5).result(kDeadlock), "n=5");
  const auto two_to_the = cf::partial(&power, 2);  // a function pointer, bound too
  EXPECT_EQ(ex.submit(two_to_the, 10).result(kDeadlock), 1024);
  std::vector<int> out;
  for (int r : ex.map(affine, std::vector<int>{1, 2, 3})) out.push_back(r);
  EXPECT_EQ(out, (std::vector<int>{5, 12, 19}));
  std::vector<std::string> labels;
  for (const std::string& s : ex.starmap(label, std::vector<std::tuple<int>>{{1}, {2}})) {
    labels.push_back(s);
  }
  EXPECT_EQ(labels, (std::vector<std::string>{"n=1", "n=2"}));
}

TEST_P(ProcessPoolTest, VoidTaskGivesAFutureVoidAndItsException) {
  cf::ProcessPoolExecutor ex(options());
  cf::Future<void> ok = ex.submit(&fail_if_negative, 1);
  cf::Future<void> bad = ex.submit(&fail_if_negative, -1);
  EXPECT_NO_THROW(ok.result(kDeadlock));
  EXPECT_THROW(bad.result(kDeadlock), std::out_of_range);
}

TEST_P(ProcessPoolTest, NonTransportableCallableThroughExecutorFailsTheFuture) {
  cf::ProcessPoolExecutor pool(options());
  cf::Executor& ex = pool;
  const std::string captured = "not trivially copyable";
  cf::Future<std::size_t> f;
  ASSERT_NO_THROW(f = ex.submit([captured] { return captured.size(); }));
  const std::exception_ptr e = f.exception(kDeadlock);
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(e)) << proctest::what_of(e);
  EXPECT_EQ(ex.submit([] { return 1; }).result(kDeadlock), 1);  // the pool goes on
}

TEST_P(ProcessPoolTest, NonSerializableArgumentOrResultThroughExecutorFailsTheFuture) {
  cf::ProcessPoolExecutor pool(options());
  cf::Executor& ex = pool;
  cf::Future<std::size_t> arg;
  ASSERT_NO_THROW(arg = ex.submit([](Opaque o) { return o.text.size(); }, Opaque{"x"}));
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(arg.exception(kDeadlock)));
  cf::Future<Opaque> result;
  ASSERT_NO_THROW(result = ex.submit([] { return Opaque{"y"}; }));
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(result.exception(kDeadlock)));
}

// --- values (docs/reference.md §4.2 "What may cross into a worker") ------------------------------

TEST_P(ProcessPoolTest, EveryListedStdTypeRoundTrips) {
  cf::ProcessPoolExecutor ex(options());
  EXPECT_EQ(round_trip(ex, std::string("héllo\0world", 12)), std::string("héllo\0world", 12));
  EXPECT_EQ(round_trip(ex, std::string()), "");
  EXPECT_EQ(round_trip(ex, std::vector<int>{1, -2, 3}), (std::vector<int>{1, -2, 3}));
  EXPECT_EQ(round_trip(ex, std::vector<bool>{true, false, true}),
            (std::vector<bool>{true, false, true}));
  EXPECT_EQ(round_trip(ex, std::vector<std::string>{"a", "", "ccc"}),
            (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(round_trip(ex, std::array<int, 4>{4, 3, 2, 1}), (std::array<int, 4>{4, 3, 2, 1}));
  EXPECT_EQ(round_trip(ex, std::pair<int, std::string>{7, "seven"}),
            (std::pair<int, std::string>{7, "seven"}));
  EXPECT_EQ(round_trip(ex, std::tuple<int, double, std::string>{1, 2.5, "x"}),
            (std::tuple<int, double, std::string>{1, 2.5, "x"}));
  EXPECT_EQ(round_trip(ex, std::optional<int>(5)), std::optional<int>(5));
  EXPECT_EQ(round_trip(ex, std::optional<std::string>()), std::optional<std::string>());
  using V = std::variant<int, std::string, std::vector<double>>;
  EXPECT_EQ(round_trip(ex, V(3)), V(3));
  EXPECT_EQ(round_trip(ex, V(std::string("alt"))), V(std::string("alt")));
  EXPECT_EQ(round_trip(ex, V(std::vector<double>{0.5, 1.5})), V(std::vector<double>{0.5, 1.5}));
  const std::map<std::string, int> m{{"one", 1}, {"two", 2}};
  EXPECT_EQ(round_trip(ex, m), m);
  const std::unordered_map<int, std::string> um{{1, "a"}, {2, "b"}, {3, "c"}};
  EXPECT_EQ(round_trip(ex, um), um);
  EXPECT_EQ(round_trip(ex, std::set<int>{3, 1, 2}), (std::set<int>{1, 2, 3}));
  const std::unordered_set<std::string> us{"x", "y"};
  EXPECT_EQ(round_trip(ex, us), us);
  EXPECT_EQ(round_trip(ex, std::chrono::milliseconds(1234)), std::chrono::milliseconds(1234));
  EXPECT_EQ(round_trip(ex, std::chrono::duration<double>(0.25)),
            std::chrono::duration<double>(0.25));
  EXPECT_EQ(round_trip(ex, Color::blue), Color::blue);
  EXPECT_EQ(round_trip(ex, -1.5e300), -1.5e300);
}

TEST_P(ProcessPoolTest, NestedStdTypesRoundTrip) {
  cf::ProcessPoolExecutor ex(options());
  using Inner = std::vector<std::optional<std::pair<int, std::string>>>;
  const std::map<std::string, Inner> nested{
      {"first", {std::pair<int, std::string>{1, "one"}, std::nullopt}},
      {"empty", {}},
  };
  EXPECT_EQ(round_trip(ex, nested), nested);
  using Deep = std::tuple<std::variant<std::set<std::string>, std::array<std::vector<int>, 2>>,
                          std::unordered_map<std::string, std::vector<std::chrono::seconds>>>;
  const Deep deep{std::array<std::vector<int>, 2>{std::vector<int>{1, 2}, std::vector<int>{}},
                  {{"t", {std::chrono::seconds(1), std::chrono::seconds(2)}}}};
  EXPECT_EQ(round_trip(ex, deep), deep);
}

TEST_P(ProcessPoolTest, WorkerComputesOnReceivedContainers) {
  cf::ProcessPoolExecutor ex(options());
  auto f = ex.submit(
      [](std::map<std::string, std::vector<int>> m, std::set<int> extra) {
        long total = 0;
        for (const auto& [key, values] : m) {
          for (int v : values) total += v;
        }
        for (int v : extra) total += v;
        return total;
      },
      std::map<std::string, std::vector<int>>{{"a", {1, 2}}, {"b", {3}}}, std::set<int>{10, 20});
  EXPECT_EQ(f.result(kDeadlock), 36);
}

TEST_P(ProcessPoolTest, TriviallyCopyableStructIsCopiedBytewise) {
  cf::ProcessPoolExecutor ex(options());
  const Sample in{7, 1.25, "tag"};
  const Sample out = ex.submit(
                           [](Sample s) {
                             s.id += 1;
                             s.weight *= 2;
                             s.tag[0] = 'T';
                             return s;
                           },
                           in)
                         .result(kDeadlock);
  EXPECT_EQ(out.id, 8);
  EXPECT_EQ(out.weight, 2.5);
  EXPECT_STREQ(out.tag, "Tag");
}

TEST_P(ProcessPoolTest, CerealFunctionsWinOverTheBytewiseCopy) {
  cf::ProcessPoolExecutor ex(options());
  // Argument: saved here, loaded in the worker.
  EXPECT_TRUE(ex.submit([](Marked m) { return m.via_cereal && m.value == 5; }, Marked{5, false})
                  .result(kDeadlock));
  // Result: saved in the worker, loaded here.
  const Marked back = ex.submit([](int v) { return Marked{v * 2, false}; }, 21).result(kDeadlock);
  EXPECT_EQ(back.value, 42);
  EXPECT_TRUE(back.via_cereal);
  // Inside a container, each element goes through its cereal functions too.
  const auto many = round_trip(ex, std::vector<Marked>{{1, false}, {2, false}});
  ASSERT_EQ(many.size(), 2u);
  EXPECT_TRUE(many[0].via_cereal && many[1].via_cereal);
  EXPECT_EQ(many[1].value, 2);
}

TEST_P(ProcessPoolTest, ValuesAboveTheSharedMemoryThresholdTravelBothWays) {
  cf::ProcessPoolExecutor ex(options());
  std::string big(300 << 10, '\0');  // > 256 KiB: a memfd each way
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  const std::string back =
      ex.submit([](std::string s) { return std::string(s.rbegin(), s.rend()); }, big)
          .result(kDeadlock);
  ASSERT_EQ(back.size(), big.size());
  EXPECT_TRUE(std::equal(big.rbegin(), big.rend(), back.begin()));
}

// A position-dependent 64-bit pattern: a misplaced or missing block shows.
std::uint64_t pattern(std::size_t i) { return i * 0x9E3779B97F4A7C15ull + (i >> 17); }

TEST_P(ProcessPoolTest, SixtyFourMiBArgumentAndResultArriveIntact) {
  cf::ProcessPoolExecutor ex(options(1));
  // 64-bit words: a quarter of the loop iterations of bytes, which matters under sanitizers.
  constexpr std::size_t kWords = (std::size_t{64} << 20) / sizeof(std::uint64_t);
  std::vector<std::uint64_t> data(kWords);
  for (std::size_t i = 0; i < kWords; ++i) data[i] = pattern(i);
  auto f = ex.submit(
      [](std::vector<std::uint64_t> v) {
        // Checks what arrived, then sends back a transformed copy of the same size.
        for (std::size_t i = 0; i < v.size(); ++i) {
          if (v[i] != pattern(i)) throw std::runtime_error("corrupt at " + std::to_string(i));
          v[i] = ~v[i];
        }
        return v;
      },
      data);
  const std::vector<std::uint64_t>& back = f.result(kDeadlock);
  ASSERT_EQ(back.size(), kWords);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < kWords; ++i) mismatches += back[i] != ~pattern(i);
  EXPECT_EQ(mismatches, 0u);
}

// --- exceptions (docs/reference.md §4.2 "Exceptions"; CPython I4) --------------------------------

TEST_P(ProcessPoolTest, StdAndCfExceptionsAreRebuiltAsTheSameTypeAndMessage) {
  cf::ProcessPoolExecutor ex(options());
  std::vector<cf::Future<int>> futures;
  for (const RebuiltType& t : kRebuiltTypes) {
    futures.push_back(ex.submit(&throw_kind, t.kind, "message " + std::to_string(t.kind)));
  }
  for (std::size_t i = 0; i < futures.size(); ++i) {
    const RebuiltType& t = kRebuiltTypes[i];
    const std::exception_ptr e = futures[i].exception(kDeadlock);
    ASSERT_TRUE(e) << "kind " << t.kind;
    EXPECT_EQ(proctest::dynamic_type(e), t.type)
        << "kind " << t.kind << ": got " << proctest::dynamic_type(e).name();
    const std::string expected =
        t.kind == 9 ? std::bad_alloc().what() : "message " + std::to_string(t.kind);
    EXPECT_EQ(proctest::what_of(e), expected);
    EXPECT_FALSE(futures[i].cancelled());
  }
}

TEST_P(ProcessPoolTest, TimeoutErrorThrownByTheTaskIsJustItsError) {
  cf::ProcessPoolExecutor ex(options());
  auto f = ex.submit(&throw_kind, 12, std::string("from the task"));
  EXPECT_THROW(f.result(kDeadlock), cf::TimeoutError);
  EXPECT_TRUE(f.done());
  EXPECT_EQ(ex.submit(&square, 3).result(kDeadlock), 9);
}

TEST_P(ProcessPoolTest, CustomExceptionBecomesRemoteErrorWithTypeNameAndMessage) {
  cf::ProcessPoolExecutor ex(options());
  auto f = ex.submit(&throw_custom, std::string("custom failure"));
  try {
    f.result(kDeadlock);
    FAIL() << "no exception";
  } catch (const cf::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "proc_pool_test::CustomError");
    EXPECT_STREQ(e.what(), "custom failure");
  }
  // A RemoteError is a std::runtime_error: existing handlers still catch it.
  auto g = ex.submit(&throw_custom_logic, std::string("derived from logic_error"));
  try {
    g.result(kDeadlock);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const auto* remote = dynamic_cast<const cf::RemoteError*>(&e);
    ASSERT_NE(remote, nullptr) << typeid(e).name();
    EXPECT_EQ(remote->type_name(), "proc_pool_test::CustomLogicError");
    EXPECT_STREQ(e.what(), "derived from logic_error");
  }
}

TEST_P(ProcessPoolTest, NonStdExceptionBecomesRemoteErrorNamingItsType) {
  cf::ProcessPoolExecutor ex(options());
  const std::exception_ptr e = ex.submit(&throw_int).exception(kDeadlock);
  ASSERT_TRUE(proctest::holds<cf::RemoteError>(e)) << proctest::what_of(e);
  try {
    std::rethrow_exception(e);
  } catch (const cf::RemoteError& r) {
    EXPECT_EQ(r.type_name(), "int");
  }
}

TEST_P(ProcessPoolTest, EachFailedFutureCarriesItsOwnException) {
  cf::ProcessPoolExecutor ex(options());
  auto a = ex.submit(&throw_kind, 5, std::string("same"));
  auto b = ex.submit(&throw_kind, 5, std::string("same"));
  EXPECT_NE(a.exception(kDeadlock), b.exception(kDeadlock));
}

// --- futures of process tasks (docs/reference.md §4.2 "Scheduling") ------------------------

TEST_P(ProcessPoolTest, FutureIsRunningAndNotCancellableOnceInAWorker) {
  cf::ProcessPoolExecutor ex(options(1));
  ProcessGate gate;
  auto f = ex.submit(&proctest::block_on_gate, gate.dir());
  const auto started = gate.wait_started(1);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_TRUE(f.running());
  EXPECT_EQ(f.state(), cf::FutureState::running);
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
  gate.release();
  EXPECT_EQ(f.result(kDeadlock), started[0]);
}

TEST_P(ProcessPoolTest, ResultArrivesWhenItsTaskFinishesNotWhenTheWorkerIsIdle) {
  // One worker, held on a gate while a quick task and a blocked one queue up behind it: the
  // quick task's result must not wait for the blocked task.
  cf::ProcessPoolExecutor ex(options(1));
  ProcessGate first;
  ProcessGate last;
  auto held = ex.submit(&proctest::block_on_gate, first.dir());
  ASSERT_EQ(first.wait_started(1).size(), 1u);
  auto quick = ex.submit(&square, 11);
  auto blocked = ex.submit(&proctest::block_on_gate, last.dir());
  first.release();
  EXPECT_GT(held.result(kDeadlock), 0);
  ASSERT_EQ(last.wait_started(1).size(), 1u);  // the worker is now running the blocked task
  EXPECT_TRUE(cf::wait(std::vector<cf::Future<int>>{quick}, 5s).not_done.empty())
      << "the result is held back while the worker runs the next task";
  last.release();
  EXPECT_EQ(quick.result(kDeadlock), 121);
  EXPECT_GT(blocked.result(kDeadlock), 0);
}

TEST_P(ProcessPoolTest, DoneCallbackRunsOnceWithTheResult) {
  cf::ProcessPoolExecutor ex(options());
  auto f = ex.submit(&square, 12);
  cftest::Event called;
  std::atomic<int> calls{0};
  std::atomic<int> seen{0};
  f.add_done_callback([&](const cf::Future<int>& done) {
    seen = done.result();
    ++calls;
    called.set();
  });
  ASSERT_TRUE(called.wait());
  EXPECT_EQ(seen.load(), 144);
  ex.shutdown();
  EXPECT_EQ(calls.load(), 1);
}

// --- wait and as_completed on process futures (CPython test_wait, test_as_completed) ---------

TEST_P(ProcessPoolTest, WaitFirstCompletedReturnsTheFinishedTask) {
  cf::ProcessPoolExecutor ex(options(2));
  ProcessGate gate;
  auto blocked = ex.submit(&proctest::block_on_gate, gate.dir());
  auto quick = ex.submit(&square, 3);
  auto r = cf::wait(std::vector<cf::Future<int>>{blocked, quick}, kDeadlock, cf::FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.done[0], quick);
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_EQ(r.not_done[0], blocked);
  gate.release();
  EXPECT_GT(blocked.result(kDeadlock), 0);
}

TEST_P(ProcessPoolTest, WaitFirstExceptionReturnsOnTheRaisingTask) {
  cf::ProcessPoolExecutor ex(options(2));
  ProcessGate gate;
  auto blocked = ex.submit(&proctest::block_on_gate, gate.dir());
  auto raising = ex.submit(&throw_kind, 5, std::string("boom"));
  auto r = cf::wait({blocked, raising}, kDeadlock, cf::FIRST_EXCEPTION);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.done[0], cf::AnyFuture(raising));
  EXPECT_EQ(r.not_done.size(), 1u);
  gate.release();
}

TEST_P(ProcessPoolTest, WaitAllCompletedTimesOutOnABlockedTask) {
  cf::ProcessPoolExecutor ex(options(2));
  ProcessGate gate;
  auto blocked = ex.submit(&proctest::block_on_gate, gate.dir());
  auto quick = ex.submit(&square, 4);
  ASSERT_EQ(quick.result(kDeadlock), 16);
  auto r = cf::wait(std::vector<cf::Future<int>>{blocked, quick}, 50ms);
  EXPECT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.not_done.size(), 1u);
  gate.release();
  r = cf::wait(std::vector<cf::Future<int>>{blocked, quick}, kDeadlock);
  EXPECT_EQ(r.done.size(), 2u);
}

TEST_P(ProcessPoolTest, AsCompletedYieldsInCompletionOrder) {
  cf::ProcessPoolExecutor ex(options(3));
  ProcessGate gate;
  auto blocked = ex.submit(&proctest::block_on_gate, gate.dir());
  auto a = ex.submit(&square, 2);
  auto b = ex.submit(&square, 3);
  std::vector<cf::Future<int>> order;
  for (auto f : cf::as_completed(std::vector<cf::Future<int>>{blocked, a, b}, kDeadlock)) {
    order.push_back(f);
    if (order.size() == 2) gate.release();  // the blocked one can finish only now
  }
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order[2], blocked);
  EXPECT_TRUE((order[0] == a && order[1] == b) || (order[0] == b && order[1] == a));
}

TEST_P(ProcessPoolTest, AsCompletedTimeoutCountsUnfinishedFutures) {
  cf::ProcessPoolExecutor ex(options(2));
  ProcessGate gate;
  auto blocked = ex.submit(&proctest::block_on_gate, gate.dir());
  auto quick = ex.submit(&square, 5);
  ASSERT_EQ(quick.result(kDeadlock), 25);
  std::size_t yielded = 0;
  try {
    for (auto f : cf::as_completed(std::vector<cf::Future<int>>{blocked, quick}, 100ms)) {
      (void)f;
      ++yielded;
    }
    FAIL() << "no TimeoutError";
  } catch (const cf::TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("1 (of 2) futures unfinished"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(yielded, 1u);
  gate.release();
}

// --- map, map_unordered, starmap (CPython E3, E4, E5, E10, I3) -------------------------------

proc_pool_test::Versioned make_versioned(int x) { return {x * 10, 0}; }
int versioned_value(proc_pool_test::Versioned v) { return v.version_read == 3 ? v.value : -1; }

TEST_P(ProcessPoolTest, MapOfAVersionedCerealTypeReadsEveryItemAtEveryChunksize) {
  // Each result of a chunk is read back on its own, so each must be written as a value of its
  // own: with one writer for the chunk, cereal wrote the version only before the first result
  // and every later one in the chunk failed as truncated.
  cf::ProcessPoolExecutor ex(options());
  std::vector<int> input(20);
  for (int i = 0; i < 20; ++i) input[static_cast<std::size_t>(i)] = i;
  for (const std::size_t chunksize : {1u, 3u, 20u}) {
    SCOPED_TRACE("chunksize " + std::to_string(chunksize));
    int i = 0;
    try {
      for (const proc_pool_test::Versioned& v :
           ex.map(&make_versioned, input, cf::MapOptions{.chunksize = chunksize})) {
        EXPECT_EQ(v.value, i * 10);
        EXPECT_EQ(v.version_read, 3u);
        ++i;
      }
    } catch (const cf::SerializationError& e) {
      ADD_FAILURE() << "result " << i << ": " << e.what();
    }
    EXPECT_EQ(i, 20);
    // As arguments, a chunk's items are read back together, as they were written.
    std::vector<proc_pool_test::Versioned> args;
    for (int k = 0; k < 20; ++k) args.push_back({k, 0});
    int k = 0;
    for (int got : ex.map(&versioned_value, args, cf::MapOptions{.chunksize = chunksize})) {
      EXPECT_EQ(got, k++);
    }
  }
}

TEST_P(ProcessPoolTest, MapMatchesSequentialResultsForEveryChunksize) {
  cf::ProcessPoolExecutor ex(options(3));
  std::vector<int> input(40);
  for (int i = 0; i < 40; ++i) input[static_cast<std::size_t>(i)] = i;
  for (const std::size_t chunksize : {1u, 3u, 6u, 40u, 50u, 0u}) {
    std::vector<int> got;
    for (int v : ex.map(&square, input, cf::MapOptions{.chunksize = chunksize})) got.push_back(v);
    ASSERT_EQ(got.size(), 40u) << "chunksize " << chunksize;
    for (int i = 0; i < 40; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i * i);
  }
}

TEST_P(ProcessPoolTest, MapOverTwoRangesZipsThem) {
  cf::ProcessPoolExecutor ex(options(2));
  const std::vector<int> bases{0, 1, 2, 3, 4};
  const std::vector<int> exponents{3, 3, 3, 3, 3, 3, 3};
  std::vector<int> got;
  for (int v : ex.map(&power, bases, exponents, cf::MapOptions{.chunksize = 2})) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 8, 27, 64}));
}

TEST_P(ProcessPoolTest, MapErrorFailsOnlyItsItemInAndAcrossChunks) {
  cf::ProcessPoolExecutor ex(options(2));
  // CPython main's test_map_exception: divmod(5, [2, 3, 0, 5]) and, with chunksize 3,
  // divmod(5, [2, 0, 3, 5]).
  const std::vector<int> fives(4, 5);
  {
    auto results = ex.map(&divmod, fives, std::vector<int>{2, 3, 0, 5});
    auto it = results.begin();
    EXPECT_EQ(*it, std::make_pair(2, 1));
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 2));
    ++it;
    EXPECT_THROW(*it, std::domain_error);
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 0));
    ++it;
    EXPECT_TRUE(it == results.end());
  }
  {
    auto results =
        ex.map(&divmod, fives, std::vector<int>{2, 0, 3, 5}, cf::MapOptions{.chunksize = 3});
    auto it = results.begin();
    EXPECT_EQ(*it, std::make_pair(2, 1));
    ++it;
    EXPECT_THROW(*it, std::domain_error);
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 2));
    ++it;
    EXPECT_EQ(*it, std::make_pair(1, 0));
    ++it;
    EXPECT_TRUE(it == results.end());
  }
}

TEST_P(ProcessPoolTest, MapWithAutomaticChunksizeKeepsErrorsPerItem) {
  cf::ProcessPoolExecutor ex(options(2));
  std::vector<int> divisors(30, 1);
  divisors[17] = 0;
  std::vector<int> numerators(30, 9);
  std::size_t index = 0;
  auto results = ex.map(&divmod, numerators, divisors, cf::MapOptions{.chunksize = 0});
  for (auto it = results.begin(); it != results.end(); ++it, ++index) {
    if (index == 17) {
      EXPECT_THROW(*it, std::domain_error);
    } else {
      EXPECT_EQ(*it, std::make_pair(9, 0)) << index;
    }
  }
  EXPECT_EQ(index, 30u);
}

TEST_P(ProcessPoolTest, MapUnorderedYieldsEveryIndexOnceWithItsResult) {
  cf::ProcessPoolExecutor ex(options(3));
  std::vector<int> input(25);
  for (int i = 0; i < 25; ++i) input[static_cast<std::size_t>(i)] = i;
  std::set<std::size_t> indices;
  for (auto [index, future] : ex.map_unordered(&square, input, cf::MapOptions{.chunksize = 4})) {
    EXPECT_TRUE(future.done());
    EXPECT_EQ(future.result(), static_cast<int>(index * index));
    EXPECT_TRUE(indices.insert(index).second) << "index " << index << " twice";
  }
  EXPECT_EQ(indices.size(), 25u);
}

TEST_P(ProcessPoolTest, StarmapAppliesEachTuple) {
  cf::ProcessPoolExecutor ex(options(2));
  const std::vector<std::tuple<int, int>> args{{2, 0}, {2, 5}, {3, 2}, {10, 3}};
  std::vector<int> got;
  for (int v : ex.starmap(&power, args, cf::MapOptions{.chunksize = 3})) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{1, 32, 9, 1000}));
}

TEST_P(ProcessPoolTest, MapWithBuffersizeReadsAnInfiniteInputLazily) {
  cf::ProcessPoolExecutor ex(options(2));
  std::atomic<long> reads{0};
  auto results = ex.map([](long x) { return std::to_string(x); }, cftest::Count(0, &reads),
                        cf::MapOptions{.buffersize = 2});
  EXPECT_LE(reads.load(), 2);
  auto it = results.begin();
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i, ++it) got.push_back(*it);
  EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_LE(reads.load(), 5);  // buffersize chunks ahead of what was consumed, no more
}

TEST_P(ProcessPoolTest, MapTimeoutThrowsForTheLateItemThenEnds) {
  cf::ProcessPoolExecutor ex(options(2));
  // Workers up first: the timeout counts from the call, and starting a worker (spawn re-executes
  // the program) on a loaded machine could take most of it. 3 s: items 0 and 1 need two round
  // trips inside it, under a sanitizer too.
  auto warm_a = ex.submit(&square, 1);
  auto warm_b = ex.submit(&square, 2);
  ASSERT_EQ(warm_a.result(kDeadlock) + warm_b.result(kDeadlock), 5);
  ProcessGate gate;
  const std::vector<std::string> dirs(3, gate.dir());
  auto results = ex.map(&block_on_gate_if_last, std::vector<int>{0, 1, 2}, dirs,
                        cf::MapOptions{.timeout = std::chrono::seconds(3)});
  std::vector<int> got;
  bool timed_out = false;
  try {
    for (auto it = results.begin(); it != results.end(); ++it) got.push_back(*it);
  } catch (const cf::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
  gate.open_all();
}

// --- workers: start-up, reuse, saturation (CPython I6-I8, I9, I11, I22, I23) -----------------

TEST_P(ProcessPoolTest, WorkersStartAsTheMethodSays) {
  cf::ProcessPoolExecutor ex(options(3));
  EXPECT_TRUE(ex.worker_pids().empty()) << "no worker before the first submit";
  ASSERT_GT(ex.submit(&proctest::worker_pid).result(kDeadlock), 0);
  if (is_fork()) {
    EXPECT_EQ(ex.worker_pids().size(), 3u) << "fork starts every worker at the first submit";
  } else {
    // (The fork server reports a worker's pid asynchronously: the list may lag a little.)
    EXPECT_TRUE(proctest::eventually([&] { return ex.worker_pids().size() == 1; }))
        << "forkserver and spawn start workers on demand";
  }
}

TEST_P(ProcessPoolTest, IdleWorkerIsReusedBeforeANewOneStarts) {
  if (is_fork()) GTEST_SKIP() << "fork starts every worker at once (CPython skips it too)";
  cf::ProcessPoolExecutor ex(options(4));
  std::set<int> pids;
  for (int i = 0; i < 5; ++i) pids.insert(ex.submit(&proctest::worker_pid).result(kDeadlock));
  EXPECT_EQ(pids.size(), 1u);
  EXPECT_TRUE(proctest::eventually([&] { return ex.worker_pids().size() == 1; }));
  EXPECT_EQ(ex.worker_pids().size(), 1u);
}

TEST_P(ProcessPoolTest, SaturationNeverStartsMoreThanMaxWorkers) {
  cf::ProcessPoolExecutor ex(options(4));
  ProcessGate gate;
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 12; ++i) futures.push_back(ex.submit(&proctest::block_on_gate, gate.dir()));
  const auto started = gate.wait_started(4);
  ASSERT_EQ(started.size(), 4u);
  EXPECT_EQ(std::set<int>(started.begin(), started.end()).size(), 4u);
  EXPECT_TRUE(proctest::eventually([&] { return ex.worker_pids().size() == 4; }))
      << ex.worker_pids().size() << " workers";
  gate.open_all();
  std::set<int> pids;
  for (auto& f : futures) pids.insert(f.result(kDeadlock));
  EXPECT_LE(pids.size(), 4u);
  EXPECT_LE(ex.worker_pids().size(), 4u);
}

TEST_P(ProcessPoolNonForkTest, MaxTasksPerChildReplacesTheWorkerAfterNTasks) {
  for (const std::size_t per_child : {1u, 2u, 3u}) {
    cf::ProcessPoolOptions o = options(1);
    o.max_tasks_per_child = per_child;
    cf::ProcessPoolExecutor ex(o);
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < 6; ++i) futures.push_back(ex.submit(&proctest::worker_pid));
    std::vector<int> pids;
    for (auto& f : futures) pids.push_back(f.result(kDeadlock));
    for (std::size_t i = 1; i < pids.size(); ++i) {
      if (i % per_child == 0) {
        EXPECT_NE(pids[i], pids[i - 1])
            << "task " << i << " with max_tasks_per_child " << per_child;
      } else {
        EXPECT_EQ(pids[i], pids[i - 1])
            << "task " << i << " with max_tasks_per_child " << per_child;
      }
    }
    EXPECT_EQ(std::set<int>(pids.begin(), pids.end()).size(), (6 + per_child - 1) / per_child);
    // A worker that reached its limit leaves once its last reply is in; none is left over.
    EXPECT_TRUE(proctest::eventually([&] { return ex.worker_pids().size() <= 1; }));
  }
}

TEST_P(ProcessPoolNonForkTest, MaxTasksPerChildWithManyPendingTasksCompletesThemAll) {
  // CPython gh-115634: (max_workers, max_tasks_per_child, tasks) = (1, 2, 6) and (2, 2, 8).
  for (const auto& [workers, per_child, tasks] : {std::tuple{1, 2, 6}, std::tuple{2, 2, 8}}) {
    cf::ProcessPoolOptions o = options(static_cast<std::size_t>(workers));
    o.max_tasks_per_child = static_cast<std::size_t>(per_child);
    cf::ProcessPoolExecutor ex(o);
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < tasks; ++i) futures.push_back(ex.submit(&square, i));
    for (int i = 0; i < tasks; ++i)
      EXPECT_EQ(futures[static_cast<std::size_t>(i)].result(kDeadlock), i * i);
  }
}

TEST_P(ProcessPoolNonForkTest, ShutdownRightAfterSubmitStillReplacesWorkers) {
  // CPython test_max_tasks_early_shutdown.
  cf::ProcessPoolOptions o = options(3);
  o.max_tasks_per_child = 1;
  std::vector<cf::Future<int>> futures;
  {
    cf::ProcessPoolExecutor ex(o);
    for (int i = 0; i < 6; ++i) futures.push_back(ex.submit(&square, i));
    ex.shutdown();
  }
  for (int i = 0; i < 6; ++i) EXPECT_EQ(futures[static_cast<std::size_t>(i)].result(0s), i * i);
}

TEST_P(ProcessPoolNonForkTest, ShutdownNoWaitWithMaxTasksStillRunsQueuedTasks) {
  // CPython gh-119592 (executor kept alive).
  cf::ProcessPoolOptions o = options(1);
  o.max_tasks_per_child = 1;
  cf::ProcessPoolExecutor ex(o);
  ProcessGate gate;
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(ex.submit(&gated_index, i, gate.dir()));
  ASSERT_EQ(gate.wait_started(1).size(), 1u);
  ex.shutdown(/*wait=*/false);
  gate.open_all();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(futures[static_cast<std::size_t>(i)].result(kDeadlock), i);
}

TEST_P(ProcessPoolNonForkTest, ShutdownNoWaitAfterAnErrorWithMaxTasksDoesNotHang) {
  // CPython gh-132969, with 2 and 4 workers.
  for (const std::size_t workers : {2u, 4u}) {
    cf::ProcessPoolOptions o = options(workers);
    o.max_tasks_per_child = 1;
    cf::ProcessPoolExecutor ex(o);
    auto f1 = ex.submit(&square, 1);
    auto f2 = ex.submit(&throw_kind, 1, std::string("bad"));
    auto f3 = ex.submit(&square, 3);
    int sum = 0;
    try {
      for (auto* f : {&f1, &f2, &f3}) sum += f->result(kDeadlock);
    } catch (const std::invalid_argument&) {
    }
    EXPECT_EQ(sum, 1);
    ex.shutdown(/*wait=*/false);
    EXPECT_EQ(f3.result(kDeadlock), 9);
  }
}

// --- initializer (CPython H1, H2) -----------------------------------------------------------

TEST_P(ProcessPoolTest, InitializerRunsOnceInEachWorkerBeforeItsTasks) {
  cf::ProcessPoolOptions o = options(2);
  o.initializer = &count_initializer_runs;
  cf::ProcessPoolExecutor ex(o);
  std::vector<cf::Future<std::pair<int, int>>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(ex.submit(&read_initializer_globals));
  for (auto& f : futures) EXPECT_EQ(f.result(kDeadlock), std::make_pair(1, 4242));
  EXPECT_EQ(g_init_count, 0) << "the initializer ran in the parent";
}

TEST_P(ProcessPoolTest, FailingInitializerBreaksThePool) {
  cf::ProcessPoolOptions o = options(2);
  o.initializer = &failing_initializer;
  cf::ProcessPoolExecutor ex(o);
  try {
    auto f = ex.submit(&square, 2);
    const std::exception_ptr e = f.exception(kDeadlock);
    ASSERT_TRUE(proctest::holds<cf::BrokenProcessPool>(e)) << proctest::what_of(e);
    EXPECT_NE(proctest::what_of(e).find("error in initializer"), std::string::npos)
        << proctest::what_of(e);
  } catch (const cf::BrokenProcessPool&) {
    // submit may already know.
  }
  // From then on, submit raises.
  try {
    (void)ex.submit(&square, 3);
    FAIL() << "submit on a broken pool did not throw";
  } catch (const cf::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("error in initializer"), std::string::npos) << e.what();
  }
}

// --- terminate_workers / kill_workers (CPython 3.14 I13-I19) --------------------------------

void check_force_shutdown(cf::StartMethod method, bool kill) {
  cf::ProcessPoolOptions o;
  o.max_workers = 2;
  o.start_method = method;
  cf::ProcessPoolExecutor ex(o);
  ProcessGate gate;
  auto run1 = ex.submit(&proctest::block_on_gate, gate.dir());
  auto run2 = ex.submit(&proctest::block_on_gate, gate.dir());
  const std::vector<int> pids = gate.wait_started(2);
  ASSERT_EQ(pids.size(), 2u);
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 40; ++i) queued.push_back(ex.submit(&square, i));
  if (kill) {
    ex.kill_workers();
  } else {
    ex.terminate_workers();
  }
  for (auto* f : {&run1, &run2}) {
    const std::exception_ptr e = f->exception(kDeadlock);
    EXPECT_TRUE(proctest::holds<cf::BrokenProcessPool>(e)) << proctest::what_of(e);
  }
  std::size_t cancelled = 0;
  for (auto& f : queued) {
    ASSERT_TRUE(cf::wait(std::vector<cf::Future<int>>{f}, kDeadlock).not_done.empty());
    if (f.cancelled()) {
      ++cancelled;
    } else {
      EXPECT_TRUE(proctest::holds<cf::BrokenProcessPool>(f.exception()))
          << "a queued task ran or failed otherwise: " << proctest::what_of(f.exception());
    }
  }
  EXPECT_GT(cancelled, 0u) << "pending futures end cancelled";
  EXPECT_THROW((void)ex.submit(&square, 1), cf::ShutdownError);
  EXPECT_TRUE(proctest::all_ended_within(pids, kDeadlock)) << "a worker survived";
}

TEST_P(ProcessPoolTest, TerminateWorkersFailsRunningCancelsPendingAndStopsWorkers) {
  check_force_shutdown(GetParam(), /*kill=*/false);
}

TEST_P(ProcessPoolTest, KillWorkersFailsRunningCancelsPendingAndStopsWorkers) {
  check_force_shutdown(GetParam(), /*kill=*/true);
}

TEST_P(ProcessPoolTest, ForceShutdownWithoutWorkersOrTwiceDoesNotThrow) {
  cf::ProcessPoolExecutor fresh(options());
  EXPECT_NO_THROW(fresh.terminate_workers());
  EXPECT_NO_THROW(fresh.kill_workers());
  EXPECT_THROW((void)fresh.submit(&square, 1), cf::ShutdownError);
  cf::ProcessPoolExecutor used(options());
  EXPECT_EQ(used.submit(&square, 2).result(kDeadlock), 4);
  EXPECT_NO_THROW(used.kill_workers());
  EXPECT_NO_THROW(used.terminate_workers());
  EXPECT_NO_THROW(used.shutdown());
}

// --- shutdown (CPython F1, F4, F5, F7, F15-F18, E15) ----------------------------------------

TEST_P(ProcessPoolTest, ShutdownWaitFinishesAllWorkAndReapsEveryProcess) {
  cf::ProcessPoolExecutor ex(options(3));
  const int server = ex.forkserver_pid();
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 9; ++i) futures.push_back(ex.submit(&proctest::sleep_ms, 20));
  ASSERT_GT(futures[0].result(kDeadlock), 0);
  std::vector<int> pids = ex.worker_pids();
  ex.shutdown(/*wait=*/true);
  for (auto& f : futures) {
    ASSERT_TRUE(f.done());
    pids.push_back(f.result());
  }
  for (const int pid : pids) EXPECT_TRUE(proctest::process_ended(pid)) << "worker " << pid;
  EXPECT_TRUE(ex.worker_pids().empty());
  if (server > 0) {
    EXPECT_TRUE(proctest::process_ended(server)) << "fork server " << server;
  }
  EXPECT_EQ(ex.forkserver_pid(), -1);
  EXPECT_FALSE(proctest::has_zombie_child());
}

TEST_P(ProcessPoolTest, SubmitAndMapAfterShutdownThrowShutdownError) {
  cf::ProcessPoolExecutor ex(options());
  ex.shutdown();
  try {
    (void)ex.submit(&power, 2, 5);
    FAIL() << "no exception";
  } catch (const cf::ShutdownError& e) {
    EXPECT_STREQ(e.what(), "cannot schedule new futures after shutdown");
  }
  EXPECT_THROW((void)ex.map(&square, std::vector<int>{1, 2}), cf::ShutdownError);
}

TEST_P(ProcessPoolTest, ShutdownTwiceIsHarmless) {
  cf::ProcessPoolExecutor ex(options());
  auto f = ex.submit(&square, 6);
  ex.shutdown();
  ex.shutdown();
  ex.shutdown(false, true);
  EXPECT_EQ(f.result(0s), 36);
}

TEST_P(ProcessPoolTest, DestructorWaitsForAllWork) {
  std::vector<cf::Future<int>> futures;
  {
    cf::ProcessPoolExecutor ex(options(2));
    for (int i = 0; i < 10; ++i) futures.push_back(ex.submit(&square, i));
  }
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(futures[static_cast<std::size_t>(i)].done());
    EXPECT_EQ(futures[static_cast<std::size_t>(i)].result(), i * i);
  }
  EXPECT_FALSE(proctest::has_zombie_child());
}

TEST_P(ProcessPoolTest, ShutdownWithoutWaitStillCompletesWorkAndEndsWorkers) {
  // CPython F18 (test_shutdown_no_wait).
  cf::ProcessPoolExecutor ex(options(2));
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 8; ++i) futures.push_back(ex.submit(&proctest::sleep_ms, 10));
  ex.shutdown(/*wait=*/false);
  std::vector<int> pids;
  for (auto& f : futures) pids.push_back(f.result(kDeadlock));
  EXPECT_TRUE(proctest::all_ended_within(pids, kDeadlock));
}

TEST_P(ProcessPoolTest, ShutdownCancelFuturesCancelsPendingWork) {
  // CPython F5 (test_cancel_futures), with one worker held busy so that the queue stays full.
  cf::ProcessPoolExecutor ex(options(1));
  ProcessGate gate;
  auto blocked = ex.submit(&proctest::block_on_gate, gate.dir());
  ASSERT_EQ(gate.wait_started(1).size(), 1u);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(ex.submit(&square, i));
  ex.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  gate.release();
  ex.shutdown(/*wait=*/true);
  EXPECT_GT(blocked.result(0s), 0);
  std::size_t cancelled = 0;
  for (std::size_t i = 0; i < futures.size(); ++i) {
    ASSERT_TRUE(futures[i].done());
    if (futures[i].cancelled()) {
      ++cancelled;
    } else {
      EXPECT_EQ(futures[i].exception(), nullptr);
      EXPECT_EQ(futures[i].result(), static_cast<int>(i * i));
    }
  }
  EXPECT_GT(cancelled, 20u);
}

TEST_P(ProcessPoolTest, CancelledTaskDoesNotStallShutdown) {
  // CPython F7 (gh-94440).
  cf::ProcessPoolExecutor ex(options(1));
  EXPECT_EQ(ex.submit(&square, 2).result(kDeadlock), 4);
  (void)ex.submit(&square, 3).cancel();
  const auto start = proctest::Clock::now();
  ex.shutdown();
  EXPECT_LT(proctest::Clock::now() - start, 5s);
}

TEST_P(ProcessPoolTest, ShutdownRightAfterMapDoesNotHang) {
  // CPython E15 (test_shutdown_race_issue12456).
  cf::ProcessPoolExecutor ex(options(2));
  auto results = ex.map(&square, std::vector<int>{2, 2, 2});
  ex.shutdown();
  std::vector<int> got;
  for (int v : results) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{4, 4, 4}));
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
