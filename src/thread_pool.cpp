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
#include "concurrent/futures/thread_pool.hpp"

#include <pthread.h>
#include <sched.h>

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
      wake_worker = sleeping_ > 0;
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

  // The next task for a worker; nullptr once shut down with an empty queue.
  detail::TaskPtr next_task() {
    // Spin briefly before sleeping: with a steady stream of submits, the next task usually
    // arrives within microseconds and a futex sleep/wake pair would cost more than the task.
    for (int i = 0; i < 2000 && queued_.load(std::memory_order_acquire) == 0; ++i) {
      if (shutdown_flag_.load(std::memory_order_relaxed)) break;
      if (i % 64 == 63) std::this_thread::yield();
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    std::unique_lock lock(mu_);
    while (queue_.empty()) {
      if (shutdown_) return nullptr;
      ++sleeping_;
      work_cv_.wait(lock);
      --sleeping_;
    }
    idle_.fetch_sub(1, std::memory_order_relaxed);
    return pop_locked();
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
  std::size_t sleeping_ = 0;
  bool shutdown_ = false;
  bool broken_ = false;

  // Read without the lock by spinning workers; written under it.
  std::atomic<std::size_t> queued_{0};
  std::atomic<std::size_t> idle_{0};
  std::atomic<bool> shutdown_flag_{false};

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
