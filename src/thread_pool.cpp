// ThreadPoolExecutor: one FIFO queue under one mutex, lazily started worker threads.
//
// Locking: `mu_` guards the queue, the thread list, the flags and the parked helpers. It is
// never held while a task runs or while a future is completed or cancelled (those run user
// callbacks, which may submit again). Order: mu_ -> a parked helper's Signal mutex.
//
// Idle accounting decides whether a submit starts a thread: `idle_` counts started workers that
// hold no task. A worker counts itself idle right after computing a task's outcome and before
// publishing it, so a caller woken by that result who submits again finds the worker idle and
// reuses it (CPython's "idle thread reuse"), deterministically rather than by luck of timing.
//
// Waking: a worker with nothing to do either spins (at most one at a time, `spinning_`) or sleeps
// on `work_cv_` (`sleeping_`). `wakes_pending_` counts notifications sent to sleepers that have
// not yet woken. The invariant kept under `mu_` after every push and pop: every queued task has a
// worker that will come for it, i.e. a wake-up is sent only when the queue holds more tasks than
// the spinner and the already-notified sleepers can take, and some sleeper is not yet notified.
// Waking a worker that is already on its way would only cost a futex call and a context switch.
#include "concurrent/futures/thread_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "system.hpp"

namespace concurrent::futures {

namespace {

constexpr const char* kBrokenMessage =
    "A thread initializer failed, the thread pool is not usable anymore";

// How long the spinning worker polls the queue (pause instructions) before it sleeps, and how
// often it yields its CPU meanwhile.
constexpr int kSpins = 2000;
constexpr int kSpinsPerYield = 64;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::string default_prefix() {
  static std::atomic<unsigned> counter{0};
  return "ThreadPoolExecutor-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

class ThreadPoolExecutor::Impl final : public detail::Helper {
 public:
  explicit Impl(ThreadPoolOptions options)
      : max_workers_(options.max_workers.value_or(default_max_workers())),
        prefix_(options.thread_name_prefix.empty() ? default_prefix()
                                                   : std::move(options.thread_name_prefix)),
        initializer_(std::move(options.initializer)) {
    if (max_workers_ == 0) throw std::invalid_argument("max_workers must be greater than 0");
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() = default;

  std::size_t max_workers() const noexcept { return max_workers_; }

  std::size_t thread_count() const {
    std::lock_guard lock(mu_);
    return started_;
  }

  void submit(detail::TaskPtr task) {
    bool wake_worker = false;
    {
      std::lock_guard lock(mu_);
      if (broken_) throw BrokenThreadPool(kBrokenMessage);
      if (shutdown_) throw ShutdownError();
      queue_.push_back(std::move(task));
      queued_.fetch_add(1, std::memory_order_release);
      if (queue_.size() > idle_.load(std::memory_order_acquire) && started_ < max_workers_) {
        start_thread_locked();
      }
      wake_worker = wake_needed_locked();
      // Helpers parked in a wait (see blocking.hpp) may run this task.
      for (detail::Signal* signal : parked_) signal->notify();
    }
    if (wake_worker) work_cv_.notify_one();
  }

  void shutdown(bool wait, bool cancel_futures) {
    std::deque<detail::TaskPtr> cancelled;
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
      shutdown_flag_.store(true, std::memory_order_relaxed);
      if (cancel_futures) {
        cancelled.swap(queue_);
        queued_.store(0, std::memory_order_relaxed);
      }
    }
    work_cv_.notify_all();
    for (detail::TaskPtr& task : cancelled) task->cancel();
    cancelled.clear();
    if (wait) join_all();
  }

  // detail::Helper: a worker waiting on a future runs queued tasks meanwhile, but only when the
  // pool could not run them otherwise (every thread started, none idle): that is when waiting
  // could deadlock. Helping when another thread could take the task would only make this
  // wait overrun its timeout by the length of an unrelated task.
  bool run_one_pending() override {
    detail::TaskPtr task;
    {
      std::lock_guard lock(mu_);
      if (!must_help_locked()) return false;
      task = pop_locked();
    }
    task->run();
    return true;
  }

  bool park(detail::Signal& signal) override {
    std::lock_guard lock(mu_);
    if (must_help_locked()) return false;
    parked_.push_back(&signal);
    return true;
  }

  void unpark(detail::Signal& signal) override {
    std::lock_guard lock(mu_);
    parked_.erase(std::remove(parked_.begin(), parked_.end(), &signal), parked_.end());
  }

 private:
  void start_thread_locked() {
    const std::size_t n = started_;
    idle_.fetch_add(1, std::memory_order_relaxed);  // idle until it takes its first task
    try {
      threads_.emplace_back([this, n] { worker_main(n); });
    } catch (...) {
      idle_.fetch_sub(1, std::memory_order_relaxed);
      // With no thread at all the task would never run: undo the submit.
      if (started_ == 0) {
        queue_.pop_back();
        queued_.fetch_sub(1, std::memory_order_relaxed);
        throw;
      }
      return;  // the threads we have will run it
    }
    ++started_;
  }

  bool must_help_locked() const {
    return !queue_.empty() && started_ >= max_workers_ &&
           idle_.load(std::memory_order_acquire) == 0;
  }

  detail::TaskPtr pop_locked() {
    detail::TaskPtr task = std::move(queue_.front());
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    return task;
  }

  // Whether a sleeping worker must be woken for the queued tasks (see the file comment); if
  // so, counts the wake-up as pending: the caller notifies `work_cv_` once it has released mu_.
  // The spinner clears `spinning_` only under mu_ and then looks at the queue under the same
  // lock, so a task pushed while `spinning_` was seen set is always found by it.
  bool wake_needed_locked() {
    const std::size_t coming = wakes_pending_ + (spinning_.load(std::memory_order_relaxed) ? 1 : 0);
    if (queue_.size() <= coming || sleeping_ <= wakes_pending_) return false;
    ++wakes_pending_;
    return true;
  }

  // The next task for a worker; nullptr once shut down with an empty queue.
  detail::TaskPtr next_task() {
    // One idle worker spins briefly before sleeping: with a steady stream of submits, the next
    // task usually arrives within microseconds and a futex sleep/wake pair would cost more than
    // the task. Only one: on a machine with as many CPUs as workers, more spinners take the CPU
    // from the thread that submits. It yields now and then, so that a submitting thread that
    // shares its CPU gets it back (without the yields, 2 workers on 2 CPUs ran trivial tasks
    // 20-30% slower and the round trip varied from 2 to 30 us).
    bool spinner = false;
    if (queued_.load(std::memory_order_acquire) == 0 &&
        !spinning_.load(std::memory_order_relaxed) &&
        !spinning_.exchange(true, std::memory_order_acquire)) {
      spinner = true;
      for (int i = 0; i < kSpins && queued_.load(std::memory_order_acquire) == 0; ++i) {
        if (shutdown_flag_.load(std::memory_order_relaxed)) break;
        if (i % kSpinsPerYield == kSpinsPerYield - 1) std::this_thread::yield();
        cpu_relax();
      }
    }
    std::unique_lock lock(mu_);
    if (spinner) spinning_.store(false, std::memory_order_relaxed);
    while (queue_.empty()) {
      if (shutdown_) return nullptr;
      ++sleeping_;
      work_cv_.wait(lock);
      --sleeping_;
      // Whether this wake-up was the notified one or a spurious one, this worker now comes
      // for the queue itself, so one pending wake-up fewer is owed.
      if (wakes_pending_ > 0) --wakes_pending_;
    }
    idle_.fetch_sub(1, std::memory_order_relaxed);
    detail::TaskPtr task = pop_locked();
    // Tasks left behind (the spinner just stopped counting) may need a sleeper.
    const bool wake = wake_needed_locked();
    lock.unlock();
    if (wake) work_cv_.notify_one();
    return task;
  }

  void worker_main(std::size_t n) {
    const std::string name = prefix_ + "_" + std::to_string(n);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    detail::current_helper() = this;
    if (initializer_) {
      try {
        initializer_();
      } catch (...) {
        initializer_failed(std::current_exception());
        return;
      }
    }
    while (detail::TaskPtr task = next_task()) {
      if (task->start()) {
        task->execute();
        idle_.fetch_add(1, std::memory_order_release);
        task->publish();
      } else {
        idle_.fetch_add(1, std::memory_order_release);
      }
    }
  }

  void initializer_failed(const std::exception_ptr& error) {
    detail::report_error("Exception in initializer: " + detail::exception_type_name(error) + ": " +
                         detail::exception_message(error));
    std::deque<detail::TaskPtr> pending;
    {
      std::lock_guard lock(mu_);
      broken_ = true;
      pending.swap(queue_);
      queued_.store(0, std::memory_order_relaxed);
      idle_.fetch_sub(1, std::memory_order_relaxed);  // this thread ends
    }
    // Each future gets its own exception object.
    for (detail::TaskPtr& task : pending) {
      task->abandon(std::make_exception_ptr(BrokenThreadPool(kBrokenMessage)));
    }
  }

  void join_all() {
    // One joiner at a time; a second shutdown(wait) waits for the first to finish joining.
    std::lock_guard join_lock(join_mu_);
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    std::optional<std::thread> self;
    for (std::thread& t : threads) {
      if (t.get_id() == std::this_thread::get_id()) {
        self = std::move(t);  // a task shutting down its own pool cannot join its own thread
      } else {
        t.join();
      }
    }
    if (self) {
      // Left for the destructor to join. Only when the pool is destroyed from one of its own
      // tasks is there nobody else to do it: then the thread is let go.
      std::lock_guard lock(mu_);
      threads_.push_back(std::move(*self));
    }
  }

 public:
  // Called by the destructor: after join_all, no thread is left but possibly the caller.
  void release_self() {
    std::lock_guard lock(mu_);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.detach();
    }
    threads_.clear();
  }

 private:
  const std::size_t max_workers_;
  const std::string prefix_;
  const std::function<void()> initializer_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<detail::TaskPtr> queue_;
  std::vector<std::thread> threads_;
  std::vector<detail::Signal*> parked_;
  std::size_t started_ = 0;
  std::size_t sleeping_ = 0;       // workers waiting on work_cv_
  std::size_t wakes_pending_ = 0;  // notify_one calls whose sleeper has not woken yet
  bool shutdown_ = false;
  bool broken_ = false;

  // Read without the lock by spinning workers; written under it.
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> idle_{0};
  std::atomic<bool> shutdown_flag_{false};
  // Set by the one worker spinning for work; cleared only under mu_ (see wake_needed_locked).
  std::atomic<bool> spinning_{false};

  std::mutex join_mu_;
};

ThreadPoolExecutor::ThreadPoolExecutor() : ThreadPoolExecutor(ThreadPoolOptions{}) {}

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers)
    : ThreadPoolExecutor(ThreadPoolOptions{.max_workers = max_workers}) {}

ThreadPoolExecutor::ThreadPoolExecutor(ThreadPoolOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  disconnect();
  impl_->shutdown(/*wait=*/true, /*cancel_futures=*/false);
  impl_->release_self();
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  impl_->shutdown(wait, cancel_futures);
}

std::size_t ThreadPoolExecutor::max_workers() const { return impl_->max_workers(); }

std::size_t ThreadPoolExecutor::thread_count() const { return impl_->thread_count(); }

std::size_t ThreadPoolExecutor::default_max_workers() {
  return std::min<std::size_t>(32, detail::usable_cpus() + 4);
}

void ThreadPoolExecutor::schedule(detail::TaskPtr task) { impl_->submit(std::move(task)); }

}  // namespace concurrent::futures
