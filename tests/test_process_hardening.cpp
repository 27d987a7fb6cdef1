// Bytes from a worker gone wrong (docs/reference.md §4.2 "Failures"), with real processes: a worker
// whose task writes a corrupt frame, a truncated one (then exits, or stalls), an oversized frame
// header, or a shared payload larger than its memfd to its channel is a crash under
// on_worker_crash. The parent survives, buffers nothing the header announces, the task fails with
// BrokenProcessPool saying why, and with replace_worker the pool goes on. In the other direction,
// a task request naming an entry or a function the worker has not registered runs nothing: the
// reply is an error and the worker goes on serving.
//
// The tasks write to their worker's channel through process::worker_channel_fd(), an internal
// accessor of the worker loop (src/process/worker_loop.hpp). Every wait is bounded.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures.hpp>
#include <concurrent/futures/detail/entry.hpp>

#include "process/channel.hpp"
#include "process/worker_loop.hpp"
#include "process_test_util.hpp"
#include "remote/protocol.hpp"
#include "test_util.hpp"

namespace {

namespace codec = cf::detail::codec;
namespace process = cf::detail::process;
namespace remote = cf::detail::remote;
using cftest::kDeadlock;
using proctest::square;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A directory of its own, removed with what is in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cftest-hardening-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// --- tasks that write to their own worker's channel -------------------------------------------

process::FrameHeader reply_header(std::uint32_t size, std::uint64_t id = 1) {
  process::FrameHeader h{};
  h.size = size;
  h.type = static_cast<std::uint8_t>(remote::MessageType::reply);
  h.id = id;
  return h;
}

void write_raw(const void* data, std::size_t size) {
  const int fd = process::worker_channel_fd();
  if (fd < 0) std::abort();  // not in a worker: the test is wrong
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd, p, size);
    if (n <= 0) return;  // the parent stopped reading: it is about to kill this worker
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Sleeps until the parent kills the worker (bounded, in case it never does).
int stall() {
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return -1;
}

enum class Corruption : int {
  bad_flags,        // a header whose flags are neither 0 nor 1
  unknown_type,     // a message type the protocol does not have
  unheld_reply,     // a reply for a task the worker was never handed
  truncated_exit,   // half a frame, then the worker exits
  oversized,        // a header announcing 4 GiB inline, then 64 MiB of bytes
  shared_past_end,  // a shared payload of 1 MiB in a memfd of 4 KiB
};

const char* corruption_name(Corruption c) {
  switch (c) {
    case Corruption::bad_flags:
      return "BadFlags";
    case Corruption::unknown_type:
      return "UnknownType";
    case Corruption::unheld_reply:
      return "UnheldReply";
    case Corruption::truncated_exit:
      return "TruncatedThenExit";
    case Corruption::oversized:
      return "OversizedHeader";
    case Corruption::shared_past_end:
      return "SharedPayloadPastItsMemfd";
  }
  return "Unknown";
}

int write_corruption(int which) {
  switch (static_cast<Corruption>(which)) {
    case Corruption::bad_flags: {
      process::FrameHeader h = reply_header(8);
      h.fds = 0xff;
      write_raw(&h, sizeof h);
      return stall();
    }
    case Corruption::unknown_type: {
      process::FrameHeader h = reply_header(0);
      h.type = 77;
      write_raw(&h, sizeof h);
      return stall();
    }
    case Corruption::unheld_reply: {
      const process::FrameHeader h = reply_header(1, ~std::uint64_t{0});
      const std::uint8_t status = 0;
      write_raw(&h, sizeof h);
      write_raw(&status, 1);
      return stall();
    }
    case Corruption::truncated_exit: {
      const process::FrameHeader h = reply_header(100);
      const char some[10] = {};
      write_raw(&h, sizeof h);
      write_raw(some, sizeof some);
      _exit(0);
    }
    case Corruption::oversized: {
      const process::FrameHeader h = reply_header(0xfffffff0u);
      write_raw(&h, sizeof h);
      const std::vector<char> chunk(1 << 20, 'x');
      for (int i = 0; i < 64; ++i) write_raw(chunk.data(), chunk.size());
      return stall();
    }
    case Corruption::shared_past_end: {
      const int memfd = memfd_create("short", MFD_CLOEXEC);
      if (memfd < 0 || ftruncate(memfd, 4096) != 0) std::abort();
      process::FrameHeader h = reply_header(1 << 20);
      h.shared = 1;
      iovec iov{&h, sizeof h};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &memfd, sizeof memfd);
      if (sendmsg(process::worker_channel_fd(), &msg, MSG_NOSIGNAL) < 0) std::abort();
      return stall();
    }
  }
  return -1;
}

// Half a frame, then nothing: to the parent, a task that has not replied yet.
int write_truncated_then_stall() {
  const process::FrameHeader h = reply_header(100);
  const char some[10] = {};
  write_raw(&h, sizeof h);
  write_raw(some, sizeof some);
  return stall();
}

// --- a pool whose worker writes each corruption, per start method and crash policy ------------

using Case = std::tuple<cf::StartMethod, cf::CrashPolicy, Corruption>;

class CorruptFrameTest : public ::testing::TestWithParam<Case> {
 protected:
  cf::ProcessPoolOptions options() const {
    cf::ProcessPoolOptions o;
    o.max_workers = 1;
    o.start_method = std::get<0>(GetParam());
    o.on_worker_crash = std::get<1>(GetParam());
    return o;
  }
  bool breaks() const { return std::get<1>(GetParam()) == cf::CrashPolicy::break_pool; }
  Corruption corruption() const { return std::get<2>(GetParam()); }
};

TEST_P(CorruptFrameTest, EndsTheWorkerAsACrashAndTheParentGoesOn) {
  cf::ProcessPoolExecutor ex(options());
  const int pid = ex.submit(&proctest::worker_pid).result(kDeadlock);
  const long rss_before = proctest::vm_rss_kib();
  auto corrupt = ex.submit(&write_corruption, static_cast<int>(corruption()));
  const std::exception_ptr e = corrupt.exception(kDeadlock);
  ASSERT_TRUE(proctest::holds<cf::BrokenProcessPool>(e)) << proctest::what_of(e);
  EXPECT_TRUE(contains(proctest::what_of(e), std::to_string(pid))) << proctest::what_of(e);
  EXPECT_TRUE(proctest::eventually([&] { return proctest::process_ended(pid); }))
      << "worker " << pid << " was not ended";
  // Nothing the oversized header announced was buffered (64 MiB were written after it).
  EXPECT_LT(proctest::vm_rss_kib() - rss_before, 32 * 1024);
  if (breaks()) {
    EXPECT_THROW((void)ex.submit(&square, 2), cf::BrokenProcessPool);
  } else {
    EXPECT_EQ(ex.submit(&square, 7).result(kDeadlock), 49);
    EXPECT_NE(ex.submit(&proctest::worker_pid).result(kDeadlock), pid);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Corruptions, CorruptFrameTest,
    ::testing::Combine(proctest::kAllMethods,
                       ::testing::Values(cf::CrashPolicy::break_pool,
                                         cf::CrashPolicy::replace_worker),
                       ::testing::Values(Corruption::bad_flags, Corruption::unknown_type,
                                         Corruption::unheld_reply, Corruption::truncated_exit,
                                         Corruption::oversized, Corruption::shared_past_end)),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(proctest::method_name(std::get<0>(info.param))) +
             (std::get<1>(info.param) == cf::CrashPolicy::break_pool ? "BreakPool"
                                                                     : "ReplaceWorker") +
             corruption_name(std::get<2>(info.param));
    });

class StalledFrameTest : public proctest::StartMethodTest {};
INSTANTIATE_TEST_SUITE_P(StartMethods, StalledFrameTest, proctest::kAllMethods,
                         proctest::MethodParamName());

TEST_P(StalledFrameTest, TruncatedFrameThenStallIsATaskThatRunsPastItsTimeout) {
  // A worker that stops in the middle of a frame has not replied: like any task that does not
  // finish, task_timeout ends it, and its worker is replaced.
  cf::ProcessPoolOptions o = options(1);
  o.task_timeout = std::chrono::milliseconds(500);
  cf::ProcessPoolExecutor ex(o);
  const int pid = ex.submit(&proctest::worker_pid).result(kDeadlock);
  auto stalled = ex.submit(&write_truncated_then_stall);
  const std::exception_ptr e = stalled.exception(kDeadlock);
  ASSERT_TRUE(proctest::holds<cf::TimeoutError>(e)) << proctest::what_of(e);
  EXPECT_TRUE(proctest::eventually([&] { return proctest::process_ended(pid); }));
  EXPECT_EQ(ex.submit(&square, 6).result(kDeadlock), 36);
}

// --- requests naming what the worker has not registered -------------------------------------

// Leaves a mark in the directory it is given: that it ran.
int leave_mark(std::string dir) {
  std::FILE* f = std::fopen((dir + "/ran").c_str(), "w");
  if (f != nullptr) std::fclose(f);
  return 1;
}

// A worker (the real worker loop, in a child forked here) and this test as its parent.
class HandMadeWorker {
 public:
  HandMadeWorker() {
    auto [parent_end, worker_end] = process::make_socket_pair();
    pid_ = fork();
    if (pid_ == 0) {
      parent_end.reset();
      process::serve(worker_end.release());
    }
    worker_end.reset();
    channel_.emplace(std::move(parent_end));
    expect(remote::MessageType::hello);
    channel_->send(static_cast<std::uint8_t>(remote::MessageType::config), 0,
                   remote::encode(remote::WorkerConfig{}));
    channel_->flush();
    expect(remote::MessageType::ready);
  }
  ~HandMadeWorker() {
    channel_.reset();  // end of stream: the worker leaves
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  // Sends one task request and returns the reply's payload.
  std::vector<std::byte> run(const std::vector<std::byte>& request) {
    channel_->send(static_cast<std::uint8_t>(remote::MessageType::task), ++task_, request.data(),
                   request.size());
    channel_->flush();
    const process::Frame f = expect(remote::MessageType::reply);
    EXPECT_EQ(f.header.id, task_);
    return std::vector<std::byte>(f.data(), f.data() + f.size());
  }

 private:
  process::Frame expect(remote::MessageType type) {
    for (;;) {
      if (std::optional<process::Frame> f = channel_->next()) {
        EXPECT_EQ(f->header.type, static_cast<std::uint8_t>(type));
        return std::move(*f);
      }
      if (channel_->receive() == process::Channel::Received::closed) {
        ADD_FAILURE() << "the worker closed its channel";
        return process::Frame();
      }
    }
  }

  pid_t pid_ = -1;
  std::optional<process::Channel> channel_;
  std::uint64_t task_ = 0;
};

std::vector<std::byte> request_for_leave_mark(const std::string& dir) {
  codec::Buffer b;
  codec::Writer w(b);
  cf::detail::encode_call(w, &leave_mark, dir);
  return std::vector<std::byte>(b.data(), b.data() + b.size());
}

// The reply's exception, which must be a SerializationError.
void expect_refused(const std::vector<std::byte>& reply, const std::string& says) {
  ASSERT_FALSE(reply.empty());
  codec::Reader r(reply.data(), reply.size());
  ASSERT_EQ(r.pod<cf::detail::ReplyStatus>(), cf::detail::ReplyStatus::error);
  const std::exception_ptr e = codec::read_exception(r);
  EXPECT_TRUE(proctest::holds<cf::SerializationError>(e)) << proctest::what_of(e);
  EXPECT_TRUE(contains(proctest::what_of(e), says)) << proctest::what_of(e);
}

TEST(UnregisteredRequestTest, RequestNamingAnUnknownEntryOrFunctionRunsNothing) {
  const TempDir dir;
  HandMadeWorker worker;
  const std::vector<std::byte> valid = request_for_leave_mark(dir.path());

  // An entry key no entry of the program has.
  std::vector<std::byte> unknown_entry = valid;
  unknown_entry[0] ^= std::byte{0x5a};
  expect_refused(worker.run(unknown_entry), "does not know this task's function");

  // The right entry, a function place one byte into the function (not a function's start), and
  // then one with another build's check: the encoding is u8 kind, the object's name (u64 length
  // and bytes), u64 offset, u64 check.
  std::uint64_t object_length = 0;
  std::memcpy(&object_length, valid.data() + 9, sizeof object_length);
  const std::size_t offset_at = 17 + object_length;
  std::vector<std::byte> inside = valid;
  inside[offset_at] ^= std::byte{1};
  expect_refused(worker.run(inside), "");
  std::vector<std::byte> other_build = valid;
  other_build[offset_at + 8] ^= std::byte{1};
  expect_refused(worker.run(other_build), "");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/ran")) << "a refused request ran";

  // The worker goes on serving, and the valid request runs.
  const std::vector<std::byte> reply = worker.run(valid);
  ASSERT_FALSE(reply.empty());
  EXPECT_EQ(static_cast<cf::detail::ReplyStatus>(reply[0]), cf::detail::ReplyStatus::value);
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/ran"));
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
