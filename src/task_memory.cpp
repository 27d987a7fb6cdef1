// Memory for submitted tasks (see detail/task_memory.hpp).
#include "concurrent/futures/detail/task_memory.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <new>

#include "system.hpp"

namespace concurrent::futures::detail::task_memory {

namespace {

constexpr bool kPooled = !kAddressSanitizer;

// A free block. The first block of a chain in the depot also links the depot's next chain and
// says how many blocks its own chain has.
struct Block {
  Block* next;
  Block* next_chain;
  std::size_t count;
};
static_assert(sizeof(Block) <= kGranule);

std::size_t class_of(std::size_t bytes) noexcept { return (bytes - 1) / kGranule; }
std::size_t class_bytes(std::size_t cls) noexcept { return (cls + 1) * kGranule; }

void free_chain(Block* head) noexcept {
  while (head != nullptr) {
    Block* next = head->next;
    ::operator delete(static_cast<void*>(head));
    head = next;
  }
}

using Clock = std::chrono::steady_clock;

class Depot {
 public:
  Depot() {
    // A child forked while another thread holds the lock would wait for it forever.
    pthread_atfork([] { depot().mu_.lock(); }, [] { depot().mu_.unlock(); },
                   [] { depot().mu_.unlock(); });
  }

  static Depot& depot() {
    static Depot* const instance = new Depot;  // never destroyed: threads may end after main
    return *instance;
  }

  void put(std::size_t cls, Block* head, std::size_t count) noexcept {
    Released released;
    {
      std::lock_guard lock(mu_);
      Class& c = classes_[cls];
      head->count = count;
      head->next_chain = c.chains;
      c.chains = head;
      ++c.chain_count;
      bytes_ += count * class_bytes(cls);
      released = decay_locked();
    }
    released.free();
  }

  // A chain of free blocks of class `cls` (its count in *count), or nullptr.
  Block* take(std::size_t cls, std::size_t* count) noexcept {
    Released released;
    Block* head = nullptr;
    {
      std::lock_guard lock(mu_);
      Class& c = classes_[cls];
      head = c.chains;
      if (head != nullptr) {
        c.chains = head->next_chain;
        --c.chain_count;
        c.low = std::min(c.low, c.chain_count);
        *count = head->count;
        bytes_ -= head->count * class_bytes(cls);
      }
      released = decay_locked();
    }
    released.free();
    return head;
  }

  void trim() noexcept {
    Released released;
    {
      std::lock_guard lock(mu_);
      for (std::size_t cls = 0; cls < kClasses; ++cls) {
        released.chains[cls] = classes_[cls].chains;
        classes_[cls] = Class{};
      }
      bytes_ = 0;
      period_start_ = Clock::now();
    }
    released.free();
  }

  std::size_t bytes() noexcept {
    std::lock_guard lock(mu_);
    return bytes_;
  }

  void end_decay_period() noexcept {
    std::lock_guard lock(mu_);
    period_over_ = true;
  }

 private:
  struct Released {
    std::array<Block*, kClasses> chains{};
    void free() noexcept {
      for (std::size_t cls = 0; cls < kClasses; ++cls) {
        for (Block* chain = chains[cls]; chain != nullptr;) {
          Block* next_chain = chain->next_chain;
          free_chain(chain);
          chain = next_chain;
        }
      }
    }
  };

  // A class's chains, newest first: a take gets the warmest, decay frees the oldest.
  struct Class {
    Block* chains = nullptr;
    std::size_t chain_count = 0;
    std::size_t low = 0;  // the least chain_count since period_start_
  };

  // Once a decay period has passed: hands out (to be freed after the lock), in each class, as many
  // of its oldest chains as it held unused throughout the period (its least count then), and
  // starts a new period.
  Released decay_locked() noexcept {
    Released released;
    const Clock::time_point now = Clock::now();
    if (!period_over_ && now - period_start_ < kPeriod) return released;
    for (std::size_t cls = 0; cls < kClasses; ++cls) {
      Class& c = classes_[cls];
      if (c.low > 0) {
        // Keep the newest chain_count - low chains; the rest, the oldest, go.
        const std::size_t keep = c.chain_count - c.low;
        Block** cut = &c.chains;
        for (std::size_t i = 0; i < keep; ++i) cut = &(*cut)->next_chain;
        released.chains[cls] = *cut;
        *cut = nullptr;
        for (Block* chain = released.chains[cls]; chain != nullptr; chain = chain->next_chain) {
          bytes_ -= chain->count * class_bytes(cls);
        }
        c.chain_count = keep;
      }
      c.low = c.chain_count;
    }
    period_start_ = now;
    period_over_ = false;
    return released;
  }

  std::mutex mu_;
  std::array<Class, kClasses> classes_{};
  std::size_t bytes_ = 0;
  Clock::time_point period_start_ = Clock::now();
  static constexpr std::chrono::milliseconds kPeriod{1000};
  bool period_over_ = false;  // end_decay_period: the next use ends the period
};

// Made while the program starts (single-threaded), so that no fork can copy the depot half made:
// a child would wait forever for its construction to end.
[[maybe_unused]] const bool kDepotMade = kPooled && (Depot::depot(), true);

// A thread's free blocks: per class, a chain being filled or emptied (`head`, `count` blocks) and
// at most one full chain (`spare`, kChain blocks).
struct Cache {
  struct Class {
    Block* head = nullptr;
    std::size_t count = 0;
    Block* spare = nullptr;
  };
  std::array<Class, kClasses> classes;

  Cache() = default;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  ~Cache();

  void flush() noexcept {
    for (std::size_t cls = 0; cls < kClasses; ++cls) {
      Class& c = classes[cls];
      if (c.spare != nullptr) Depot::depot().put(cls, c.spare, kChain);
      if (c.head != nullptr) Depot::depot().put(cls, c.head, c.count);
      c = Class{};
    }
  }

  std::size_t bytes() const noexcept {
    std::size_t total = 0;
    for (std::size_t cls = 0; cls < kClasses; ++cls) {
      const Class& c = classes[cls];
      total += (c.count + (c.spare != nullptr ? kChain : 0)) * class_bytes(cls);
    }
    return total;
  }
};

// Set once the calling thread's Cache is destroyed: blocks freed later in that thread's exit go
// straight back to malloc.
thread_local bool t_cache_gone = false;
thread_local Cache t_cache;

Cache::~Cache() {
  flush();
  t_cache_gone = true;
}

Cache* cache() noexcept { return t_cache_gone ? nullptr : &t_cache; }

}  // namespace

void* allocate(std::size_t bytes) {
  const std::size_t cls = class_of(bytes);
  if (kPooled) {
    if (Cache* c = cache()) {
      Cache::Class& k = c->classes[cls];
      if (k.head == nullptr) {
        if (k.spare != nullptr) {
          k.head = k.spare;
          k.count = kChain;
          k.spare = nullptr;
        } else {
          k.head = Depot::depot().take(cls, &k.count);
        }
      }
      if (k.head != nullptr) {
        Block* block = k.head;
        k.head = block->next;
        --k.count;
        return block;
      }
    }
  }
  return ::operator new(class_bytes(cls));
}

void deallocate(void* block, std::size_t bytes) noexcept {
  const std::size_t cls = class_of(bytes);
  Cache* c = kPooled ? cache() : nullptr;
  if (c == nullptr) {
    ::operator delete(block);
    return;
  }
  Cache::Class& k = c->classes[cls];
  if (k.count == kChain) {
    if (k.spare != nullptr) Depot::depot().put(cls, k.spare, kChain);
    k.spare = k.head;
    k.head = nullptr;
    k.count = 0;
  }
  k.head = new (block) Block{k.head, nullptr, 0};
  ++k.count;
}

void trim() noexcept {
  if (!kPooled) return;
  if (Cache* c = cache()) c->flush();
  Depot::depot().trim();
}

Stats stats() noexcept {
  if (!kPooled) return {0, 0};
  Cache* c = cache();
  return {Depot::depot().bytes(), c != nullptr ? c->bytes() : 0};
}

bool pooled() noexcept { return kPooled; }

void end_decay_period() noexcept {
  if (kPooled) Depot::depot().end_decay_period();
}

}  // namespace concurrent::futures::detail::task_memory
