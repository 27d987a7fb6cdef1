// Small system helpers shared by the compiled parts of the library.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace concurrent::futures::detail {

// Whether AddressSanitizer is built in: the library's own memory caches (task blocks, spare
// buffer storage) are then off, so that a use after free is still reported.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

[[noreturn]] inline void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// What an error of starting a process or making a descriptor means, for messages: its name and,
// for the limits a user can meet, which one ("EAGAIN: the limit on processes (RLIMIT_NPROC) may be
// reached"); the name alone for others, and nothing for an error that has no name.
inline std::string errno_cause(int error) {
  const char* name = strerrorname_np(error);
  if (name == nullptr) return {};
  switch (error) {
    case EAGAIN:
      return std::string(name) +
             ": the limit on processes and threads (RLIMIT_NPROC) may be reached";
    case EMFILE:
      return std::string(name) + ": this process has its most descriptors open (RLIMIT_NOFILE)";
    case ENFILE:
      return std::string(name) + ": the system's table of open files is full";
    case ENOMEM:
      return std::string(name) + ": out of memory";
    default:
      return name;
  }
}

// The CPUs this process may run on (its affinity mask), as CPython's os.process_cpu_count().
inline std::size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<std::size_t>(CPU_COUNT(&set));
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

// Owns one file descriptor (a socket, pidfd, eventfd, epoll instance) and closes it once.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace concurrent::futures::detail
