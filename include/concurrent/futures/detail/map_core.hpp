// The machinery behind Executor::map, map_unordered and starmap.
//
// The input is cut into chunks; each chunk is one task that calls fn on its items and keeps
// every item's outcome (value or exception) separately, so one failing item fails only itself.
// A chunk's `done` future completes when all its items have run (or is cancelled / failed when
// the chunk never runs). The iterating thread waits on the core's Signal, which every chunk
// completion notifies; the iterator reads a chunk's outcomes only after its `done` is done (the
// future's release/acquire publishes them).
//
// Each chunk is a ChunkTask: run in this process (thread pools), or sent whole to a worker
// process, whose reply carries one outcome per item (process pools).
//
// Three ways of feeding the pool:
//  * eager, fixed chunksize: map() reads all input and submits every chunk (CPython's default);
//  * lazy (buffersize = N): map() submits N chunks; each chunk the iterator finishes reads and
//    submits one more, so infinite inputs work and memory stays bounded;
//  * eager, chunksize = 0 (automatic): map() reads all input and submits one "drain" task per
//    worker. Each drain repeatedly claims the next run of items, in input order, sized from
//    the measured time per item (ChunkSizer), until the input is used up. That is joblib's
//    auto-batching in spirit: batches grow until one takes about kTargetChunkTime, capped so
//    that the tail is still shared between workers. Executors whose tasks run in other
//    processes cannot share a cursor with their workers: there, all chunks are cut at the call,
//    n / (4 x workers) items each (the usual rule of thumb for process pools), and measured
//    sizing applies to lazy (buffersize) maps, where chunks are cut as earlier ones complete.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concurrent/futures/detail/blocking.hpp"
#include "concurrent/futures/detail/executor_link.hpp"
#include "concurrent/futures/detail/task.hpp"
#include "concurrent/futures/detail/unique_function.hpp"
#include "concurrent/futures/future.hpp"
#include "concurrent/futures/map_options.hpp"

namespace concurrent::futures::detail {

// Chooses chunk sizes when MapOptions::chunksize is 0, from the time per item measured on the
// chunks run so far. Updated by workers and read by claimers without a lock: the figures are
// estimates, so relaxed atomics are enough.
class ChunkSizer {
 public:
  // Aim for chunks of about this long: the per-chunk cost (a claim, a future, a wake-up) is a
  // microsecond or two, so this keeps it near 1% while still spreading short inputs.
  static constexpr std::chrono::microseconds kTargetChunkTime{200};
  static constexpr std::size_t kMaxChunk = std::size_t{1} << 16;
  static constexpr std::size_t kUnknown = std::numeric_limits<std::size_t>::max();

  ChunkSizer(std::size_t fixed, std::size_t workers)
      : fixed_(fixed), workers_(std::max<std::size_t>(workers, 1)) {}

  bool automatic() const noexcept { return fixed_ == 0; }

  // The size of the next chunk, `remaining` items being left (kUnknown if not known).
  std::size_t next(std::size_t remaining) const noexcept {
    if (!automatic()) return std::min(fixed_, remaining);
    const std::uint64_t items = items_.load(std::memory_order_relaxed);
    std::size_t size = 1;
    if (items > 0) {
      const std::uint64_t per_item =
          std::max<std::uint64_t>(1, nanos_.load(std::memory_order_relaxed) / items);
      const auto target = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(kTargetChunkTime).count());
      size = static_cast<std::size_t>(std::clamp<std::uint64_t>(target / per_item, 1, kMaxChunk));
    }
    if (remaining != kUnknown) {
      // Leave at least two chunks per worker of what remains, so no worker is left with the tail.
      size = std::min(size, std::max<std::size_t>(1, remaining / (2 * workers_)));
      size = std::min(size, remaining);
    }
    return size;
  }

  void record(std::size_t items, Clock::duration took) noexcept {
    if (!automatic()) return;
    items_.fetch_add(items, std::memory_order_relaxed);
    nanos_.fetch_add(static_cast<std::uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()),
                     std::memory_order_relaxed);
  }

 private:
  const std::size_t fixed_;
  const std::size_t workers_;
  std::atomic<std::uint64_t> items_{0};
  std::atomic<std::uint64_t> nanos_{0};
};

// One item's result: not yet there (or already taken), a value, or an exception.
template <class R>
using Outcome = std::variant<std::monostate, Stored<R>, std::exception_ptr>;

template <class R>
struct Chunk {
  std::size_t begin = 0;  // index of the first item in the input
  std::size_t size = 0;   // its items
  // Run in this process: one outcome per item, made by the task (in the worker thread, whose
  // allocator then provides the memory, not the submitting thread's) before `done`. Empty with
  // `out_error` set if the worker could not allocate it.
  std::vector<Outcome<R>> out;
  std::exception_ptr out_error;
  Future<void> done;  // finished once every item ran; cancelled/failed if not run
  // Run in another process: the worker's reply, set before `done` (whose release/acquire
  // publishes it), with `out` left empty. The iterating thread decodes each item as it takes it,
  // so a result is made in the thread that uses and frees it: the dispatcher thread only moves
  // bytes, and no result crosses threads (glibc's malloc is several times slower when one thread
  // frees what another allocated, and the whole chunk's results would wait decoded meanwhile).
  codec::Buffer reply;
  bool in_reply = false;
  std::size_t reply_next = 0;  // the next item in `reply` (items before it are taken or skipped)
  std::size_t reply_at = 0;    // where that item's length starts in `reply`
  std::exception_ptr reply_corrupt;  // the reply's framing broke: this fails all items left

  // Moves item `i`'s outcome out, leaving it taken (monostate). Called by the iterating thread,
  // after `done` is done, for non-decreasing `i`. Throws only what moving a result throws; an
  // item that cannot be decoded comes back as its exception.
  Outcome<R> take(std::size_t i) {
    if constexpr (std::is_void_v<R> || codec::serializable_v<R>) {
      if (in_reply) return take_from_reply(i);
    }
    if (i >= out.size()) {
      // Only when the worker could not allocate `out` (out_error); never a null exception.
      return Outcome<R>{std::in_place_index<2>,
                        out_error ? out_error
                                  : std::make_exception_ptr(std::logic_error(
                                        "map chunk has no outcome for item " + std::to_string(i)))};
    }
    return std::exchange(out[i], Outcome<R>{});
  }

 private:
  Outcome<R> take_from_reply(std::size_t i) {
    if (i < reply_next) return Outcome<R>{};  // already taken
    Outcome<R> outcome;
    if (reply_corrupt) {
      outcome.template emplace<2>(reply_corrupt);
      return outcome;
    }
    try {
      codec::Reader r(reply.data() + reply_at, reply.size() - reply_at, &reply.descriptors());
      for (; reply_next < i; ++reply_next) r.take(r.size());  // items skipped without a take
      const std::size_t length = r.size();
      const std::byte* bytes = r.take(length);
      reply_at = static_cast<std::size_t>(bytes + length - reply.data());
      ++reply_next;
      try {
        codec::Reader item(bytes, length, &reply.descriptors());
        if (item.pod<ReplyStatus>() == ReplyStatus::error) {
          outcome.template emplace<2>(codec::read_exception(item));
        } else if constexpr (std::is_void_v<R>) {
          outcome.template emplace<1>();
        } else {
          codec::read(item, outcome.template emplace<1>());
        }
      } catch (...) {
        outcome.template emplace<2>(std::current_exception());  // this item only
      }
    } catch (...) {
      reply_corrupt = std::current_exception();
      reply_next = i + 1;
      outcome.template emplace<2>(reply_corrupt);
    }
    return outcome;
  }
};

// The part of a map that does not depend on the callable or the input type.
template <class R>
class MapCore : public std::enable_shared_from_this<MapCore<R>> {
 public:
  using ChunkPtr = std::shared_ptr<Chunk<R>>;

  MapCore(std::shared_ptr<ExecutorLink> link, const MapOptions& options, std::size_t workers)
      : link_(std::move(link)),
        sizer_(options.chunksize, workers),
        buffersize_(options.buffersize),
        max_spare_outs_(std::max<std::size_t>(workers, 2)) {
    spare_outs_.reserve(max_spare_outs_);  // keep_spare then never allocates, so never throws
  }
  MapCore(const MapCore&) = delete;
  MapCore& operator=(const MapCore&) = delete;
  virtual ~MapCore() = default;

  // Reads and submits what the call to map() must (see the file comment). Exceptions from the
  // input or from submitting come out of here. `completion_order`: the iterator takes chunks as
  // they complete (map_unordered, wait_completed), so their order is recorded.
  void start(bool in_process, bool completion_order) {
    completion_order_ = completion_order;
    if (buffersize_ > 0) {
      for (std::size_t i = 0; i < buffersize_ && !input_done(); ++i) add_chunk();
    } else if (sizer_.automatic() && in_process) {
      start_drains();
    } else if (sizer_.automatic()) {
      start_presized();
    } else {
      while (!input_done()) add_chunk();
    }
  }

  // --- for the iterating thread ---------------------------------------------------------------

  // Chunk `c` once it exists (nullptr if the deadline passes first). Only automatic chunking
  // creates chunks asynchronously; otherwise this never waits.
  ChunkPtr wait_exists(std::size_t c, const Deadline& deadline) {
    ChunkPtr chunk;
    block_until(
        [&] {
          std::lock_guard lock(mu_);
          if (c < first_chunk_ + chunks_.size()) chunk = chunks_[c - first_chunk_];
          return chunk != nullptr;
        },
        deadline, changed_);
    return chunk;
  }

  // Waits until `chunk` is done; false if the deadline passes first.
  bool wait_done(const ChunkPtr& chunk, const Deadline& deadline) {
    return block_until([&] { return chunk->done.done(); }, deadline, changed_);
  }

  // The next chunk to complete, in completion order, and its index (nullptr if the deadline
  // passes first).
  std::pair<ChunkPtr, std::size_t> wait_completed(const Deadline& deadline) {
    std::size_t c = 0;
    const bool ok = block_until(
        [&] {
          std::lock_guard lock(mu_);
          if (completed_.empty()) return false;
          c = completed_.front();
          completed_.pop_front();
          return true;
        },
        deadline, changed_);
    if (!ok) return {nullptr, 0};
    std::lock_guard lock(mu_);
    return {chunks_[c - first_chunk_], c};
  }

  // The iterator is done with chunk `c`: drop it (and its results), and in lazy mode read and
  // submit one more chunk (an exception from the input or from submitting comes out of here).
  void release(std::size_t c) {
    ChunkPtr released;
    {
      std::lock_guard lock(mu_);
      released = std::move(chunks_[c - first_chunk_]);
      // Released chunks leave the front, so that a long lazy map holds only what is in flight.
      while (!chunks_.empty() && chunks_.front() == nullptr) {
        chunks_.pop_front();
        ++first_chunk_;
      }
    }
    // Outside the lock: what the iterator did not take is destroyed here (user destructors). Only
    // a chunk that is done gives its storage back: the iterator may skip a whole chunk with ++it
    // (no *it, so no wait) while a worker still fills it. done() is an acquire load: the worker's
    // writes to `out`, made before it completed `done`, are seen here.
    if (released && released->done.done()) keep_spare(std::move(released->out));
    released.reset();
    if (buffersize_ > 0 && !input_done()) add_chunk();
  }

  // How many items the map yields in all, once its whole input has been read (always, without
  // buffersize); nullopt while a lazy map is still reading its input.
  std::optional<std::size_t> total_items() const {
    std::lock_guard lock(mu_);
    if (!input_done_) return std::nullopt;
    return items_read_;
  }

  // How many items the map yields at least (items read so far), and whether that is all of them
  // (the input is done). The count never decreases as the iterating thread sees it (a withdrawn
  // chunk is withdrawn within the call that added it, in that same thread), so an iterator may
  // cache it and skip the lock until it has consumed that many items.
  std::pair<std::size_t, bool> items_known() const {
    std::lock_guard lock(mu_);
    return {items_read_, input_done_};
  }

  // Cancels every chunk that has not started and stops claiming new ones. Running chunks finish.
  void stop() noexcept {
    std::vector<Future<void>> to_cancel;
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      for (const ChunkPtr& chunk : chunks_) {
        if (chunk && !chunk->done.done()) to_cancel.push_back(chunk->done);
      }
      for (const Future<void>& drain : drains_) to_cancel.push_back(drain);
      drains_.clear();
    }
    on_stop();
    // Outside the lock: cancelling runs callbacks, which take the lock.
    for (const Future<void>& f : to_cancel) f.cancel();
  }

 protected:
  bool input_done() const {
    std::lock_guard lock(mu_);
    return input_done_;
  }

  // Reads up to one chunk of input and submits it, or marks the input done.
  virtual void add_chunk() = 0;
  // Reads all input and submits the drain tasks (automatic chunking).
  virtual void start_drains() = 0;
  // Reads all input and submits it in chunks sized up front (automatic chunking, other process).
  virtual void start_presized() = 0;
  // Called by stop(): drop what is no longer needed.
  virtual void on_stop() noexcept {}

  // Registers a new chunk of `size` items; returns it and its index.
  std::pair<ChunkPtr, std::size_t> new_chunk_locked(std::size_t size) {
    auto chunk = std::make_shared<Chunk<R>>();
    chunk->begin = next_begin_;
    chunk->size = size;
    next_begin_ += size;
    chunks_.push_back(chunk);
    return {chunk, first_chunk_ + chunks_.size() - 1};
  }

  // The outcome vector of a chunk the iterator is done with, kept (emptied) for a later chunk of
  // this map: a worker then fills memory that is already there instead of allocating a vector
  // per chunk, which the iterating thread would free. With glibc's malloc that pair was costly:
  // each chunk-sized allocation in a worker consolidated the small blocks that the iterating
  // thread had freed into the worker's arena (the results), before the worker allocated again.
  void keep_spare(std::vector<Outcome<R>> out) {
    out.clear();
    if (out.capacity() == 0) return;
    std::lock_guard lock(mu_);
    if (spare_outs_.size() < max_spare_outs_) spare_outs_.push_back(std::move(out));
    // else freed on return, after the lock (the vector is empty: no user destructor runs)
  }

  // A kept outcome vector for a chunk about to run, or an empty one.
  std::vector<Outcome<R>> take_spare() {
    std::lock_guard lock(mu_);
    if (spare_outs_.empty()) return {};
    std::vector<Outcome<R>> out = std::move(spare_outs_.back());
    spare_outs_.pop_back();
    return out;
  }

  // A chunk is done (whichever way): let the iterator know.
  void chunk_finished(std::size_t c) {
    {
      std::lock_guard lock(mu_);
      if (completion_order_) completed_.push_back(c);
    }
    changed_.notify();
  }

  void notify_changed() { changed_.notify(); }

  // Submits `task` (which completes chunk c's `done`) and reports chunk c when it completes. On
  // failure the chunk is withdrawn and the error rethrown.
  void submit_chunk(TaskPtr task, const ChunkPtr& chunk, std::size_t c, std::size_t items) {
    try {
      link_->schedule(std::move(task));
    } catch (...) {
      std::lock_guard lock(mu_);
      // Withdraw the chunk: only this thread adds chunks in this mode, so it is the last one.
      chunks_.pop_back();
      next_begin_ -= items;
      items_read_ -= items;
      throw;
    }
    std::weak_ptr<MapCore> weak = this->weak_from_this();
    chunk->done.add_done_callback([weak, c](const Future<void>&) {
      if (auto self = weak.lock()) self->chunk_finished(c);
    });
  }

  // Guards everything below and the derived classes' input state.
  mutable std::mutex mu_;
  std::shared_ptr<ExecutorLink> link_;
  ChunkSizer sizer_;
  const std::size_t buffersize_;
  std::deque<ChunkPtr> chunks_;        // in input order from first_chunk_; reset once iterated
  std::size_t first_chunk_ = 0;        // the index of chunks_.front(): those before are released
  std::deque<std::size_t> completed_;  // chunk indices in completion order (completion_order_)
  bool completion_order_ = false;
  std::vector<Future<void>> drains_;  // automatic chunking's tasks
  std::size_t next_begin_ = 0;        // input index of the next chunk's first item
  std::size_t items_read_ = 0;        // items put into chunks (or, eager-auto, read)
  bool input_done_ = false;
  bool stopped_ = false;
  // Emptied outcome vectors of released chunks (keep_spare): about one per worker is in use at a
  // time when the iterator keeps up; capacity reserved up front.
  const std::size_t max_spare_outs_;
  std::vector<std::vector<Outcome<R>>> spare_outs_;

 private:
  Signal changed_;
};

template <class Fn, class Item, class R>
class ChunkTask;

// A map over items of type Item (a tuple of arguments); fn is applied with std::apply.
template <class Fn, class Item, class R>
class MapCoreImpl final : public MapCore<R> {
  using Base = MapCore<R>;
  using typename Base::ChunkPtr;
  friend class ChunkTask<Fn, Item, R>;

 public:
  using Source = UniqueFunction<std::optional<Item>()>;

  MapCoreImpl(std::shared_ptr<ExecutorLink> link, const MapOptions& options, std::size_t workers,
              Fn fn, Source source)
      : Base(std::move(link), options, workers),
        fn_(std::make_shared<Fn>(std::move(fn))),
        source_(std::move(source)) {}

 private:
  // Runs fn on each item, keeping each outcome; measures the time for the sizer.
  void run_items(Chunk<R>& chunk, std::vector<Item>& items, Fn& fn) noexcept {
    const auto t0 = Clock::now();
    try {
      chunk.out = this->take_spare();
      chunk.out.reserve(items.size());
    } catch (...) {
      chunk.out_error = std::current_exception();  // every item of the chunk fails with it
      items.clear();
      return;
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      try {
        if constexpr (std::is_void_v<R>) {
          std::apply(fn, std::move(items[i]));
          chunk.out.emplace_back(std::in_place_index<1>);
        } else {
          chunk.out.emplace_back(std::in_place_index<1>, std::apply(fn, std::move(items[i])));
        }
      } catch (...) {
        chunk.out.emplace_back(std::in_place_index<2>, std::current_exception());
      }
    }
    this->sizer_.record(items.size(), Clock::now() - t0);
    items.clear();  // drop the arguments as soon as they are used
  }

  void add_chunk() override {
    const std::size_t want = this->sizer_.next(ChunkSizer::kUnknown);
    std::vector<Item> items;
    bool ended = false;
    try {
      while (items.size() < want) {
        std::optional<Item> item = source_();
        if (!item) {
          ended = true;
          break;
        }
        items.push_back(std::move(*item));
      }
    } catch (...) {
      // The input failed: it is over. What it yielded before the error still runs.
      std::unique_lock lock(this->mu_);
      std::shared_ptr<Fn> fn = fn_;
      this->input_done_ = true;
      drop_input_locked();
      if (!items.empty()) submit_items(std::move(items), std::move(fn), lock);
      throw;
    }
    std::unique_lock lock(this->mu_);
    std::shared_ptr<Fn> fn = fn_;  // taken before the end of input drops the core's copy
    if (ended) {
      this->input_done_ = true;
      drop_input_locked();
    }
    if (!items.empty()) submit_items(std::move(items), std::move(fn), lock);
  }

  // Registers a chunk for `items` and submits it. Called with the lock held; releases it.
  template <class Lock>
  void submit_items(std::vector<Item> items, std::shared_ptr<Fn> fn, Lock& lock) {
    auto [chunk, c] = this->new_chunk_locked(items.size());
    const std::size_t n = items.size();
    this->items_read_ += n;
    lock.unlock();
    this->submit_chunk(std::make_unique<ChunkTask<Fn, Item, R>>(shared_self(), chunk, std::move(fn),
                                                                std::move(items)),
                       chunk, c, n);
  }

  void start_presized() override {
    std::vector<Item> all;
    while (std::optional<Item> item = source_()) all.push_back(std::move(*item));
    const std::size_t workers = std::max<std::size_t>(1, workers_hint());
    const std::size_t size =
        std::max<std::size_t>(1, (all.size() + 4 * workers - 1) / (4 * workers));
    std::unique_lock lock(this->mu_);
    std::shared_ptr<Fn> fn = fn_;
    this->input_done_ = true;
    drop_input_locked();
    lock.unlock();
    for (std::size_t begin = 0; begin < all.size(); begin += size) {
      const std::size_t end = std::min(all.size(), begin + size);
      std::vector<Item> items(
          std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(begin)),
          std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(end)));
      lock.lock();
      submit_items(std::move(items), fn, lock);
    }
  }

  void start_drains() override {
    std::vector<Item> all;
    while (std::optional<Item> item = source_()) all.push_back(std::move(*item));
    std::size_t drains = 0;
    {
      std::lock_guard lock(this->mu_);
      all_ = std::move(all);
      this->items_read_ = all_.size();
      this->input_done_ = true;
      source_ = Source();
      drains = std::min(all_.size(), std::max<std::size_t>(1, workers_hint()));
      live_drains_ = drains;
    }
    std::shared_ptr<Fn> fn = fn_;
    {
      std::lock_guard lock(this->mu_);
      fn_.reset();  // the drains hold it from now on
    }
    for (std::size_t i = 0; i < drains; ++i) {
      Future<void> drain;
      {
        std::lock_guard lock(this->mu_);
        this->drains_.push_back(drain);
      }
      auto body = [self = shared_self(), fn] { self->drain(*fn); };
      try {
        schedule_via_link(make_task(drain, std::move(body)));
      } catch (...) {
        drain.cancel();
        drain_finished(drain);
        throw;
      }
      std::weak_ptr<MapCoreImpl> weak = shared_self();
      drain.add_done_callback([weak](const Future<void>& f) {
        if (auto self = weak.lock()) self->drain_finished(f);
      });
    }
  }

  // A drain task: claims runs of items in input order until there are none left.
  void drain(Fn& fn) {
    for (;;) {
      ChunkPtr chunk;
      std::vector<Item> items;
      std::size_t c = 0;
      {
        std::lock_guard lock(this->mu_);
        if (this->stopped_ || cursor_ >= all_.size()) return;
        const std::size_t size = this->sizer_.next(all_.size() - cursor_);
        std::tie(chunk, c) = this->new_chunk_locked(size);
        chunk->done.set_running_or_notify_cancel();
        items.assign(
            std::make_move_iterator(all_.begin() + static_cast<std::ptrdiff_t>(cursor_)),
            std::make_move_iterator(all_.begin() + static_cast<std::ptrdiff_t>(cursor_ + size)));
        cursor_ += size;
        if (cursor_ == all_.size()) drop_input_locked();
      }
      this->notify_changed();
      run_items(*chunk, items, fn);
      chunk->done.set_result();
      this->chunk_finished(c);
    }
  }

  // A drain task ended in any way. When the last one ends with input left unclaimed (it was
  // cancelled, or the pool broke before it ran), that input becomes one final chunk that ends
  // the same way, so the iterator never waits for items nobody will run.
  void drain_finished(const Future<void>& drain) {
    ChunkPtr chunk;
    std::size_t c = 0;
    {
      std::lock_guard lock(this->mu_);
      if (--live_drains_ > 0 || cursor_ >= all_.size()) return;
      std::tie(chunk, c) = this->new_chunk_locked(all_.size() - cursor_);
      cursor_ = all_.size();
      drop_input_locked();
    }
    const FutureState s = drain.state();
    if (s == FutureState::finished && drain.exception() != nullptr) {
      chunk->done.set_exception(drain.exception());
    } else {
      chunk->done.cancel();
    }
    this->chunk_finished(c);
  }

  void on_stop() noexcept override {
    std::lock_guard lock(this->mu_);
    cursor_ = all_.size();
    drop_input_locked();
  }

  void drop_input_locked() noexcept {
    all_.clear();
    all_.shrink_to_fit();
    cursor_ = 0;
    source_ = Source();
    fn_.reset();
  }

  std::shared_ptr<MapCoreImpl> shared_self() {
    return std::static_pointer_cast<MapCoreImpl>(this->shared_from_this());
  }

  std::size_t workers_hint() const { return this->link_->max_workers(); }
  void schedule_via_link(TaskPtr task) { this->link_->schedule(std::move(task)); }

  std::shared_ptr<Fn> fn_;  // dropped once no more chunks will be made; tasks hold copies
  Source source_;           // the input, read only by the thread that calls map() or ++it
  std::vector<Item> all_;   // automatic chunking: the whole input, claimed from cursor_
  std::size_t cursor_ = 0;
  std::size_t live_drains_ = 0;
};

// One chunk of a map as a task: run here (run_items), or sent whole to a worker process.
template <class Fn, class Item, class R>
class ChunkTask final : public Task, public RemoteCall {
  static constexpr bool kRemotable = remotable_v<R, Fn, std::vector<Item>>;
  using Core = MapCoreImpl<Fn, Item, R>;

 public:
  ChunkTask(std::shared_ptr<Core> core, std::shared_ptr<Chunk<R>> chunk, std::shared_ptr<Fn> fn,
            std::vector<Item> items)
      : core_(std::move(core)),
        chunk_(std::move(chunk)),
        fn_(std::move(fn)),
        items_(std::move(items)) {}

  bool start() noexcept override {
    started_at_ = Clock::now();
    return start_future(chunk_->done);
  }
  void execute() noexcept override {
    core_->run_items(*chunk_, items_, *fn_);
    fn_.reset();
  }
  void publish() noexcept override { finish(); }
  void cancel() noexcept override { cancel_future(chunk_->done); }
  void abandon(const std::exception_ptr& error) noexcept override {
    fail_future(chunk_->done, error);
  }

  RemoteCall* remote() noexcept override {
    if constexpr (kRemotable) {
      return this;
    } else {
      return nullptr;
    }
  }
  std::string why_not_remote() const override {
    return why_not_remotable<R, Fn, std::vector<Item>>();
  }
  void write_request(codec::Writer& w) override {
    if constexpr (kRemotable) {
      encode_chunk<Fn, Item, R>(w, *fn_, items_);
      items_.clear();
      items_.shrink_to_fit();
      fn_.reset();
    }
  }
  void destroy() noexcept override { delete this; }
  // On the dispatcher thread: checks the reply's frame and keeps its bytes for the iterating
  // thread, which decodes each item as it takes it (see Chunk::reply).
  void read_reply(codec::Received& reply) override {
    if constexpr (kRemotable) {
      codec::Reader r = reply.reader();
      if (r.pod<ReplyStatus>() == ReplyStatus::error) {
        chunk_->done.set_exception(codec::read_exception(r));
        return;
      }
      const std::size_t n = r.size();
      if (n != chunk_->size) throw SerializationError("a chunk's reply has the wrong length");
      core_->sizer_.record(n, Clock::now() - started_at_);
      chunk_->reply_at = reply.size() - r.remaining();
      chunk_->reply = reply.take();
      chunk_->reply.release();  // the mapping stays; its descriptor need not wait for the reader
      chunk_->in_reply = true;
      finish();
    }
  }

 private:
  void finish() noexcept {
    try {
      chunk_->done.set_result();
    } catch (...) {
    }
  }

  std::shared_ptr<Core> core_;
  std::shared_ptr<Chunk<R>> chunk_;
  std::shared_ptr<Fn> fn_;
  std::vector<Item> items_;
  Clock::time_point started_at_;
};

// Where an iteration over a map's results stands (MapRange, MapUnorderedRange): the items it
// consumed, and whether it has ended. at_end() takes the core's lock only once the items known to
// exist are all consumed: once per chunk, not once per item.
class MapCursor {
 public:
  std::size_t consumed = 0;
  bool ended = false;

  template <class Core>
  bool at_end(const Core& core) const {
    if (ended) return true;
    if (consumed < known_items_) return false;
    const auto [items, complete] = core.items_known();
    known_items_ = items;
    return complete && consumed >= items;
  }

 private:
  mutable std::size_t known_items_ = 0;  // items that exist at least
};

}  // namespace concurrent::futures::detail
