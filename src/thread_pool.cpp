// ThreadPoolExecutor: a lock-free inbox that submitters push to, one shared FIFO queue that it
// feeds, per-worker batches that workers take from the queue in one lock and idle workers steal
// from, lazily started worker threads.
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
// Submitting: submit() pushes the task onto `inbox_` (one CAS) and takes `mu_` only when there is
// more to do: a thread to start, a parked helper to notify, a sleeping worker to wake
// (wake_may_be_needed(), the test of wake_needed_locked() made from atomics), or a shutdown that
// raced with it. Whoever holds `mu_` moves the inbox into the queue before looking at the queue.
// No task is left unseen, by the Dekker pattern on sequentially consistent atomics: submit()
// pushes, then reads `sleeping_`, `wakes_pending_`, `spinning_`, `parked_count_` and the flags;
// a worker about to sleep increments `sleeping_` and then looks at the inbox; the spinner clears
// `spinning_`, a woken worker decrements `wakes_pending_`, a helper increments `parked_count_`,
// shutdown() sets its flag, each before it next looks at the inbox. So either submit() sees the
// change and takes the slow path, or the other side sees the task. A submit() after shutdown()
// has set its flag throws before it pushes; one that finds the flag set only after its push (the
// two ran at once) takes its task back if it is still queued and throws, and if a worker or the
// shutdown already took it, it was accepted.
//
// Locking: `mu_` guards the queue, the thread list, the flags and the parked helpers. It is
// never held while a task runs or while a future is completed or cancelled (those run user
// callbacks, which may submit again). Order: mu_ -> a parked helper's Signal mutex. A Batch is
// filled only by its owner, only while it is empty, and only under mu_; it is emptied by CAS
// from any thread (see Batch).
//
// Idle accounting decides whether a submit starts a thread: it does while fewer workers are idle
// than tasks wait, in the queue or in the Batches (a worker may have moved the submitted task from
// the inbox into its own Batch before the submit looked). `idle_` counts started workers that
// hold no task. A worker counts itself idle right after computing a task's outcome and before
// publishing it, so a caller woken by that result who submits again finds the worker idle and
// reuses it (CPython's "idle thread reuse"), deterministically rather than by luck of timing.
//
// Waking: a worker with nothing to do either spins (at most one at a time, `spinning_`) or sleeps
// on `work_cv_` (`sleeping_`). `wakes_pending_` counts notifications sent to sleepers that have
// not yet woken. The invariant kept under `mu_` after every pop, and by submit() after every push
// (under `mu_`, or by seeing that nothing changes it; see "Submitting"): every task in the queue
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
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>
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

// A FIFO of tasks linked through Task::next_submitted: pushing and popping never allocate, so
// moving tasks between the inbox, the queue and a cancellation list cannot fail. Owns its tasks.
class TaskList {
 public:
  TaskList() = default;
  TaskList(const TaskList&) = delete;
  TaskList& operator=(const TaskList&) = delete;
  ~TaskList() {
    while (!empty()) pop_front();
  }

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }

  void push_back(detail::TaskPtr task) noexcept { link_back(task.release()); }

  detail::TaskPtr pop_front() noexcept {
    detail::Task* task = head_;
    head_ = task->next_submitted;
    if (head_ == nullptr) tail_ = nullptr;
    task->next_submitted = nullptr;
    --size_;
    return detail::TaskPtr(task);
  }

  // Appends a list linked newest first (as the inbox holds it), oldest first.
  void append_newest_first(detail::Task* newest) noexcept {
    detail::Task* oldest = nullptr;
    while (newest != nullptr) {
      detail::Task* next = newest->next_submitted;
      newest->next_submitted = oldest;
      oldest = newest;
      newest = next;
    }
    while (oldest != nullptr) {
      detail::Task* next = oldest->next_submitted;
      link_back(oldest);
      oldest = next;
    }
  }

  // Takes `task`, submitted with `ticket`, out of the list; nullptr if it is not in it.
  detail::TaskPtr remove(const detail::Task* task, std::uint64_t ticket) noexcept {
    detail::Task* previous = nullptr;
    for (detail::Task* t = head_; t != nullptr; previous = t, t = t->next_submitted) {
      if (t != task || t->submit_ticket != ticket) continue;
      (previous == nullptr ? head_ : previous->next_submitted) = t->next_submitted;
      if (tail_ == t) tail_ = previous;
      t->next_submitted = nullptr;
      --size_;
      return detail::TaskPtr(t);
    }
    return nullptr;
  }

  void swap(TaskList& other) noexcept {
    std::swap(head_, other.head_);
    std::swap(tail_, other.tail_);
    std::swap(size_, other.size_);
  }

 private:
  void link_back(detail::Task* task) noexcept {
    task->next_submitted = nullptr;
    (tail_ == nullptr ? head_ : tail_->next_submitted) = task;
    tail_ = task;
    ++size_;
  }

  detail::Task* head_ = nullptr;
  detail::Task* tail_ = nullptr;
  std::size_t size_ = 0;
};

// Where submit() puts a task without taking the pool's mutex: a lock-free stack (one CAS per
// push) that whoever holds the mutex empties in one exchange, into the queue, oldest first.
// Pushes and the exchange are sequentially consistent: see the file comment ("Submitting").
class Inbox {
 public:
  Inbox() = default;
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;
  ~Inbox() {
    TaskList left;
    move_into(left);
  }

  void push(detail::Task* task) noexcept {
    detail::Task* top = top_.load(std::memory_order_relaxed);
    do {
      task->next_submitted = top;
    } while (!top_.compare_exchange_weak(top, task, std::memory_order_seq_cst,
                                         std::memory_order_relaxed));
  }

  bool empty() const noexcept { return top_.load(std::memory_order_seq_cst) == nullptr; }

  // Under the pool's mutex (one taker at a time): moves every task into `queue`, oldest first.
  void move_into(TaskList& queue) noexcept {
    if (empty()) return;
    queue.append_newest_first(top_.exchange(nullptr, std::memory_order_seq_cst));
  }

 private:
  std::atomic<detail::Task*> top_{nullptr};
};

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

  // The tasks not yet taken (exact under the pool's mutex but for takers racing with the call).
  std::size_t size() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    return tail > head ? static_cast<std::size_t>(tail - head) : 0;
  }

  // Owner only, under the pool's mutex, while empty(): moves the first n (<= kCapacity) tasks of
  // `queue` in.
  void fill(TaskList& queue, std::size_t n) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    for (std::uint64_t i = 0; i < n; ++i) {
      slots_[(tail + i) % kCapacity].store(queue.pop_front().release(), std::memory_order_relaxed);
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
  // from one of its own tasks left behind (the queue_ and inbox_ members free the rest).
  ~Impl() {
    TaskList left;
    take_all_batched_locked(left);
  }

  std::size_t max_workers() const noexcept { return max_workers_; }

  std::size_t thread_count() const {
    std::lock_guard lock(mu_);
    return started_;
  }

  // Without the mutex when every thread has started, no helper is parked and no sleeping
  // worker needs waking (see the file comment, "Submitting").
  void submit(detail::TaskPtr task) {
    // A submit after shutdown() (or a failed initializer) returned is refused here; one that
    // races with it is settled under the lock (submit_locked).
    if (broken_flag_.load(std::memory_order_seq_cst)) throw BrokenThreadPool(kBrokenMessage);
    if (shutdown_flag_.load(std::memory_order_seq_cst)) throw ShutdownError();
    detail::Task* const submitted = task.release();
    // Tells this submit's task from a later one that malloc may place at the same address once
    // this one has run and been freed (submit_locked looks for it by both).
    const std::uint64_t ticket = next_ticket();
    submitted->submit_ticket = ticket;
    // Counted before it is pushed, so that a worker that takes it never makes the count wrap.
    queued_.fetch_add(1, std::memory_order_seq_cst);
    inbox_.push(submitted);
    if (all_started_.load(std::memory_order_seq_cst) &&
        parked_count_.load(std::memory_order_seq_cst) == 0 &&
        !shutdown_flag_.load(std::memory_order_seq_cst) &&
        !broken_flag_.load(std::memory_order_seq_cst) && !wake_may_be_needed()) {
      return;
    }
    submit_locked(submitted, ticket);
  }

  void shutdown(bool wait, bool cancel_futures) {
    TaskList cancelled;
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
      shutdown_flag_.store(true, std::memory_order_seq_cst);
      if (cancel_futures) {
        inbox_.move_into(queue_);
        // Subtracted, not zeroed: submits racing with this one have counted their tasks.
        queued_.fetch_sub(queue_.size(), std::memory_order_seq_cst);
        cancelled.swap(queue_);
        take_all_batched_locked(cancelled);
      }
    }
    work_cv_.notify_all();
    while (!cancelled.empty()) cancelled.pop_front()->cancel();
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
      inbox_.move_into(queue_);
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

  // Counted before the last look at the inbox: a submit that pushed after that look sees the
  // count and notifies the helper (see the file comment, "Submitting").
  bool park(detail::Signal& signal) override {
    std::lock_guard lock(mu_);
    parked_.push_back(&signal);
    parked_count_.fetch_add(1, std::memory_order_seq_cst);
    inbox_.move_into(queue_);
    if (must_help_locked()) {
      parked_.pop_back();
      parked_count_.fetch_sub(1, std::memory_order_seq_cst);
      return false;
    }
    return true;
  }

  void unpark(detail::Signal& signal) override {
    std::lock_guard lock(mu_);
    const auto removed = std::remove(parked_.begin(), parked_.end(), &signal);
    parked_count_.fetch_sub(static_cast<std::size_t>(parked_.end() - removed),
                            std::memory_order_seq_cst);
    parked_.erase(removed, parked_.end());
  }

 private:
  // The submits that take the mutex: a thread to start, helpers to notify, a sleeper to wake, or
  // a shutdown (or failed initializer) that raced with this submit.
  void submit_locked(detail::Task* submitted, std::uint64_t ticket) {
    bool wake_worker = false;
    detail::TaskPtr refused;  // destroyed after the lock: dropping a task runs user destructors
    bool broken = false;
    {
      std::lock_guard lock(mu_);
      inbox_.move_into(queue_);
      if (broken_ || shutdown_) {
        // Still queued: no worker has it, so the submit is refused as any later one would be.
        // Otherwise a worker took it (it runs) or the shutdown cancelled it: it was accepted.
        refused = queue_.remove(submitted, ticket);
        if (!refused) return;
        queued_.fetch_sub(1, std::memory_order_seq_cst);
        broken = broken_;
      } else {
        // Another thread may already have moved this task from the inbox into a busy worker's
        // share: tasks there are waiting as much as those in the queue.
        if (started_ < max_workers_ &&
            queue_.size() + batched_count() > idle_.load(std::memory_order_acquire)) {
          start_thread_locked(submitted, ticket);
        }
        wake_worker = wake_needed_locked();
        // Helpers parked in a wait (see blocking.hpp) may run this task.
        for (detail::Signal* signal : parked_) signal->notify();
      }
    }
    if (refused) {
      refused.reset();
      if (broken) throw BrokenThreadPool(kBrokenMessage);
      throw ShutdownError();
    }
    if (wake_worker) work_cv_.notify_one();
  }

  // wake_needed_locked() without the mutex, from atomics that may be changing: false only when
  // the queued tasks are covered by the spinner and the pending wake-ups, or no sleeper is left
  // to wake. Either way, whoever changes that afterwards sees the new task (file comment).
  bool wake_may_be_needed() const noexcept {
    const std::size_t sleeping = sleeping_.load(std::memory_order_seq_cst);
    const std::size_t pending = wakes_pending_.load(std::memory_order_seq_cst);
    if (sleeping <= pending) return false;
    const std::size_t coming = pending + (spinning_.load(std::memory_order_seq_cst) ? 1 : 0);
    return queued_.load(std::memory_order_seq_cst) > coming;
  }

  void start_thread_locked(detail::Task* submitted, std::uint64_t ticket) {
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
        if (queue_.remove(submitted, ticket)) queued_.fetch_sub(1, std::memory_order_seq_cst);
        throw;
      }
      return;  // the threads we have will run it
    }
    ++started_;
    if (started_ == max_workers_) all_started_.store(true, std::memory_order_seq_cst);
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

  std::size_t batched_count() const noexcept {
    std::size_t n = 0;
    const std::size_t count = batch_count_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < count; ++i)
      n += batches_[i].load(std::memory_order_acquire)->size();
    return n;
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

  void take_all_batched_locked(TaskList& out) {
    const std::size_t count = batch_count_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < count; ++i) {
      Batch* batch = batches_[i].load(std::memory_order_acquire);
      while (detail::TaskPtr task = batch->take()) out.push_back(std::move(task));
    }
  }

  detail::TaskPtr pop_locked() {
    queued_.fetch_sub(1, std::memory_order_seq_cst);
    return queue_.pop_front();
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
        queued_.fetch_sub(share, std::memory_order_seq_cst);
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
    inbox_.move_into(queue_);
    const std::size_t pending = wakes_pending_.load(std::memory_order_relaxed);
    const std::size_t coming = pending + (spinning_.load(std::memory_order_relaxed) ? 1 : 0);
    if (queue_.size() <= coming || sleeping_.load(std::memory_order_relaxed) <= pending) {
      return false;
    }
    wakes_pending_.fetch_add(1, std::memory_order_seq_cst);
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
            spinning_.store(false, std::memory_order_seq_cst);
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
    if (spinner) spinning_.store(false, std::memory_order_seq_cst);
    detail::TaskPtr task;
    for (;;) {
      inbox_.move_into(queue_);
      if (!queue_.empty()) break;
      task = take_batched(own);
      if (task) break;
      if (shutdown_) return nullptr;
      // Counted as sleeping before the last look at the inbox: a submit that pushed after that
      // look sees the count and wakes this worker (see the file comment, "Submitting").
      sleeping_.fetch_add(1, std::memory_order_seq_cst);
      if (inbox_.empty()) work_cv_.wait(lock);
      sleeping_.fetch_sub(1, std::memory_order_seq_cst);
      // Whether this wake-up was the notified one or a spurious one, this worker now comes
      // for the queue itself, so one pending wake-up fewer is owed.
      if (wakes_pending_.load(std::memory_order_relaxed) > 0) {
        wakes_pending_.fetch_sub(1, std::memory_order_seq_cst);
      }
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
    TaskList pending;
    {
      std::lock_guard lock(mu_);
      broken_ = true;
      broken_flag_.store(true, std::memory_order_seq_cst);
      inbox_.move_into(queue_);
      queued_.fetch_sub(queue_.size(), std::memory_order_seq_cst);
      pending.swap(queue_);
      take_all_batched_locked(pending);
      idle_.fetch_sub(1, std::memory_order_relaxed);  // this thread ends
    }
    // Each future gets its own exception object.
    while (!pending.empty()) {
      pending.pop_front()->abandon(std::make_exception_ptr(BrokenThreadPool(kBrokenMessage)));
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

  // A number no other submit of this process gets: the submitting thread's number in the high
  // 24 bits, its count of submits in the low 40.
  static std::uint64_t next_ticket() noexcept {
    static std::atomic<std::uint64_t> threads{0};
    thread_local const std::uint64_t thread_bits = threads.fetch_add(1, std::memory_order_relaxed)
                                                   << 40;
    thread_local std::uint64_t count = 0;
    return thread_bits | (++count & ((std::uint64_t{1} << 40) - 1));
  }

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
  Inbox inbox_;  // submitted, not yet in queue_ (declared first: destroyed after queue_)
  TaskList queue_;
  std::vector<std::thread> threads_;
  std::vector<detail::Signal*> parked_;
  std::vector<std::unique_ptr<Batch>> batch_storage_;
  // batches_[i] belongs to worker i; published before the worker starts, never removed.
  std::array<std::atomic<Batch*>, kMaxBatches> batches_{};
  std::atomic<std::size_t> batch_count_{0};
  std::size_t started_ = 0;
  bool shutdown_ = false;
  bool broken_ = false;

  // Read without the lock by submit() and by the spinning worker. sleeping_, wakes_pending_ and
  // parked_count_ change under the lock; queued_ is also counted up by submit(), idle_ by
  // workers, spinning_ set by the worker that starts to spin.
  std::atomic<std::size_t> sleeping_{0};       // workers waiting on work_cv_
  std::atomic<std::size_t> wakes_pending_{0};  // notify_one calls whose sleeper has not woken yet
  std::atomic<std::size_t> parked_count_{0};   // parked_.size()
  std::atomic<std::size_t> queued_{0};         // tasks in inbox_ and queue_ (and being pushed)
  std::atomic<std::size_t> idle_{0};
  std::atomic<bool> all_started_{false};  // started_ == max_workers_
  std::atomic<bool> shutdown_flag_{false};
  std::atomic<bool> broken_flag_{false};
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
