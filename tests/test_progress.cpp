// docs/reference.md §5, cf::progress(range): yields every element unchanged; draws a bar on stderr
// only when it is a terminal and CF_PROGRESS is not "0"; the total comes from sized ranges, map and
// as_completed ranges; redraws at a bounded rate. The terminal is a real pseudo-terminal put on
// fd 2 for the duration of a loop. No CPython counterpart (tqdm is the model).
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A pseudo-terminal whose master side is read by a thread into a string, so that the slave
// side never fills up whatever is written to it.
class PseudoTerminal {
 public:
  explicit PseudoTerminal(unsigned short columns = 100) {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    EXPECT_GE(master_, 0);
    EXPECT_EQ(::grantpt(master_), 0);
    EXPECT_EQ(::unlockpt(master_), 0);
    slave_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY);
    EXPECT_GE(slave_, 0);
    termios mode{};
    ::tcgetattr(slave_, &mode);
    ::cfmakeraw(&mode);  // no \n -> \r\n translation: read back exactly what was written
    ::tcsetattr(slave_, TCSANOW, &mode);
    winsize size{};
    size.ws_row = 24;
    size.ws_col = columns;
    ::ioctl(master_, TIOCSWINSZ, &size);
    reader_ = std::thread([this] { read_loop(); });
  }
  ~PseudoTerminal() {
    stop_ = true;
    reader_.join();
    ::close(slave_);
    ::close(master_);
  }
  PseudoTerminal(const PseudoTerminal&) = delete;
  PseudoTerminal& operator=(const PseudoTerminal&) = delete;

  int slave() const { return slave_; }

  // Everything read so far, once `marker` has arrived (bounded by kDeadlock).
  std::string output_through(const std::string& marker) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadlock;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu_);
        if (text_.find(marker) != std::string::npos) return text_;
      }
      std::this_thread::sleep_for(1ms);  // polling a buffer filled by the reader thread
    }
    ADD_FAILURE() << "the terminal never received " << marker;
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  void read_loop() {
    char buf[4096];
    while (!stop_) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) continue;
      std::lock_guard lock(mu_);
      text_.append(buf, static_cast<std::size_t>(n));
    }
  }

  int master_ = -1;
  int slave_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string text_;
  std::thread reader_;
};

// Puts `fd` on stderr until destroyed.
class StderrRedirect {
 public:
  explicit StderrRedirect(int fd) : saved_(::dup(STDERR_FILENO)) {
    std::fflush(stderr);
    ::dup2(fd, STDERR_FILENO);
  }
  ~StderrRedirect() {
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }
  StderrRedirect(const StderrRedirect&) = delete;
  StderrRedirect& operator=(const StderrRedirect&) = delete;

 private:
  int saved_;
};

// Sets (or with nullptr unsets) CF_PROGRESS until destroyed. The tests here run on one thread.
class ProgressSetting {
 public:
  explicit ProgressSetting(const char* value) {
    if (const char* old = std::getenv("CF_PROGRESS")) old_ = old;
    if (value != nullptr) {
      ::setenv("CF_PROGRESS", value, 1);
    } else {
      ::unsetenv("CF_PROGRESS");
    }
  }
  ~ProgressSetting() {
    if (old_) {
      ::setenv("CF_PROGRESS", old_->c_str(), 1);
    } else {
      ::unsetenv("CF_PROGRESS");
    }
  }

 private:
  std::optional<std::string> old_;
};

// Marks the end of a test's output on the terminal, so output_through() knows all has arrived.
constexpr char kEnd[] = "<end>";
void write_end_marker() { (void)!::write(STDERR_FILENO, kEnd, sizeof kEnd - 1); }

// The bar's successive states, as the terminal would show them: split on \r and \n.
std::vector<std::string> drawn_lines(const std::string& output) {
  std::vector<std::string> lines;
  std::string current;
  for (char c : output) {
    if (c == '\r' || c == '\n') {
      if (!current.empty()) lines.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) lines.push_back(current);
  return lines;
}

template <class Range>
std::string run_on_terminal(Range&& range, cf::ProgressOptions options = {},
                            unsigned short columns = 100) {
  ProgressSetting on(nullptr);
  PseudoTerminal terminal(columns);
  {
    StderrRedirect redirect(terminal.slave());
    for (auto&& element : cf::progress(std::forward<Range>(range), std::move(options))) {
      (void)element;
    }
    write_end_marker();
  }
  return terminal.output_through(kEnd);
}

// ---------------------------------------------------------------------------------------------
// Elements pass through unchanged

TEST(ProgressTest, YieldsTheSameReferencesForAnLvalueRange) {
  std::vector<int> v{1, 2, 3};
  std::vector<const int*> seen;
  for (const int& x : cf::progress(v)) seen.push_back(&x);
  ASSERT_EQ(seen.size(), 3u);
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(seen[i], &v[i]);
}

TEST(ProgressTest, ElementsCanBeModifiedThroughIt) {
  std::vector<int> v{1, 2, 3};
  for (int& x : cf::progress(v)) x *= 10;
  EXPECT_EQ(v, (std::vector<int>{10, 20, 30}));
}

TEST(ProgressTest, OwnsAnRvalueRange) {
  auto make = [] { return std::vector<std::string>{"a", "b"}; };
  std::vector<std::string> seen;
  for (const std::string& s : cf::progress(make())) seen.push_back(s);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
}

TEST(ProgressTest, DereferenceHasTheWrappedRangesType) {
  std::vector<int> v;
  cf::Future<int> f;
  auto futures = std::vector<cf::Future<int>>{f};
  auto p = cf::progress(v);
  static_assert(std::is_same_v<decltype(*p.begin()), int&>);
  auto completed = cf::progress(cf::as_completed(futures));
  static_assert(std::is_same_v<decltype(*completed.begin()), cf::Future<int>>);
  f.cancel();
}

TEST(ProgressTest, InfiniteRangeStopsWhereTheLoopBreaks) {
  std::atomic<long> reads{0};
  std::vector<long> seen;
  for (long x : cf::progress(cftest::Count(5, &reads))) {
    seen.push_back(x);
    if (seen.size() == 4) break;
  }
  EXPECT_EQ(seen, (std::vector<long>{5, 6, 7, 8}));
  EXPECT_EQ(reads.load(), 4);
}

TEST(ProgressTest, CountsTheElementsMovedPast) {
  std::vector<int> v(10);
  auto p = cf::progress(v);
  for (int x : p) (void)x;
  EXPECT_EQ(p.count(), 10u);
}

TEST(ProgressTest, YieldsEveryMapResultInOrder) {
  cf::ThreadPoolExecutor ex(2);
  std::vector<int> in{1, 2, 3, 4};
  std::vector<int> out;
  for (int x : cf::progress(ex.map([](int i) { return i * i; }, in))) out.push_back(x);
  EXPECT_EQ(out, (std::vector<int>{1, 4, 9, 16}));
}

TEST(ProgressTest, YieldsEveryFutureOfAsCompleted) {
  cf::ThreadPoolExecutor ex(2);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(ex.submit([i] { return i; }));
  int sum = 0;
  for (cf::Future<int> f : cf::progress(cf::as_completed(futures, kDeadlock))) sum += f.result();
  EXPECT_EQ(sum, 10);
}

TEST(ProgressTest, PassesOnTheWrappedRangesExceptions) {
  cf::Future<int> never;
  std::vector<cf::Future<int>> futures{never};
  EXPECT_THROW(
      {
        for (auto f : cf::progress(cf::as_completed(futures, 10ms))) (void)f;
      },
      cf::TimeoutError);
  never.cancel();
}

TEST(ProgressTest, WritesNothingWhenStderrIsNotATerminal) {
  ProgressSetting on(nullptr);
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    StderrRedirect redirect(::fileno(file));
    std::vector<int> v(1000);
    for (int x : cf::progress(v, {.label = "silent"})) (void)x;
    std::atomic<long> reads{0};
    for (long x : cf::progress(cftest::Count(0, &reads))) {
      if (x == 10) break;
    }
  }
  EXPECT_EQ(std::ftell(file), 0L);
  std::fseek(file, 0, SEEK_END);
  EXPECT_EQ(std::ftell(file), 0L);
  std::fclose(file);
}

// ---------------------------------------------------------------------------------------------
// Drawing on a terminal

TEST(ProgressTerminal, DrawsABarWithTheTotalOfASizedRange) {
  std::vector<int> v(3);
  const std::string out = run_on_terminal(v, {.label = "work"});
  EXPECT_THAT(out, StartsWith("\r"));
  EXPECT_THAT(out, HasSubstr("work:   0%|"));  // the first draw, before any element
  EXPECT_THAT(out, HasSubstr("work: 100%|"));
  EXPECT_THAT(out, HasSubstr("| 3/3 ["));
  EXPECT_THAT(out, HasSubstr("it/s]"));
  EXPECT_THAT(out, EndsWith(std::string("\n") + kEnd));  // the final line is finished
}

TEST(ProgressTerminal, ShowsTheCountWithoutTotalForAnUnsizedRange) {
  std::atomic<long> reads{0};
  ProgressSetting on(nullptr);
  PseudoTerminal terminal;
  {
    StderrRedirect redirect(terminal.slave());
    for (long x : cf::progress(cftest::Count(0, &reads))) {
      if (x == 5) break;  // the line is finished when the range is destroyed
    }
    write_end_marker();
  }
  const std::string out = terminal.output_through(kEnd);
  EXPECT_THAT(out, HasSubstr("\r5 [00:00, "));
  EXPECT_THAT(out, Not(HasSubstr("%")));
  EXPECT_THAT(out, EndsWith(std::string("\n") + kEnd));
}

TEST(ProgressTerminal, TotalFromOptionsWins) {
  std::atomic<long> reads{0};
  ProgressSetting on(nullptr);
  PseudoTerminal terminal;
  {
    StderrRedirect redirect(terminal.slave());
    for (long x : cf::progress(cftest::Count(0, &reads), {.total = 8})) {
      if (x == 3) break;
    }
    write_end_marker();
  }
  EXPECT_THAT(terminal.output_through(kEnd), HasSubstr(" 3/8 ["));
}

TEST(ProgressTerminal, ShowsTotalOfMapRange) {
  cf::ThreadPoolExecutor ex(2);
  std::vector<int> in{1, 2, 3};
  EXPECT_THAT(run_on_terminal(ex.map([](int i) { return i; }, in)), HasSubstr(" 3/3 ["));
}

TEST(ProgressTerminal, ShowsTotalOfMapUnorderedRange) {
  cf::ThreadPoolExecutor ex(2);
  std::vector<int> in{1, 2, 3};
  EXPECT_THAT(run_on_terminal(ex.map_unordered([](int i) { return i; }, in)), HasSubstr(" 3/3 ["));
}

TEST(ProgressTerminal, ShowsTotalOfAsCompleted) {
  std::vector<cf::Future<int>> futures{cftest::successful_future(), cftest::successful_future(),
                                       cftest::exception_future()};
  EXPECT_THAT(run_on_terminal(cf::as_completed(futures)), HasSubstr(" 3/3 ["));
}

TEST(ProgressTerminal, CfProgressZeroDisablesTheBar) {
  ProgressSetting off("0");
  PseudoTerminal terminal;
  {
    StderrRedirect redirect(terminal.slave());
    std::vector<int> v(100);
    for (int x : cf::progress(v)) (void)x;
    write_end_marker();
  }
  EXPECT_EQ(terminal.output_through(kEnd), kEnd);
}

TEST(ProgressTerminal, OtherCfProgressValuesKeepTheBar) {
  ProgressSetting on("1");
  PseudoTerminal terminal;
  {
    StderrRedirect redirect(terminal.slave());
    std::vector<int> v(2);
    for (int x : cf::progress(v)) (void)x;
    write_end_marker();
  }
  EXPECT_THAT(terminal.output_through(kEnd), HasSubstr(" 2/2 ["));
}

TEST(ProgressTerminal, RedrawsAtABoundedRate) {
  ProgressSetting on(nullptr);
  PseudoTerminal terminal;
  std::chrono::duration<double> took{};
  {
    StderrRedirect redirect(terminal.slave());
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<long> reads{0};
    long sum = 0;
    for (long x : cf::progress(cftest::Count(0, &reads), {.total = 3'000'000})) {
      sum += x;
      if (x == 3'000'000 - 1) break;
    }
    took = std::chrono::steady_clock::now() - t0;
    EXPECT_GT(sum, 0);
    write_end_marker();
  }
  const std::string out = terminal.output_through(kEnd);
  const auto draws = static_cast<double>(std::count(out.begin(), out.end(), '\r'));
  // At most one redraw per 100 ms, plus the first and the last line.
  EXPECT_LE(draws, took.count() / 0.1 + 2) << out;
  EXPECT_GE(draws, 2);
}

TEST(ProgressTerminal, RedrawsDuringASlowLoop) {
  ProgressSetting on(nullptr);
  PseudoTerminal terminal;
  {
    StderrRedirect redirect(terminal.slave());
    std::vector<int> v(3);
    for (int x : cf::progress(v)) {
      (void)x;
      std::this_thread::sleep_for(120ms);  // the work being measured, not synchronisation
    }
    write_end_marker();
  }
  const std::vector<std::string> lines = drawn_lines(terminal.output_through(kEnd));
  // 0/3 at the start, then a redraw after each element (each takes longer than 100 ms).
  ASSERT_GE(lines.size(), 4u);
  EXPECT_THAT(lines[0], HasSubstr(" 0/3 ["));
  EXPECT_THAT(lines[0], HasSubstr("<?, ?it/s]"));
  EXPECT_THAT(lines[1], HasSubstr(" 1/3 ["));
}

TEST(ProgressTerminal, FitsTheTerminalWidth) {
  std::vector<int> v(5);
  const std::string out = run_on_terminal(v, {.label = "a rather long label"}, 40);
  for (const std::string& line : drawn_lines(out)) {
    if (line == kEnd) continue;
    EXPECT_LE(line.size(), 39u) << line;
  }
}

TEST(ProgressTerminal, FinishesTheLineWhenTheLoopStopsEarly) {
  ProgressSetting on(nullptr);
  PseudoTerminal terminal;
  {
    StderrRedirect redirect(terminal.slave());
    std::vector<int> v(10);
    for (int x : cf::progress(v)) {
      (void)x;
      break;
    }
    write_end_marker();
  }
  const std::string out = terminal.output_through(kEnd);
  EXPECT_THAT(out, HasSubstr(" 0/10 ["));
  EXPECT_THAT(out, EndsWith(std::string("\n") + kEnd));
}

TEST(ProgressTerminal, NothingIsDrawnIfIterationNeverBegins) {
  ProgressSetting on(nullptr);
  PseudoTerminal terminal;
  {
    StderrRedirect redirect(terminal.slave());
    std::vector<int> v(10);
    { auto p = cf::progress(v); }
    write_end_marker();
  }
  EXPECT_EQ(terminal.output_through(kEnd), kEnd);
}

// ---------------------------------------------------------------------------------------------
// The line's layout

std::string format(std::size_t count, std::optional<std::size_t> total, double seconds,
                   std::size_t width = 80, std::string_view label = "") {
  cf::detail::ProgressLine line;
  line.label = label;
  line.count = count;
  line.total = total;
  line.elapsed = std::chrono::duration<double>(seconds);
  line.width = width;
  return cf::detail::format_progress(line);
}

TEST(ProgressFormat, KnownTotalShowsPercentBarCountTimesAndRate) {
  const std::string line = format(50, 100, 10.0, 80, "job");
  EXPECT_THAT(line, StartsWith("job:  50%|"));
  EXPECT_THAT(line, EndsWith("| 50/100 [00:10<00:10, 5.00it/s]"));
  EXPECT_EQ(line.size(), 79u);  // the bar fills the width but the last column
  const std::size_t bar_begin = line.find('|') + 1;
  const std::size_t bar_end = line.find('|', bar_begin);
  const std::string bar = line.substr(bar_begin, bar_end - bar_begin);
  const auto filled = static_cast<std::size_t>(std::count(bar.begin(), bar.end(), '#'));
  EXPECT_EQ(filled, bar.size() / 2);
}

TEST(ProgressFormat, UnknownTotalShowsCountElapsedAndRate) {
  EXPECT_EQ(format(10, std::nullopt, 2.0, 80, "scan"), "scan: 10 [00:02, 5.00it/s]");
}

TEST(ProgressFormat, NothingDoneYetHasNoRateNorEta) {
  EXPECT_THAT(format(0, 4, 0.0), EndsWith(" 0/4 [00:00<?, ?it/s]"));
}

TEST(ProgressFormat, SlowItemsShowSecondsPerItem) {
  EXPECT_THAT(format(2, 10, 5.0), EndsWith(" 2/10 [00:05<00:20, 2.50s/it]"));
}

TEST(ProgressFormat, FastItemsUseUnits) {
  EXPECT_THAT(format(5'000'000, std::nullopt, 2.0), HasSubstr("2.50Mit/s"));
  EXPECT_THAT(format(50'000, std::nullopt, 2.0), HasSubstr("25.0kit/s"));
}

TEST(ProgressFormat, LongTimesShowHours) {
  EXPECT_THAT(format(1, 2, 3661.0), HasSubstr("[1:01:01<1:01:01, "));
}

TEST(ProgressFormat, DoneShowsFullBarAndZeroEta) {
  const std::string line = format(7, 7, 1.0, 60);
  EXPECT_THAT(line, StartsWith("100%|#"));
  EXPECT_THAT(line, Not(HasSubstr("# ")));
  EXPECT_THAT(line, HasSubstr("<00:00, "));
}

TEST(ProgressFormat, NarrowTerminalDropsTheBarThenTruncates) {
  const std::string narrow = format(1, 2, 1.0, 30);
  EXPECT_THAT(narrow, Not(HasSubstr("|")));
  EXPECT_LE(narrow.size(), 29u);
  EXPECT_LE(format(1, 2, 1.0, 10, "label").size(), 9u);
}

TEST(ProgressFormat, EmptyTotalIsComplete) { EXPECT_THAT(format(0, 0, 0.0), StartsWith("100%|")); }

}  // namespace
