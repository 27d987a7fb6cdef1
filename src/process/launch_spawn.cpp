// The spawn start method: the program is started afresh (/proc/self/exe, same arguments), finds
// its channel in the environment, and serves from serve_if_worker at the top of main.
#include <spawn.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "concurrent/futures/process_pool.hpp"
#include "process/child.hpp"
#include "process/launcher.hpp"
#include "process/worker_loop.hpp"

extern char** environ;

namespace concurrent::futures {

namespace detail::process {

namespace {

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string current;
  for (const char c : all) {
    if (c == '\0') {
      args.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (args.empty()) args.emplace_back("cfutures-worker");
  return args;
}

class SpawnLauncher final : public Launcher {
 public:
  pid_t launch(std::uint64_t /*worker*/, UniqueFd channel) override {
    std::vector<std::string> args = own_command_line();
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      if (entry.starts_with(kWorkerFdEnv) || entry.starts_with(kParentPidEnv)) continue;
      env_strings.emplace_back(entry);
    }
    env_strings.push_back(std::string(kWorkerFdEnv) + "=3");
    env_strings.push_back(std::string(kParentPidEnv) + "=" + std::to_string(getpid()));
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // The channel becomes descriptor 3 (dup2 clears close-on-exec); nothing else is inherited.
    posix_spawn_file_actions_adddup2(&actions, channel.get(), 3);
    posix_spawn_file_actions_addclosefrom_np(&actions, 4);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
      throw std::system_error(rc, std::generic_category(), "posix_spawn of a worker failed");
    return pid;
  }
};

}  // namespace

std::unique_ptr<Launcher> make_spawn_launcher() { return std::make_unique<SpawnLauncher>(); }

bool is_spawned_worker() noexcept { return std::getenv(kWorkerFdEnv) != nullptr; }

}  // namespace detail::process

void serve_if_worker(int /*argc*/, char** /*argv*/) {
  const char* fd_text = std::getenv(detail::process::kWorkerFdEnv);
  if (fd_text == nullptr) return;
  const char* parent_text = std::getenv(detail::process::kParentPidEnv);
  const int fd = std::atoi(fd_text);
  const pid_t parent = parent_text != nullptr ? static_cast<pid_t>(std::atol(parent_text)) : 0;
  unsetenv(detail::process::kWorkerFdEnv);
  unsetenv(detail::process::kParentPidEnv);
  detail::process::prepare_child(fd, parent);
  detail::process::serve(fd);
}

}  // namespace concurrent::futures
