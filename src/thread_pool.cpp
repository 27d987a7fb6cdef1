// ThreadPoolExecutor: one shared FIFO queue that submitters push to, per-worker batches that
// workers take from it in one lock and idle workers steal from, lazily started worker threads.
//
// Why batches: with one queue under one mutex, the submitting thread and every worker took the
// lock once per task, and on a machine with as many CPUs as workers a preempted lock holder
// stalled all of them. A worker now takes up to Batch::kCapacity tasks per lock (never more than
// its share, queue length / started threads, so the rest stays for the others) and runs them in
// order from its Batch; a worker that finds the queue empty takes tasks from another worker's
// Batch, from the same end, so a task never waits behind a long one while a worker is idle.
// Tasks therefore start in submission order with one worker, and in about that order with
// several (each batch in order).
//
// Locking: `mu_` guards the queue, the thread list, the flags and the parked helpers. It is
// never held while a task runs or while a future is completed or cancelled (those run user
// callbacks, which may submit again). Order: mu_ -> a parked helper's Signal mutex. A Batch is
// filled only by its owner, only while it is empty, and only under mu_; it is emptied by CAS
// from any thread (see Batch).
//
// Idle accounting decides whether a submit starts a thread: `idle_` counts started workers that
// hold no task. A worker counts itself idle right after computing a task's outcome and before
// publishing it, so a caller woken by that result who submits again finds the worker idle and
// reuses it (CPython's "idle thread reuse"), deterministically rather than by luck of timing.
//
// Waking: a worker with nothing to do either spins (at most one at a time, `spinning_`) or sleeps
// on `work_cv_` (`sleeping_`). `wakes_pending_` counts notifications sent to sleepers that have
// not yet woken. The invariant kept under `mu_` after every push and pop: every task in the queue
// has a worker that will come for it, i.e. a wake-up is sent only when the queue holds more tasks
// than the spinner and the already-notified sleepers can take, and some sleeper is not yet
// notified. Waking a worker that is already on its way would only cost a futex call and a
// context switch. Tasks in a Batch need no wake-up: its owner is awake and runs them all, and a
// worker goes to sleep only after finding every Batch empty under mu_, which a Batch cannot stop
// being without mu_ (a fill takes at most the filler's share and leaves the rest in the queue,
// where the invariant above applies).
#include "concurrent/futures/thread_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "concurrent/futures/detail/task_memory.hpp"
#include "system.hpp"

namespace concurrent::futures {

namespace {

constexpr const char* kBrokenMessage =
    "A thread initializer failed, the thread pool is not usable anymore";

// How long the spinning worker polls the queue (pause instructions) before it sleeps, and how
// often it yields its CPU meanwhile.
constexpr int kSpins = 2000;
constexpr int kSpinsPerYield = 64;

std::string default_prefix() {
  static std::atomic<unsigned> counter{0};
  return "ThreadPoolExecutor-" + std::to_string(counter.fetch_add(1));
}

// The tasks a worker took from the queue in one lock (see the file comment). A single-producer,
// multi-consumer ring: the owner writes slots [tail, tail + n) and then publishes `tail_` with
// release order, only while the ring is empty; any thread takes the task at `head_` by moving
// `head_` forward with a CAS. `head_` and `tail_` only grow (64 bits do not wrap), so a CAS from
// a stale head fails instead of taking a slot that a later fill has reused; the slots are
// atomics because a taker may read one while the owner rewrites it (its CAS then fails).
class Batch {
 public:
  static constexpr std::size_t kCapacity = 64;

  bool empty() const noexcept {
    return head_.load(std::memory_order_acquire) >= tail_.load(std::memory_order_acquire);
  }

  // Owner only, under the pool's mutex, while empty(): moves the first n (<= kCapacity) tasks of
  // `queue` in.
  void fill(std::deque<detail::TaskPtr>& queue, std::size_t n) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    for (std::uint64_t i = 0; i < n; ++i) {
      slots_[(tail + i) % kCapacity].store(queue.front().release(), std::memory_order_relaxed);
      queue.pop_front();
    }
    tail_.store(tail + n, std::memory_order_release);
  }

  // Any thread: the oldest task, or nullptr.
  detail::TaskPtr take() noexcept {
    std::uint64_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      if (head >= tail_.load(std::memory_order_acquire)) return nullptr;
      detail::Task* task = slots_[head % kCapacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(head, head + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return detail::TaskPtr(task);
      }
    }
  }

 private:
  // head_ is written by every taker, tail_ by the owner only: separate cache lines.
  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::array<std::atomic<detail::Task*>, kCapacity> slots_{};
};

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
  // Workers leave only once the queue and every Batch are empty; this frees what a pool destroyed
  // from one of its own tasks left behind (the queue_ member frees the rest).
  ~Impl() {
    std::deque<detail::TaskPtr> left;
    take_all_batched_locked(left);
  }

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
        take_all_batched_locked(cancelled);
      }
    }
    work_cv_.notify_all();
    for (detail::TaskPtr& task : cancelled) task->cancel();
    cancelled.clear();
    if (wait) {
      join_all();
      // Give the memory of finished tasks back to malloc (task_memory.hpp): the whole depot,
      // which other pools refill from malloc if they need it again.
      detail::task_memory::trim();
    }
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
      // Its own share first (the oldest tasks it holds), then the queue, then other shares.
      Batch* const own = own_batch();
      if (own != nullptr) task = own->take();
      if (!task) task = queue_.empty() ? take_batched(own) : pop_locked();
    }
    if (!task) return false;
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
      if (n < kMaxBatches && !batches_[n].load(std::memory_order_relaxed)) {
        batch_storage_.push_back(std::make_unique<Batch>());
        batches_[n].store(batch_storage_.back().get(), std::memory_order_release);
        batch_count_.store(n + 1, std::memory_order_release);
      }
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
    return (!queue_.empty() || any_batched()) && started_ >= max_workers_ &&
           idle_.load(std::memory_order_acquire) == 0;
  }

  // The calling worker's Batch; nullptr on other threads and on workers past kMaxBatches.
  Batch* own_batch() const noexcept {
    const std::size_t n = worker_index();
    return n < kMaxBatches ? batches_[n].load(std::memory_order_acquire) : nullptr;
  }

  bool any_batched() const noexcept {
    const std::size_t count = batch_count_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < count; ++i) {
      if (!batches_[i].load(std::memory_order_acquire)->empty()) return true;
    }
    return false;
  }

  // A task from `own` if it has one, else from another worker's Batch; nullptr if all are empty.
  detail::TaskPtr take_batched(Batch* own) noexcept {
    if (own != nullptr) {
      if (detail::TaskPtr task = own->take()) return task;
    }
    const std::size_t count = batch_count_.load(std::memory_order_acquire);
    const std::size_t start = worker_index() + 1;
    for (std::size_t i = 0; i < count; ++i) {
      Batch* batch = batches_[(start + i) % count].load(std::memory_order_acquire);
      if (batch == own) continue;
      if (detail::TaskPtr task = batch->take()) return task;
    }
    return nullptr;
  }

  void take_all_batched_locked(std::deque<detail::TaskPtr>& out) {
    const std::size_t count = batch_count_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < count; ++i) {
      Batch* batch = batches_[i].load(std::memory_order_acquire);
      while (detail::TaskPtr task = batch->take()) out.push_back(std::move(task));
    }
  }

  detail::TaskPtr pop_locked() {
    detail::TaskPtr task = std::move(queue_.front());
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    return task;
  }

  // Pops the calling worker's next task and moves the rest of its share of the queue into its
  // Batch (which is empty: only its owner fills it, and the owner is here). The task is popped
  // first: another worker may empty the Batch the moment it is filled.
  detail::TaskPtr pop_share_locked(Batch* own) {
    detail::TaskPtr task = pop_locked();
    if (own != nullptr) {
      const std::size_t share =
          std::min(queue_.size() / std::max<std::size_t>(started_, 1), Batch::kCapacity);
      if (share > 0) {
        queued_.fetch_sub(share, std::memory_order_relaxed);
        own->fill(queue_, share);
      }
    }
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

  // The next task for a worker; nullptr once shut down with an empty queue and empty Batches.
  detail::TaskPtr next_task() {
    Batch* const own = own_batch();
    if (own != nullptr) {
      if (detail::TaskPtr task = own->take()) {
        idle_.fetch_sub(1, std::memory_order_relaxed);
        return task;
      }
    }

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
        if (i % kSpinsPerYield == kSpinsPerYield - 1) {
          // Now and then (not on every spin: reading other workers' Batches takes their
          // cache lines away from them), look for a task left in a busy worker's Batch.
          if (detail::TaskPtr task = take_batched(own)) {
            // spinning_ is cleared under mu_ only (see wake_needed_locked): a submit that saw it
            // set counted on this worker, which now runs something else.
            std::unique_lock lock(mu_);
            spinning_.store(false, std::memory_order_relaxed);
            idle_.fetch_sub(1, std::memory_order_relaxed);
            const bool wake = wake_needed_locked();
            lock.unlock();
            if (wake) work_cv_.notify_one();
            return task;
          }
          std::this_thread::yield();
        }
        detail::cpu_relax();
      }
    }
    std::unique_lock lock(mu_);
    if (spinner) spinning_.store(false, std::memory_order_relaxed);
    detail::TaskPtr task;
    while (queue_.empty()) {
      task = take_batched(own);
      if (task) break;
      if (shutdown_) return nullptr;
      ++sleeping_;
      work_cv_.wait(lock);
      --sleeping_;
      // Whether this wake-up was the notified one or a spurious one, this worker now comes
      // for the queue itself, so one pending wake-up fewer is owed.
      if (wakes_pending_ > 0) --wakes_pending_;
    }
    idle_.fetch_sub(1, std::memory_order_relaxed);
    if (!task) task = pop_share_locked(own);
    // Tasks left behind (the spinner just stopped counting) may need a sleeper.
    const bool wake = wake_needed_locked();
    lock.unlock();
    if (wake) work_cv_.notify_one();
    return task;
  }

  void worker_main(std::size_t n) {
    worker_index() = n;
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
      take_all_batched_locked(pending);
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
  // Workers numbered from kMaxBatches on take one task per lock.
  static constexpr std::size_t kMaxBatches = 64;

  // The number of the calling worker thread in its pool; other threads: kMaxBatches (no Batch).
  static std::size_t& worker_index() noexcept {
    thread_local std::size_t index = kMaxBatches;
    return index;
  }

  const std::size_t max_workers_;
  const std::string prefix_;
  const std::function<void()> initializer_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<detail::TaskPtr> queue_;
  std::vector<std::thread> threads_;
  std::vector<detail::Signal*> parked_;
  std::vector<std::unique_ptr<Batch>> batch_storage_;
  // batches_[i] belongs to worker i; published before the worker starts, never removed.
  std::array<std::atomic<Batch*>, kMaxBatches> batches_{};
  std::atomic<std::size_t> batch_count_{0};
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
