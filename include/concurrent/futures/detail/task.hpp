// A unit of work as executors see it: a callable, its arguments and the future it completes.
//
// Running a task is split in three steps so that a pool can do its own bookkeeping between
// computing the outcome and publishing it (ThreadPoolExecutor marks the worker idle before the
// result becomes visible, so a caller that waits and then submits again reuses that worker):
//   start()   pending -> running; false if the future was cancelled (the task is then dropped)
//   execute() runs the callable, keeps the outcome, drops the callable and its arguments
//   publish() completes the future, which runs its callbacks in this thread
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "concurrent/futures/detail/access.hpp"
#include "concurrent/futures/detail/codec.hpp"
#include "concurrent/futures/detail/entry.hpp"
#include "concurrent/futures/detail/task_memory.hpp"
#include "concurrent/futures/future.hpp"

namespace concurrent::futures::detail {

// A task as a remote executor (process pool, MPI) handles it once its request is written: it
// hands the request to a worker and completes the future from the reply. A Task with a remote
// form implements both interfaces; start, cancel, abandon and destroy then serve both.
class RemoteCall {
 public:
  // As Task's members of the same names.
  virtual bool start() noexcept = 0;
  virtual void cancel() noexcept = 0;
  virtual void abandon(const std::exception_ptr& error) noexcept = 0;
  // Completes the future from the worker's reply. Throws SerializationError if the reply
  // cannot be read (the caller then fails the future with it). Runs on the executor's thread;
  // a task may take() the reply's bytes and decode them later, in a thread of its choosing.
  virtual void read_reply(codec::Received& reply) = 0;
  virtual void destroy() noexcept = 0;

 protected:
  ~RemoteCall() = default;
};

struct RemoteCallDeleter {
  void operator()(RemoteCall* call) const noexcept { call->destroy(); }
};
using RemoteCallPtr = std::unique_ptr<RemoteCall, RemoteCallDeleter>;

// Whether a call of F with Args (returning R) can run in another process (transportable.hpp).
template <class R, class F, class... Args>
inline constexpr bool remotable_v = Transportable<F> && (sendable_argument_v<Args> && ...) &&
                                    (std::is_void_v<R> || codec::serializable_v<R>);

// Why not, for the SerializationError of a task that cannot (empty if it can).
template <class R, class F, class... Args>
std::string why_not_remotable() {
  if constexpr (!Transportable<F>) {
    return "the callable of type " + demangle(typeid(F)) +
           " cannot run in a worker process: only function pointers, lambdas without captures, "
           "function objects whose members can be sent, and cf::partial can (a lambda's "
           "captures cannot be checked; see docs/reference.md, \"What may cross into a worker\")";
  } else if constexpr (!(sendable_argument_v<Args> && ...)) {
    std::string bad;
    ((bad += sendable_argument_v<Args> ? "" : (bad.empty() ? "" : ", ") + demangle(typeid(Args))),
     ...);
    return "an argument of type " + bad +
           " cannot be sent to a worker process (not serializable, or it holds an address; see "
           "docs/reference.md, \"What may cross into a worker\")";
  } else if constexpr (!(std::is_void_v<R> || codec::serializable_v<R>)) {
    return "the result type " + demangle(typeid(R)) +
           " cannot be sent back from a worker process (not serializable, or it holds an "
           "address; see docs/reference.md, \"What may cross into a worker\")";
  } else {
    return {};
  }
}

class Task {
 public:
  virtual ~Task() = default;
  virtual bool start() noexcept = 0;
  virtual void execute() noexcept = 0;
  virtual void publish() noexcept = 0;
  // The task will never run: shutdown(cancel_futures) cancels its future.
  virtual void cancel() noexcept = 0;
  // The task will never run: the pool broke. Fails its future with `error` unless it is done.
  virtual void abandon(const std::exception_ptr& error) noexcept = 0;

  // The form a remote executor handles, or nullptr when the task cannot leave this process
  // (then why_not_remote() says why).
  virtual RemoteCall* remote() noexcept { return nullptr; }
  virtual std::string why_not_remote() const { return "this task cannot run in another process"; }
  // For a task with a remote form: writes its request (entry key, callable, arguments; see
  // entry.hpp), then drops the callable and its arguments. Runs in the submitting thread; an
  // exception fails this task only.
  virtual void write_request(codec::Writer& /*w*/) {}

  // start, execute, publish.
  void run() noexcept {
    if (!start()) return;
    execute();
    publish();
  }

  // Called by TaskPtr when its owner is done with the task. Most tasks are owned by their
  // TaskPtr alone and are deleted; a submitted call shares one allocation with its future and
  // only drops the TaskPtr's share (see SubmitTask).
  virtual void destroy() noexcept { delete this; }

  // The link of an executor's intrusive list of submitted tasks (the thread pool's inbox), and
  // the number its submit gave it. A task is in at most one such list; only the executor holding
  // it reads or writes these.
  Task* next_submitted = nullptr;
  std::uint64_t submit_ticket = 0;
};

struct TaskDeleter {
  TaskDeleter() = default;
  // So that std::make_unique<SomeTask>(...) converts to a TaskPtr.
  template <class T>
  TaskDeleter(std::default_delete<T> /*unused*/) noexcept {  // NOLINT(google-explicit-constructor)
    // A task that is also a future's state (SubmitTask) frees itself through its own reference:
    // held by a plain unique_ptr it would never be freed.
    static_assert(!std::is_base_of_v<StateBase, T>, "make a SubmitTask with SubmitTask::make");
  }
  void operator()(Task* task) const noexcept { task->destroy(); }
};

using TaskPtr = std::unique_ptr<Task, TaskDeleter>;

// Passes the ownership of `task` to its remote form; nullptr, and `task` kept, if it has none.
inline RemoteCallPtr to_remote(TaskPtr& task) noexcept {
  RemoteCall* call = task->remote();
  if (call == nullptr) return nullptr;
  static_cast<void>(task.release());  // the same object, now owned through `call`
  return RemoteCallPtr(call);
}

// What every task kind does with the future it completes. None throws: a future someone
// completed by hand meanwhile (InvalidStateError) keeps its first outcome.
template <class R>
bool start_future(const Future<R>& f) noexcept {
  try {
    return f.set_running_or_notify_cancel();
  } catch (...) {
    return false;  // completed by hand: nothing left to do
  }
}
template <class R>
void cancel_future(const Future<R>& f) noexcept {
  try {
    f.cancel();
  } catch (...) {
  }
}
template <class R>
void fail_future(const Future<R>& f, const std::exception_ptr& error) noexcept {
  try {
    if (!f.done()) f.set_exception(error);
  } catch (...) {
  }
}
// Completes `f` from a worker's reply to a call entry (entry.hpp): status, then the value
// or the exception. Throws SerializationError for bytes it cannot read.
template <class R>
void complete_from_reply(const Future<R>& f, codec::Reader& r) {
  if (r.pod<ReplyStatus>() == ReplyStatus::error) {
    f.set_exception(codec::read_exception(r));
  } else if constexpr (std::is_void_v<R>) {
    f.set_result();
  } else {
    Stored<R> value;
    codec::read(r, value);
    f.set_result(std::move(value));
  }
}

// What CallTask and SubmitTask share: the decay-copied callable and its arguments, run once and
// dropped as soon as they are not needed, the outcome they leave until it is published, and how
// the call travels to a worker process instead (RemoteCall).
template <class R, class Fn, class... Args>
class Call : public RemoteCall {
 protected:
  static constexpr bool kRemotable = remotable_v<R, Fn, Args...>;

  template <class F, class... A>
  explicit Call(std::in_place_t /*unused*/, F&& fn, A&&... args)
      : call_(std::in_place, std::forward<F>(fn), std::forward<A>(args)...) {}
  ~Call() = default;

  // Runs the call into outcome_ (or outcome_error_), then drops the callable and its arguments.
  // (Not named run: Task::run is start, execute, publish.)
  // Completes `target` (the task's Future<R>, or the State<R> it is) with the outcome of call().
  template <class Target>
  void publish_to(Target& target) noexcept {
    try {
      if (outcome_error_) {
        target.set_exception(std::move(outcome_error_));
      } else if constexpr (!std::is_void_v<R>) {
        target.set_result(std::move(*outcome_));
      } else if constexpr (requires { target.set_result(); }) {
        target.set_result();
      } else {
        target.set_result(Unit{});
      }
    } catch (...) {
      // Completed by hand meanwhile (InvalidStateError): the first outcome stands. Anything else
      // (moving the result threw) fails the future rather than leave it running for ever.
      if (!target.done()) {
        try {
          target.set_exception(std::current_exception());
        } catch (...) {
        }
      }
    }
    outcome_.reset();
  }

  void call() noexcept {
    try {
      if constexpr (std::is_void_v<R>) {
        std::apply([](auto&&... a) { std::invoke(std::move(a)...); }, std::move(*call_));
        outcome_.emplace();
      } else {
        outcome_.emplace(std::apply([](auto&&... a) -> R { return std::invoke(std::move(a)...); },
                                    std::move(*call_)));
      }
    } catch (...) {
      outcome_error_ = std::current_exception();
    }
    call_.reset();
  }

  RemoteCall* remote_call() noexcept {
    if constexpr (kRemotable) {
      return this;
    } else {
      return nullptr;
    }
  }
  void write_call(codec::Writer& w) {
    if constexpr (kRemotable) {
      std::apply([&](const Fn& fn, const Args&... args) { encode_call(w, fn, args...); }, *call_);
      call_.reset();  // the worker has its own copy now
    }
  }
  std::string why_not() const { return why_not_remotable<R, Fn, Args...>(); }

  std::optional<std::tuple<Fn, Args...>> call_;
  std::optional<Stored<R>> outcome_;
  std::exception_ptr outcome_error_;
};

template <class R, class Fn, class... Args>
class CallTask final : public Task, public Call<R, Fn, Args...> {
 public:
  template <class F, class... A>
  CallTask(Future<R> future, F&& fn, A&&... args)
      : Call<R, Fn, Args...>(std::in_place, std::forward<F>(fn), std::forward<A>(args)...),
        future_(std::move(future)) {}

  bool start() noexcept override { return start_future(future_); }
  void execute() noexcept override { this->call(); }

  void publish() noexcept override { this->publish_to(future_); }

  void cancel() noexcept override { cancel_future(future_); }
  void abandon(const std::exception_ptr& error) noexcept override { fail_future(future_, error); }
  void destroy() noexcept override { delete this; }

  RemoteCall* remote() noexcept override { return this->remote_call(); }
  std::string why_not_remote() const override { return this->why_not(); }
  void write_request(codec::Writer& w) override { this->write_call(w); }

  void read_reply(codec::Received& reply) override {
    if constexpr (Call<R, Fn, Args...>::kRemotable) {
      codec::Reader r = reply.reader();
      complete_from_reply(future_, r);
    }
  }

 private:
  Future<R> future_;
};

// What Executor::submit schedules: the call and the state of the future it completes, in one
// allocation (a CallTask and its future's state are two). The future's handles and the TaskPtr
// share it: the TaskPtr's share is `self_`, dropped by destroy(), which also drops the callable
// and its arguments if they never ran, as a CallTask's destructor would.
template <class R, class Fn, class... Args>
class SubmitTask final : public State<R>, public Task, public Call<R, Fn, Args...> {
 public:
  template <class F, class... A>
  explicit SubmitTask(F&& fn, A&&... args)
      : Call<R, Fn, Args...>(std::in_place, std::forward<F>(fn), std::forward<A>(args)...) {}

  // Makes the task and its future; the TaskPtr keeps the allocation alive until destroyed.
  static std::pair<Future<R>, TaskPtr> make(std::shared_ptr<SubmitTask> self) {
    SubmitTask* task = self.get();
    Future<R> future = Access::future<R>(self);
    task->self_ = std::move(self);
    return {std::move(future), TaskPtr(task)};
  }

  bool start() noexcept override {
    try {
      return this->set_running_or_notify_cancel();
    } catch (...) {
      return false;  // completed by hand: nothing left to do
    }
  }

  void execute() noexcept override { this->call(); }

  void publish() noexcept override { this->publish_to(static_cast<State<R>&>(*this)); }

  void cancel() noexcept override {
    try {
      StateBase::cancel();
    } catch (...) {
    }
  }
  void abandon(const std::exception_ptr& error) noexcept override {
    try {
      if (!this->done()) this->set_exception(error);
    } catch (...) {
    }
  }

  void destroy() noexcept override {
    this->call_.reset();
    // Last: dropping the TaskPtr's share may free this object.
    std::shared_ptr<StateBase> self = std::move(self_);
  }

  RemoteCall* remote() noexcept override { return this->remote_call(); }
  std::string why_not_remote() const override { return this->why_not(); }
  void write_request(codec::Writer& w) override { this->write_call(w); }

  void read_reply(codec::Received& reply) override {
    if constexpr (Call<R, Fn, Args...>::kRemotable) {
      codec::Reader r = reply.reader();
      complete_from_reply(Access::future<R>(this->shared_from_this()), r);
    }
  }

 private:
  std::shared_ptr<StateBase> self_;
};

// The parent's side of a call whose request was written straight from the caller's arguments
// (ProcessPoolExecutor::submit, which so never copies a large argument first): it only completes
// the future from the worker's reply.
template <class R>
class ReplyTask final : public RemoteCall {
 public:
  explicit ReplyTask(Future<R> future) : future_(std::move(future)) {}

  bool start() noexcept override { return start_future(future_); }
  void cancel() noexcept override { cancel_future(future_); }
  void abandon(const std::exception_ptr& error) noexcept override { fail_future(future_, error); }
  void read_reply(codec::Received& reply) override {
    codec::Reader r = reply.reader();
    complete_from_reply(future_, r);
  }
  void destroy() noexcept override { delete this; }

 private:
  Future<R> future_;
};

// A task that calls fn(args...) (decay-copied, as std::thread does) and completes `future`.
template <class R, class F, class... Args>
TaskPtr make_task(Future<R> future, F&& fn, Args&&... args) {
  return std::make_unique<CallTask<R, std::decay_t<F>, std::decay_t<Args>...>>(
      std::move(future), std::forward<F>(fn), std::forward<Args>(args)...);
}

// A task that calls fn(args...) (decay-copied, as std::thread does) and a new future it
// completes: one allocation for both (SubmitTask) when the callable, its arguments and the
// result slots (the task's and the state's) are small. Large ones are not kept inline in the
// future's state, which lives as long as the future does: they get a CallTask, freed once run.
inline constexpr std::size_t kMaxInlineCall = 128;

template <class F, class... Args>
std::pair<Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>, TaskPtr>
make_submit_task(F&& fn, Args&&... args) {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  if constexpr (sizeof(std::tuple<std::decay_t<F>, std::decay_t<Args>...>) +
                    2 * sizeof(std::optional<Stored<R>>) <=
                kMaxInlineCall) {
    using T = SubmitTask<R, std::decay_t<F>, std::decay_t<Args>...>;
    return T::make(std::allocate_shared<T>(task_memory::Allocator<T>(), std::forward<F>(fn),
                                           std::forward<Args>(args)...));
  } else {
    Future<R> future;
    TaskPtr task = make_task(future, std::forward<F>(fn), std::forward<Args>(args)...);
    return {std::move(future), std::move(task)};
  }
}

}  // namespace concurrent::futures::detail
