// Runs this test program again as a child process, to play one scenario that the test process
// itself must not: change its own limits or identity, receive a signal, die. main() runs the
// scenario named by the CFTEST_SCENARIO variable instead of the tests (see run_scenario_if_asked).
//
// The child's stdout and stderr come back on one pipe; it may be put in a process group of its own
// (as a shell puts a job), so that a signal can go to the whole group as a terminal's Ctrl-C does.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace scenario {

using Clock = std::chrono::steady_clock;

inline constexpr const char* kScenarioEnv = "CFTEST_SCENARIO";
// Every environment variable the tests set for their children starts so.
inline constexpr std::string_view kTestEnvPrefix = "CFTEST_";
// The exit code of a scenario that cannot run here (it says why on its output).
inline constexpr int kSkipped = 77;

// The wait status of child `pid` once it ends; nullopt if it has not ended within `timeout` (it
// is left running).
inline std::optional<int> wait_child_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  int status = 0;
  for (;;) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    if (Clock::now() > give_up) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Kills child `pid` (SIGKILL) and reaps it; returns its wait status.
inline int kill_child(pid_t pid) {
  int status = 0;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return status;
}

inline std::string own_executable() {
  char path[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string();
}

inline std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return "killed by signal " + std::to_string(WTERMSIG(status)) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "status " + std::to_string(status);
}

struct Options {
  std::vector<std::string> env;  // "NAME=value" added to the child's environment
  bool own_process_group = false;
};

class ScenarioProcess {
 public:
  ScenarioProcess(const std::string& name, Options options = {}) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      // None of the test's own variables (a scenario of ours, a gate, a spawned copy's mark)
      // leaks into the child: it has only those set here.
      const std::string_view entry(*e);
      if (!entry.starts_with(kTestEnvPrefix)) env_strings.emplace_back(entry);
    }
    env_strings.push_back(std::string(kScenarioEnv) + "=" + name);
    for (const std::string& e : options.env) env_strings.push_back(e);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string exe = own_executable();
    char* argv[] = {exe.data(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (options.own_process_group) {
      posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
      posix_spawnattr_setpgroup(&attr, 0);
    }
    const int rc = posix_spawn(&pid_, exe.c_str(), &actions, &attr, argv, envp.data());
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    out_ = out[0];
    if (rc != 0) {
      close(out_);
      throw std::runtime_error("posix_spawn of the test program failed");
    }
  }
  ScenarioProcess(const ScenarioProcess&) = delete;
  ScenarioProcess& operator=(const ScenarioProcess&) = delete;
  ~ScenarioProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
  }

  int pid() const { return pid_; }

  // The next line of its output that starts with `prefix` (earlier lines are kept in output());
  // nullopt at end of output or timeout.
  std::optional<std::string> read_line_starting(std::string_view prefix,
                                                std::chrono::milliseconds timeout) {
    const auto give_up = Clock::now() + timeout;
    for (;;) {
      std::size_t start = scanned_;
      for (std::size_t nl; (nl = all_.find('\n', start)) != std::string::npos; start = nl + 1) {
        const std::string line = all_.substr(start, nl - start);
        scanned_ = nl + 1;
        if (line.starts_with(prefix)) return line;
      }
      if (!read_some(give_up)) return std::nullopt;
    }
  }

  // Reads its output until it closes it (or the timeout runs out); everything read so far.
  const std::string& read_all(std::chrono::milliseconds timeout) {
    const auto give_up = Clock::now() + timeout;
    while (read_some(give_up)) {
    }
    return all_;
  }
  const std::string& output() const { return all_; }

  // Its wait status once it ends; nullopt if it has not ended within `timeout` (it is left
  // running).
  std::optional<int> wait_for(std::chrono::milliseconds timeout) {
    const std::optional<int> status = wait_child_for(pid_, timeout);
    if (status) pid_ = -1;
    return status;
  }

  // Its wait status once it ends, killing it with SIGKILL if it has not ended within `timeout`.
  int wait_or_kill(std::chrono::milliseconds timeout) {
    if (const std::optional<int> status = wait_for(timeout)) return *status;
    const int status = kill_child(pid_);
    pid_ = -1;
    return status;
  }

 private:
  bool read_some(Clock::time_point give_up) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{out_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[4096];
    const ssize_t n = read(out_, chunk, sizeof chunk);
    if (n <= 0) return false;
    all_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string all_;
  std::size_t scanned_ = 0;
};

// In the child: the scenario this process was started for, or nullptr in the test process.
inline const char* requested() { return std::getenv(kScenarioEnv); }

}  // namespace scenario
