// The drawing side of cf::progress (see progress.hpp): terminal checks, the line's layout
// (tqdm's), and the rate-limited redraw.
#include "concurrent/futures/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace concurrent::futures::detail {
namespace {

using namespace std::chrono_literals;

// Redraw at most this often: fast enough to look live, rare enough to cost nothing.
constexpr auto kRedrawInterval = 100ms;
// Aim to read the clock about this often; the stride between reads doubles while reads come
// faster than half of it and halves while they come slower than twice it.
constexpr auto kCheckInterval = 20ms;
// A cap on the stride, so that a loop that suddenly slows down is noticed within this many
// elements. Reading the clock once per 256 elements is well below a nanosecond per element.
constexpr std::size_t kMaxStride = 256;

// 00:42, 12:03, 1:02:03 (tqdm's format_interval).
std::string format_interval(double seconds) {
  const auto total = static_cast<long long>(std::max(0.0, seconds));
  const long long h = total / 3600;
  const long long m = total / 60 % 60;
  const long long s = total % 60;
  char buf[32];
  if (h > 0) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", h, m, s);
  } else {
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", m, s);
  }
  return buf;
}

// 123.45it/s, 12.3kit/s, 4.56Mit/s; below one per second, 2.50s/it.
std::string format_rate(std::size_t count, double seconds) {
  char buf[32];
  if (count == 0 || seconds <= 0) return "?it/s";
  const double rate = static_cast<double>(count) / seconds;
  if (rate < 1) {
    std::snprintf(buf, sizeof buf, "%.2fs/it", 1 / rate);
  } else if (rate >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fMit/s", rate / 1e6);
  } else if (rate >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.1fkit/s", rate / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2fit/s", rate);
  }
  return buf;
}

std::size_t terminal_width() noexcept {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void write_all(const std::string& text) noexcept {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr is gone: a progress bar is not worth failing for
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string format_progress(const ProgressLine& line) {
  const std::size_t width = std::max<std::size_t>(line.width, 2) - 1;  // never the last column
  const double elapsed = line.elapsed.count();
  std::string prefix;
  if (!line.label.empty()) {
    prefix.append(line.label);
    prefix += ": ";
  }
  std::string text;
  if (line.total) {
    const std::size_t total = *line.total;
    const double fraction =
        total == 0 ? 1.0
                   : std::min(1.0, static_cast<double>(line.count) / static_cast<double>(total));
    std::string eta = "?";
    if (line.count >= total) {
      eta = format_interval(0);
    } else if (line.count > 0 && elapsed > 0) {
      eta = format_interval(elapsed / static_cast<double>(line.count) *
                            static_cast<double>(total - line.count));
    }
    char percent[8];
    std::snprintf(percent, sizeof percent, "%3d%%", static_cast<int>(fraction * 100));
    const std::string head = prefix + percent;
    const std::string tail = " " + std::to_string(line.count) + "/" + std::to_string(total) + " [" +
                             format_interval(elapsed) + "<" + eta + ", " +
                             format_rate(line.count, elapsed) + "]";
    const std::size_t fixed = head.size() + tail.size() + 2;  // the two '|'
    text = head;
    if (width >= fixed + 4) {  // room for a bar worth drawing
      const std::size_t cells = width - fixed;
      const auto filled =
          static_cast<std::size_t>(std::floor(fraction * static_cast<double>(cells)));
      text += '|';
      text.append(filled, '#');
      text.append(cells - filled, ' ');
      text += '|';
    }
    text += tail;
  } else {
    text = prefix + std::to_string(line.count) + " [" + format_interval(elapsed) + ", " +
           format_rate(line.count, elapsed) + "]";
  }
  if (text.size() > width) text.resize(width);
  return text;
}

bool progress_enabled() noexcept {
  if (::isatty(STDERR_FILENO) != 1) return false;
  const char* setting = std::getenv("CF_PROGRESS");
  return setting == nullptr || std::strcmp(setting, "0") != 0;
}

ProgressMeter::ProgressMeter(std::string label, std::optional<std::size_t> total)
    : label_(std::move(label)),
      total_(total),
      enabled_(progress_enabled()),
      next_check_(std::numeric_limits<std::size_t>::max()),
      start_(Clock::now()),
      last_check_(start_),
      last_draw_(start_) {}

ProgressMeter::~ProgressMeter() {
  if (started_) finish();
}

void ProgressMeter::start() noexcept {
  if (started_ || !enabled_) {
    started_ = true;
    return;
  }
  started_ = true;
  next_check_ = count_ + stride_;
  const auto now = Clock::now();
  last_check_ = now;
  draw(now, /*final=*/false);
}

void ProgressMeter::check() noexcept {
  const auto now = Clock::now();
  const auto since_check = now - last_check_;
  if (since_check < kCheckInterval / 2) {
    stride_ = std::min(stride_ * 2, kMaxStride);
  } else if (since_check > kCheckInterval * 2 && stride_ > 1) {
    stride_ /= 2;
  }
  last_check_ = now;
  next_check_ = count_ + stride_;
  if (now - last_draw_ >= kRedrawInterval) draw(now, /*final=*/false);
}

void ProgressMeter::finish() noexcept {
  if (finished_) return;
  finished_ = true;
  next_check_ = std::numeric_limits<std::size_t>::max();
  if (enabled_ && started_) draw(Clock::now(), /*final=*/true);
}

void ProgressMeter::draw(Clock::time_point now, bool final) noexcept {
  try {
    ProgressLine line;
    line.label = label_;
    line.count = count_;
    line.total = total_;
    line.elapsed = now - start_;
    line.width = terminal_width();
    const std::string text = format_progress(line);
    std::string out = "\r" + text;
    // Blank what is left of a longer previous line (no escape codes: works on any terminal).
    if (text.size() < last_length_) out.append(last_length_ - text.size(), ' ');
    if (final) out += '\n';
    write_all(out);
    last_length_ = text.size();
    last_draw_ = now;
  } catch (...) {
    // Out of memory formatting a progress line: skip this redraw.
  }
}

}  // namespace concurrent::futures::detail
