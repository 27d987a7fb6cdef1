// Signals and a process pool (issue 11, "Signals"): Ctrl-C (SIGINT) or SIGTERM reaching a program
// while its process pool runs tasks, with the default action or with a handler, and a worker
// stopped by SIGSTOP while the pool shuts down. README.md, "Signals", states what is promised.
//
// The program that receives SIGINT or SIGTERM is this one, run again as a child (see
// scenario_process.hpp) in a process group of its own, as a shell runs a job: its pool has two
// workers blocked in tasks (on a ProcessGate of the test's) and more tasks queued. The test
// sends the signal to the child alone (kill) or to its whole group (a terminal's Ctrl-C), and
// checks that the child ends within 10 s, as the signal's default action or through its
// handler, and that none of its processes survives it: the test process is a child subreaper
// (PR_SET_CHILD_SUBREAPER), so every process the child leaves behind becomes the test's own
// child, and the test sees each of them end and reaps it. No orphan is left running, and no
// zombie either once the test has reaped them (their parent, when it lives, reaps them itself:
// test_process_hygiene.cpp checks that).
//
// The SIGSTOP tests run in the test process: a stopped worker, idle or running a task, must not
// make shutdown hang when the pool can end it (an idle worker, a task_timeout, kill_workers or
// terminate_workers).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <concurrent/futures.hpp>

#include "process_test_util.hpp"
#include "scenario_process.hpp"
#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
using proctest::Clock;
using proctest::ProcessGate;

constexpr const char* kGateEnv = "CFTEST_GATE_DIR";
// How long a program may take to end after the signal: generous for a loaded 2-CPU machine and
// the sanitizers (it takes milliseconds).
constexpr auto kPrompt = std::chrono::seconds(10);

// --- in the child: a program whose pool is busy when the signal comes ------------------------

enum class Ending { default_action, handler };

// Two workers blocked in tasks, two tasks queued. With Ending::handler, SIGINT and SIGTERM are
// taken by a thread (sigwait) that calls terminate_workers(); main then sees every future end,
// lets the pool go, checks that no child process is left, and exits with 128 + the signal, as a
// shell reports a death by that signal.
int busy_pool_scenario(cf::StartMethod method, Ending ending) {
  const char* gate = std::getenv(kGateEnv);
  if (gate == nullptr) return 2;
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (ending == Ending::handler) {
    // Blocked in every thread of the program (threads inherit the mask): only sigwait takes them.
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  }
  int received = 0;
  {
    cf::ProcessPoolOptions o;
    o.max_workers = 2;
    o.start_method = method;
    cf::ProcessPoolExecutor ex(o);
    std::thread handler;
    if (ending == Ending::handler) {
      handler = std::thread([&] {
        sigwait(&stop_signals, &received);
        std::printf("got signal %d\n", received);
        std::fflush(stdout);
        ex.terminate_workers();  // pending futures cancelled, running ones BrokenProcessPool
      });
    }
    std::vector<cf::Future<int>> futures;
    for (int i = 0; i < 4; ++i) futures.push_back(ex.submit(&proctest::block_on_gate, gate));
    std::printf("ready server %d\n", ex.forkserver_pid());
    std::fflush(stdout);
    (void)cf::wait(futures, kDeadlock);
    if (ending == Ending::default_action) return 3;  // the signal should have ended us before
    handler.join();
  }
  const bool clean = !proctest::has_children();
  std::printf("%s\n", clean ? "clean: no child process left" : "a child process is left");
  std::fflush(stdout);
  return clean ? 128 + received : 1;
}

// --- in the test: who is left ----------------------------------------------------------------

// Reaps what has ended among the test's children (the subreaper adopts the child's orphans)
// until every pid of `pids` is gone and no child is left, or `timeout` passes.
bool all_gone_and_reaped(const std::vector<int>& pids, std::chrono::milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  for (;;) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    bool gone = !proctest::has_children();
    for (const int pid : pids) gone = gone && !proctest::proc_stat(pid).has_value();
    if (gone) return true;
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string describe(const std::vector<int>& pids) {
  std::string text;
  for (const int pid : pids) {
    const auto s = proctest::proc_stat(pid);
    text += " " + std::to_string(pid) +
            (s ? std::string(" (state ") + s->state + ", parent " + std::to_string(s->ppid) + ")"
               : std::string(" (gone)"));
  }
  return text;
}

enum class Target { program, process_group };

struct SignalCase {
  int signal;
  Target target;
  Ending ending;
};

class SignalTest : public proctest::StartMethodTest {
 protected:
  void run(const SignalCase& c) {
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ProcessGate gate;  // never opened while the child runs: its tasks block until it is gone
    const std::string name = std::string("busy:") + proctest::method_name(GetParam()) + ":" +
                             (c.ending == Ending::handler ? "handler" : "default");
    scenario::ScenarioProcess child(
        name, {.env = {std::string(kGateEnv) + "=" + gate.dir()}, .own_process_group = true});
    const auto ready = child.read_line_starting("ready server ", kDeadlock);
    ASSERT_TRUE(ready.has_value()) << "the child did not start its pool\n" << child.output();
    std::vector<int> pids = gate.wait_started(2);
    ASSERT_EQ(pids.size(), 2u) << "the child's tasks did not start\n" << child.output();
    const int server = std::atoi(ready->c_str() + std::strlen("ready server "));
    if (server > 0) pids.push_back(server);

    const auto t0 = Clock::now();
    ASSERT_EQ(kill(c.target == Target::process_group ? -child.pid() : child.pid(), c.signal), 0);
    const auto status = child.wait_for(kPrompt);
    ASSERT_TRUE(status.has_value())
        << "the program did not end within 10 s of signal " << c.signal << "\n"
        << child.output();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    const std::string& output = child.read_all(std::chrono::seconds(1));
    if (c.ending == Ending::default_action) {
      EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == c.signal)
          << scenario::describe_status(*status) << "\n"
          << output;
    } else {
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 128 + c.signal)
          << scenario::describe_status(*status) << "\n"
          << output;
      EXPECT_NE(output.find("clean: no child process left"), std::string::npos) << output;
    }
    EXPECT_TRUE(all_gone_and_reaped(pids, kPrompt))
        << "a process of the pool outlived the program:" << describe(pids);
    std::cout << "[          ] ended " << took.count() << " ms after the signal\n";
  }
};

INSTANTIATE_TEST_SUITE_P(StartMethods, SignalTest, proctest::kAllMethods,
                         proctest::MethodParamName());

TEST_P(SignalTest, CtrlCToTheProcessGroupEndsTheProgramAndEveryWorker) {
  run({SIGINT, Target::process_group, Ending::default_action});
}

TEST_P(SignalTest, SigintToTheProgramAloneEndsItAndEveryWorker) {
  run({SIGINT, Target::program, Ending::default_action});
}

TEST_P(SignalTest, SigtermToTheProgramEndsItAndEveryWorker) {
  run({SIGTERM, Target::program, Ending::default_action});
}

TEST_P(SignalTest, CtrlCHandledByTerminateWorkersEndsTheProgramCleanly) {
  run({SIGINT, Target::process_group, Ending::handler});
}

TEST_P(SignalTest, SigtermHandledByTerminateWorkersEndsTheProgramCleanly) {
  run({SIGTERM, Target::program, Ending::handler});
}

// --- SIGSTOP ----------------------------------------------------------------------------------

// Runs `fn` on a thread; true if it returns within `timeout`. Otherwise `unstick` runs (it
// must let `fn` finish: the thread is joined either way) and the answer is false.
bool returns_within(std::chrono::milliseconds timeout, const std::function<void()>& fn,
                    const std::function<void()>& unstick) {
  std::promise<void> done;
  auto returned = done.get_future();
  std::thread runner([&] {
    fn();
    done.set_value();
  });
  const bool in_time = returned.wait_for(timeout) == std::future_status::ready;
  if (!in_time) unstick();
  runner.join();
  return in_time;
}

// The worker's stopped ("T") state, seen in /proc (SIGSTOP takes effect asynchronously).
bool stopped(int pid) {
  return proctest::eventually([&] {
    const auto s = proctest::proc_stat(pid);
    return s && s->state == 'T';
  });
}

class StoppedWorkerTest : public proctest::StartMethodTest {};

INSTANTIATE_TEST_SUITE_P(StartMethods, StoppedWorkerTest, proctest::kAllMethods,
                         proctest::MethodParamName());

TEST_P(StoppedWorkerTest, StoppedIdleWorkerDoesNotHangShutdown) {
  std::optional<cf::ProcessPoolExecutor> ex(std::in_place, options(2));
  const int pid = ex->submit(&proctest::worker_pid).result(kDeadlock);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  ASSERT_TRUE(stopped(pid));
  const auto t0 = Clock::now();
  // An idle worker told to leave that does not is killed after a grace period (seconds).
  EXPECT_TRUE(returns_within(
      kPrompt, [&] { ex->shutdown(true); }, [&] { kill(pid, SIGCONT); }))
      << "shutdown(wait=true) hung on a stopped idle worker";
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  std::cout << "[          ] shutdown returned after " << took.count() << " ms\n";
  EXPECT_TRUE(proctest::process_ended(pid));
  ex.reset();
}

TEST_P(StoppedWorkerTest, StoppedWorkerRunningATaskIsKilledByTaskTimeoutAndShutdownReturns) {
  cf::ProcessPoolOptions o = options(1);
  o.task_timeout = std::chrono::seconds(1);
  std::optional<cf::ProcessPoolExecutor> ex(std::in_place, o);
  ProcessGate gate;
  auto f = ex->submit(&proctest::report_then_sleep, gate.dir(), 60'000);
  const auto started = gate.wait_started(1);
  ASSERT_EQ(started.size(), 1u);
  ASSERT_EQ(kill(started[0], SIGSTOP), 0);
  ASSERT_TRUE(stopped(started[0]));
  EXPECT_TRUE(returns_within(
      kPrompt, [&] { ex->shutdown(true); }, [&] { kill(started[0], SIGKILL); }))
      << "shutdown(wait=true) hung on a stopped worker despite task_timeout";
  EXPECT_TRUE(proctest::holds<cf::TimeoutError>(f.exception(std::chrono::seconds(0))))
      << proctest::what_of(f.exception(std::chrono::seconds(0)));
  ex.reset();
}

void expect_stop_ends_stopped_worker(cf::ProcessPoolOptions o, bool with_sigkill) {
  std::optional<cf::ProcessPoolExecutor> ex(std::in_place, o);
  ProcessGate gate;
  auto running = ex->submit(&proctest::report_then_sleep, gate.dir(), 60'000);
  const auto started = gate.wait_started(1);
  ASSERT_EQ(started.size(), 1u);
  auto queued = ex->submit(&proctest::square, 3);
  ASSERT_EQ(kill(started[0], SIGSTOP), 0);
  ASSERT_TRUE(stopped(started[0]));
  // Without task_timeout a stopped task is a task that has not finished: shutdown(wait=true)
  // would wait for it, by contract. What returns at once is shutdown(wait=false), and
  // terminate_workers/kill_workers end the stopped worker.
  EXPECT_TRUE(returns_within(
      std::chrono::seconds(2), [&] { ex->shutdown(false, true); }, [] {}));
  EXPECT_TRUE(returns_within(
      kPrompt,
      [&] {
        if (with_sigkill) {
          ex->kill_workers();
        } else {
          ex->terminate_workers();  // a stopped process dies of a fatal signal too
        }
        ex->shutdown(true);
      },
      [&] { kill(started[0], SIGKILL); }))
      << "the pool did not end its stopped worker";
  EXPECT_TRUE(proctest::holds<cf::BrokenProcessPool>(running.exception(std::chrono::seconds(0))));
  EXPECT_TRUE(queued.cancelled());
  ex.reset();
  EXPECT_TRUE(proctest::process_ended(started[0]));
}

TEST_P(StoppedWorkerTest, KillWorkersEndsAStoppedWorkerAndShutdownReturns) {
  expect_stop_ends_stopped_worker(options(1), /*with_sigkill=*/true);
}

TEST_P(StoppedWorkerTest, TerminateWorkersEndsAStoppedWorkerAndShutdownReturns) {
  expect_stop_ends_stopped_worker(options(1), /*with_sigkill=*/false);
}

int run_scenario(std::string_view scenario) {
  // busy:<method>:<default|handler>
  const auto first = scenario.find(':');
  const auto second = scenario.find(':', first + 1);
  if (scenario.substr(0, first) != "busy" || second == std::string_view::npos) return 2;
  const auto method = proctest::method_from_name(scenario.substr(first + 1, second - first - 1));
  const auto ending =
      scenario.substr(second + 1) == "handler" ? Ending::handler : Ending::default_action;
  try {
    return busy_pool_scenario(method, ending);
  } catch (const std::exception& e) {
    std::printf("scenario failed: %s\n", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  if (const char* name = scenario::requested()) return run_scenario(name);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
