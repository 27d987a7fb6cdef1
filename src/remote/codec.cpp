// Buffers (heap, then memfd), the cereal adapters, and the exception encoding of detail/codec.hpp
// (with the types a program registered, see exception_transport.hpp).
#include "concurrent/futures/detail/codec.hpp"

#include <cxxabi.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <iterator>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <typeinfo>

#include "concurrent/futures/detail/state.hpp"
#include "remote/exception_registry.hpp"
#include "system.hpp"

namespace concurrent::futures::detail::codec {

namespace {

std::size_t page_round(std::size_t n) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

// --- spare heap blocks ----------------------------------------------------------------------
//
// The heap storage of buffers from kSpareMin to kSharedThreshold bytes, kept when a buffer is
// done for the next one that needs as much. Messages of that size come in streams (a map's chunk
// replies: copied out of the channel by the dispatcher thread, freed by the thread that iterates
// the map; a worker rank's replies and their MPI send copies), and freeing each one let glibc give
// the top of the heap back (madvise or brk) and fault it in again for the next: tens of
// microseconds a time on this machine. Blocks are sized
// in powers of two so that one fits the next message of about the same size. The slots are
// lock-free words, so a fork child never blocks on them; it inherits its parent's spares as its
// own copies. Off under AddressSanitizer (kAddressSanitizer).
constexpr std::size_t kSpareMin = std::size_t{16} << 10;
constexpr std::size_t kSpareSlots = 8;  // at most 8 x 256 KiB kept

class SpareBlocks {
 public:
  static SpareBlocks& instance() noexcept {
    static SpareBlocks blocks;  // constant-initialized: no guard, usable from any thread or child
    return blocks;
  }

  // A block of at least `needed` bytes from the spares (its capacity in *capacity), or nullptr.
  std::byte* take(std::size_t needed, std::size_t* capacity) noexcept {
    for (std::atomic<std::uintptr_t>& slot : slots_) {
      std::uintptr_t word = slot.load(std::memory_order_relaxed);
      if (word == 0 || capacity_of(word) < needed) continue;
      if (!slot.compare_exchange_strong(word, 0, std::memory_order_acquire)) continue;
      *capacity = capacity_of(word);
      return reinterpret_cast<std::byte*>(word & ~kCodeMask);
    }
    return nullptr;
  }

  // Keeps the block (in an empty slot, or in place of a smaller one), or frees it.
  void give(std::byte* block, std::size_t capacity) noexcept {
    const std::uintptr_t word =
        reinterpret_cast<std::uintptr_t>(block) |
        static_cast<std::uintptr_t>(std::countr_zero(capacity) - std::countr_zero(kSpareMin));
    for (std::atomic<std::uintptr_t>& slot : slots_) {
      std::uintptr_t empty = 0;
      if (slot.compare_exchange_strong(empty, word, std::memory_order_release)) return;
    }
    for (std::atomic<std::uintptr_t>& slot : slots_) {
      std::uintptr_t smaller = slot.load(std::memory_order_relaxed);
      if (smaller == 0 || capacity_of(smaller) >= capacity) continue;
      if (slot.compare_exchange_strong(smaller, word, std::memory_order_acq_rel)) {
        ::operator delete(reinterpret_cast<std::byte*>(smaller & ~kCodeMask));
        return;
      }
    }
    ::operator delete(block);
  }

 private:
  // A slot holds a block's address and, in its low bits (operator new aligns to 16), which power
  // of two from kSpareMin its capacity is: 0 for 16 KiB up to 4 for 256 KiB.
  static constexpr std::uintptr_t kCodeMask = 15;
  static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ > kCodeMask);
  static std::size_t capacity_of(std::uintptr_t word) noexcept {
    return kSpareMin << (word & kCodeMask);
  }

  std::atomic<std::uintptr_t> slots_[kSpareSlots] = {};
};

// Heap storage for a buffer: from the spares when large enough to be worth keeping.
std::byte* new_heap_block(std::size_t& capacity) {
  if (!kAddressSanitizer && capacity >= kSpareMin) {
    capacity = std::bit_ceil(capacity);
    std::size_t spare = 0;
    if (std::byte* block = SpareBlocks::instance().take(capacity, &spare)) {
      capacity = spare;
      return block;
    }
  }
  return static_cast<std::byte*>(::operator new(capacity));
}

void free_heap_block(std::byte* block, std::size_t capacity) noexcept {
  if (block == nullptr) return;
  if (!kAddressSanitizer && capacity >= kSpareMin && capacity <= kSharedThreshold &&
      std::has_single_bit(capacity)) {
    SpareBlocks::instance().give(block, capacity);
  } else {
    ::operator delete(block);
  }
}

// --- segments -------------------------------------------------------------------------------
//
// A segment is a memfd: a control page, then the payload. The control page's first word counts
// the receivers that were sent the segment and have not unmapped it yet: share() adds one before
// the descriptor is sent, a receiver's Buffer subtracts one when it unmaps (release order, after
// its last read of the payload). A sender's Buffer, when it is done, gives its segment, still
// mapped, to this process's pool; a later large Buffer takes a segment from the pool only when
// its count reads zero (acquire order, so the receivers' reads all happened before the new
// writes). A receiver that dies holding a segment never subtracts: its segment stays out of use
// and is the first one dropped (unmapped and closed) when the pool is full. Dropping a segment is
// always safe: a receiver has its own mapping and descriptor, and the pages live until the last
// of them is gone.
constexpr std::size_t kControlBytes = kSegmentControlBytes;
using ReaderCount = std::atomic<std::uint32_t>;
static_assert(ReaderCount::is_always_lock_free, "the reader count must be lock-free to be shared");

ReaderCount& readers_of(std::byte* base) noexcept {
  return *std::launder(reinterpret_cast<ReaderCount*>(base));
}

// The control page's second word: set by the sender when it drops the segment, so that a
// receiver that keeps its mapping (keep_received_mappings) lets the memory go too.
using DroppedFlag = std::atomic<std::uint32_t>;
DroppedFlag& dropped_flag(std::byte* base) noexcept {
  return *std::launder(reinterpret_cast<DroppedFlag*>(base + sizeof(ReaderCount)));
}

struct Segment {
  int fd = -1;
  std::byte* base = nullptr;  // the control page; the payload follows it
  std::size_t capacity = 0;   // payload bytes
  // The sender is done with the segment: receivers that keep a mapping of it let it go too.
  void drop() const noexcept {
    dropped_flag(base).store(1, std::memory_order_relaxed);
    unmap_here();
  }
  // This process's mapping and descriptor only (a fork child's copy of its parent's segment,
  // which the parent still uses).
  void unmap_here() const noexcept {
    munmap(base, kControlBytes + capacity);
    close(fd);
  }
};

// The idle segments of this process: at most kPoolSegments, kPoolBytes in all, kept mapped.
// Segments inherited through fork are the parent's (it may reuse them): the child drops them
// (pthread_atfork below) and starts with none.
constexpr std::size_t kPoolSegments = 4;
constexpr std::size_t kPoolBytes = std::size_t{1} << 30;
// A receiver keeps as many unused mappings per sender as the sender keeps idle segments, so a
// sender cycling through its segments always finds them mapped (detail/codec.hpp).
static_assert(kKeptReceivedMappings == kPoolSegments);

class SegmentPool {
 public:
  static SegmentPool& instance() {
    // Never destroyed: a Buffer may be freed during static destruction.
    static SegmentPool* const pool = [] {
      auto* p = new SegmentPool;
      pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                     [] { instance().forget_in_child(); });
      return p;
    }();
    return *pool;
  }

  // A free segment (no receiver holds it) for `needed` payload bytes: the smallest one that is
  // large enough, else the largest free one (the caller grows it); nullopt when none is free.
  std::optional<Segment> take(std::size_t needed) {
    std::lock_guard lock(mutex_);
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < idle_.size(); ++i) {
      const Segment& s = idle_[i];
      if (readers_of(s.base).load(std::memory_order_acquire) != 0) continue;
      if (!best) {
        best = i;
        continue;
      }
      const Segment& b = idle_[*best];
      const bool fits = s.capacity >= needed;
      const bool best_fits = b.capacity >= needed;
      if ((fits && (!best_fits || s.capacity < b.capacity)) ||
          (!fits && !best_fits && s.capacity > b.capacity)) {
        best = i;
      }
    }
    if (!best) return std::nullopt;
    const Segment s = idle_[*best];
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(*best));
    bytes_ -= s.capacity;
    return s;
  }

  void give_back(Segment s) noexcept {
    std::vector<Segment> dropped;
    {
      std::lock_guard lock(mutex_);
      if (s.capacity > kPoolBytes) {
        dropped.push_back(s);
      } else {
        try {
          idle_.push_back(s);
          bytes_ += s.capacity;
        } catch (...) {
          dropped.push_back(s);
        }
        // Full: drop those a receiver still holds first (perhaps a dead one), then the oldest.
        while (idle_.size() > kPoolSegments || bytes_ > kPoolBytes) {
          auto victim = std::find_if(idle_.begin(), idle_.end(), [](const Segment& x) {
            return readers_of(x.base).load(std::memory_order_relaxed) != 0;
          });
          if (victim == idle_.end()) victim = idle_.begin();
          bytes_ -= victim->capacity;
          dropped.push_back(*victim);
          idle_.erase(victim);
        }
      }
    }
    for (const Segment& d : dropped) d.drop();
  }

  void clear() noexcept {
    std::vector<Segment> dropped;
    {
      std::lock_guard lock(mutex_);
      dropped.swap(idle_);
      bytes_ = 0;
    }
    for (const Segment& d : dropped) d.drop();
  }

 private:
  // In a fork child, with the mutex held by the prepare handler: no allocation, only unmapping
  // and closing (both async-signal-safe).
  void forget_in_child() noexcept {
    for (const Segment& d : idle_) d.unmap_here();
    idle_.clear();
    bytes_ = 0;
    mutex_.unlock();
  }

  std::mutex mutex_;
  std::vector<Segment> idle_;
  std::size_t bytes_ = 0;
};

Segment new_segment(std::size_t capacity) {
  Segment s;
  s.fd = memfd_create("cfutures-payload", MFD_CLOEXEC);
  if (s.fd < 0) throw_errno("memfd_create");
  if (ftruncate(s.fd, static_cast<off_t>(kControlBytes + capacity)) != 0) {
    const int e = errno;
    close(s.fd);
    throw std::system_error(e, std::generic_category(), "ftruncate of a shared payload");
  }
  // MAP_POPULATE: the pages are made in one go rather than by a fault each while the payload is
  // written.
  void* p = mmap(nullptr, kControlBytes + capacity, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, s.fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    close(s.fd);
    throw std::system_error(e, std::generic_category(), "mmap of a shared payload");
  }
  s.base = static_cast<std::byte*>(p);
  new (s.base) ReaderCount(0);
  new (s.base + sizeof(ReaderCount)) DroppedFlag(0);
  s.capacity = capacity;
  return s;
}

// Makes `s` hold at least `capacity` payload bytes, keeping what it holds.
void grow_segment(Segment& s, std::size_t capacity) {
  if (ftruncate(s.fd, static_cast<off_t>(kControlBytes + capacity)) != 0) throw_errno("ftruncate");
  void* p = mremap(s.base, kControlBytes + s.capacity, kControlBytes + capacity, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) throw_errno("mremap of a shared payload");
  s.base = static_cast<std::byte*>(p);
  s.capacity = capacity;
}

}  // namespace

void advise_huge_pages(void* p, std::size_t n) noexcept {
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t last = (begin + n) & ~(kHuge - 1);
  // Failing advice (THP not built in) changes nothing but speed.
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

void release_idle_segments() noexcept { SegmentPool::instance().clear(); }

bool keeps_spare_blocks() noexcept { return !kAddressSanitizer; }

namespace {

// The received mappings a process keeps: one per segment, found by the segment's inode, each for
// a keeper (a receiver that asked, such as a channel to one worker; nullptr for the whole process,
// keep_received_mappings). An entry in use belongs to a live Buffer; one not in use is kept for
// the keeper's next payload in the same segment, the keeper's oldest dropped beyond
// kKeptReceivedMappings. A keeper that forgets its mappings unmaps those not in use at once and
// the others when their Buffer is done.
class ReceivedMappings {
 private:
  struct Entry {
    std::pair<dev_t, ino_t> id;
    std::byte* base;
    std::size_t length;  // of the mapping, control page included
    const void* keeper;
    bool in_use;
    bool forgotten;  // its keeper is gone: unmapped when its Buffer is done
  };

 public:
  // Made when the library is loaded (see g_received_mappings_made), before any thread of ours
  // runs, so that a fork never copies it half made.
  static ReceivedMappings& instance() {
    static ReceivedMappings* const mappings = [] {
      auto* m = new ReceivedMappings;
      pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                     [] { instance().forget_in_child(); });
      return m;
    }();
    return *mappings;
  }

  // The base of a kept mapping of segment `id` for `keeper` with at least `length` bytes, now in
  // use; nullptr if there is none (one too short is unmapped).
  std::byte* take(const std::pair<dev_t, ino_t>& id, std::size_t length,
                  const void* keeper) noexcept {
    std::vector<Entry> dropped;
    std::byte* base = nullptr;
    {
      std::lock_guard lock(mutex_);
      forget_dropped_locked(dropped);
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->id != id || it->keeper != keeper || it->in_use || it->forgotten) {
          ++it;
        } else if (it->length >= length) {
          it->in_use = true;
          base = it->base;
          break;
        } else {
          dropped.push_back(*it);
          it = entries_.erase(it);
        }
      }
    }
    for (const Entry& e : dropped) munmap(e.base, e.length);
    return base;
  }

  // Keeps a new mapping, in use. Returns false (the caller keeps it as its own) if it cannot.
  bool add(const std::pair<dev_t, ino_t>& id, std::byte* base, std::size_t length,
           const void* keeper) noexcept {
    std::lock_guard lock(mutex_);
    try {
      entries_.push_back({id, base, length, keeper, true, false});
    } catch (...) {
      return false;
    }
    return true;
  }

  // The Buffer that used the mapping at `base` is done with it.
  void give_back(std::byte* base) noexcept {
    std::vector<Entry> dropped;
    {
      std::lock_guard lock(mutex_);
      auto it = std::find_if(entries_.begin(), entries_.end(),
                             [base](const Entry& e) { return e.base == base; });
      if (it == entries_.end()) return;
      if (it->forgotten) {
        dropped.push_back(*it);
        entries_.erase(it);
      } else {
        it->in_use = false;
        const void* keeper = it->keeper;
        // Most recently used last; the keeper's oldest unused ones go beyond the limit.
        std::rotate(it, it + 1, entries_.end());
        forget_dropped_locked(dropped);
        std::size_t idle = 0;
        for (const Entry& e : entries_) idle += !e.in_use && e.keeper == keeper ? 1 : 0;
        for (auto e = entries_.begin(); idle > kKeptReceivedMappings && e != entries_.end();) {
          if (e->in_use || e->keeper != keeper) {
            ++e;
            continue;
          }
          dropped.push_back(*e);
          e = entries_.erase(e);
          --idle;
        }
      }
    }
    for (const Entry& e : dropped) munmap(e.base, e.length);
  }

  // `keeper` keeps nothing from now on.
  void forget(const void* keeper) noexcept {
    std::vector<Entry> dropped;
    {
      std::lock_guard lock(mutex_);
      for (auto e = entries_.begin(); e != entries_.end();) {
        if (e->keeper != keeper) {
          ++e;
        } else if (e->in_use) {
          e->forgotten = true;
          ++e;
        } else {
          dropped.push_back(*e);
          e = entries_.erase(e);
        }
      }
    }
    for (const Entry& e : dropped) munmap(e.base, e.length);
  }

  std::size_t size() noexcept {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  // Moves the unused entries whose sender dropped its segment to `dropped` (to be unmapped).
  void forget_dropped_locked(std::vector<Entry>& dropped) noexcept {
    for (auto e = entries_.begin(); e != entries_.end();) {
      if (!e->in_use && dropped_flag(e->base).load(std::memory_order_relaxed) != 0) {
        dropped.push_back(*e);
        e = entries_.erase(e);
      } else {
        ++e;
      }
    }
  }

  // In a fork child, with the mutex held by the prepare handler: the child keeps none of the
  // parent's keepers' mappings. No allocation (erase does not allocate), only unmapping
  // (async-signal-safe). One in use stays until its Buffer, copied into the child, is done.
  void forget_in_child() noexcept {
    for (auto e = entries_.begin(); e != entries_.end();) {
      if (e->in_use) {
        e->forgotten = true;
        ++e;
      } else {
        munmap(e->base, e->length);
        e = entries_.erase(e);
      }
    }
    mutex_.unlock();
  }

  std::mutex mutex_;
  std::vector<Entry> entries_;
};

// Set by keep_received_mappings: every segment this process receives is kept (keeper nullptr).
std::atomic<bool> g_keep_received{false};

[[maybe_unused]] const bool g_received_mappings_made = (ReceivedMappings::instance(), true);

}  // namespace

void keep_received_mappings() noexcept { g_keep_received.store(true, std::memory_order_release); }

void forget_received_mappings(const void* keeper) noexcept {
  ReceivedMappings::instance().forget(keeper);
}

std::size_t kept_received_mappings() noexcept { return ReceivedMappings::instance().size(); }

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      fd_(std::exchange(other.fd_, -1)),
      mapped_(std::exchange(other.mapped_, false)),
      writable_(std::exchange(other.writable_, true)),
      kept_(std::exchange(other.kept_, false)),
      descriptors_(std::exchange(other.descriptors_, {})) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    free_storage();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    fd_ = std::exchange(other.fd_, -1);
    mapped_ = std::exchange(other.mapped_, false);
    writable_ = std::exchange(other.writable_, true);
    kept_ = std::exchange(other.kept_, false);
    descriptors_ = std::exchange(other.descriptors_, {});
  }
  return *this;
}

Buffer::~Buffer() { free_storage(); }

void Buffer::free_storage() noexcept {
  if (mapped_) {
    std::byte* base = data_ - kControlBytes;
    if (writable_ && fd_ >= 0) {
      // The sender's: kept mapped for a later payload.
      SegmentPool::instance().give_back(Segment{fd_, base, capacity_});
      fd_ = -1;
    } else {
      // A receiver's (or a sender's whose descriptor was let go): done with the payload.
      if (!writable_) readers_of(base).fetch_sub(1, std::memory_order_release);
      if (kept_) {
        ReceivedMappings::instance().give_back(base);
      } else {
        munmap(base, kControlBytes + capacity_);
      }
    }
  } else {
    free_heap_block(data_, capacity_);
  }
  if (fd_ >= 0) close(fd_);
  drop_descriptors();
  data_ = nullptr;
  size_ = capacity_ = 0;
  fd_ = -1;
  mapped_ = false;
  kept_ = false;
}

void Buffer::drop_descriptors() noexcept {
  for (int fd : descriptors_) close(fd);
  descriptors_.clear();
}

void Buffer::release() noexcept {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int Buffer::share() const {
  const int fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw_errno("dup of a shared payload");
  readers_of(data_ - kControlBytes).fetch_add(1, std::memory_order_relaxed);
  return fd;
}

std::size_t Buffer::attach(int fd) {
  try {
    descriptors_.push_back(fd);
  } catch (...) {
    close(fd);
    throw;
  }
  return descriptors_.size() - 1;
}

std::size_t Buffer::attach_copy(int fd) {
  if (descriptors_.size() >= kMaxDescriptors) {
    throw SerializationError("a message may carry at most " + std::to_string(kMaxDescriptors) +
                             " shared arrays");
  }
  const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw_errno("dup of a shared array's descriptor");
  return attach(copy);
}

Buffer Buffer::map_shared(int fd, std::size_t size, const void* keeper) {
  Buffer b;
  b.fd_ = fd;  // owned from here on, closed with the buffer
  std::optional<std::pair<dev_t, ino_t>> id;
  // A kept mapping covers the whole segment as it was then, which may be more than this payload.
  std::size_t length = kControlBytes + size;
  if (keeper != nullptr || g_keep_received.load(std::memory_order_acquire)) {
    ReceivedMappings& kept = ReceivedMappings::instance();
    struct stat st {};
    if (fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) >= length) {
      id.emplace(st.st_dev, st.st_ino);
      length = static_cast<std::size_t>(st.st_size);
      if (std::byte* base = kept.take(*id, kControlBytes + size, keeper)) {
        b.mapped_ = true;
        b.writable_ = false;
        b.kept_ = true;
        b.data_ = base + kControlBytes;
        b.size_ = size;
        b.capacity_ = size;
        return b;
      }
    }
  }
  // Populated: every page of the payload mapped in one go instead of a fault per page while
  // reading. A mapping to keep covers the whole segment but populates only this payload's pages.
  void* p = mmap(nullptr, length, PROT_READ, MAP_SHARED | (id ? 0 : MAP_POPULATE), fd, 0);
  if (p == MAP_FAILED) throw_errno("mmap of a shared payload");
  if (id) madvise(p, kControlBytes + size, MADV_POPULATE_READ);  // only advice if unsupported
  // The payload stays read-only; the control page is written once, when the receiver is done.
  if (mprotect(p, kControlBytes, PROT_READ | PROT_WRITE) != 0) {
    const int e = errno;
    munmap(p, length);
    throw std::system_error(e, std::generic_category(), "mprotect of a shared payload");
  }
  b.mapped_ = true;
  b.writable_ = false;
  b.data_ = static_cast<std::byte*>(p) + kControlBytes;
  b.size_ = size;
  b.capacity_ = length - kControlBytes;  // what free_storage unmaps if the mapping is not kept
  if (id) {
    b.kept_ = ReceivedMappings::instance().add(*id, static_cast<std::byte*>(p), length, keeper);
  }
  return b;
}

void Buffer::grow(std::size_t needed) {
  if (!writable_) throw std::logic_error("cannot write to a received payload");
  std::size_t capacity = std::max<std::size_t>(needed, capacity_ * 2);
  if (capacity < 256) capacity = 256;
  if (!mapped_ && capacity <= kSharedThreshold) {
    std::byte* p = new_heap_block(capacity);
    if (size_ > 0) std::memcpy(p, data_, size_);
    free_heap_block(data_, capacity_);
    data_ = p;
    capacity_ = capacity;
    return;
  }
  // Large: a segment the other process can map, so the payload is written only once; a warm one
  // from the pool when there is one free, so it is written into pages that are already there.
  capacity = page_round(capacity);
  if (!mapped_) {
    Segment s;
    if (std::optional<Segment> idle = SegmentPool::instance().take(needed)) {
      s = *idle;
      if (s.capacity < needed) {
        try {
          grow_segment(s, capacity);
        } catch (...) {
          s.drop();
          throw;
        }
      }
    } else {
      s = new_segment(capacity);
    }
    if (size_ > 0) std::memcpy(s.base + kControlBytes, data_, size_);
    free_heap_block(data_, capacity_);
    data_ = s.base + kControlBytes;
    capacity_ = s.capacity;
    fd_ = s.fd;
    mapped_ = true;
  } else {
    Segment s{fd_, data_ - kControlBytes, capacity_};
    grow_segment(s, capacity);
    data_ = s.base + kControlBytes;
    capacity_ = s.capacity;
  }
}

// --- cereal adapters ------------------------------------------------------------------------

struct Writer::CerealSink : std::streambuf {
  explicit CerealSink(Buffer& b) : buffer(b), stream(this), archive(stream) {}
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    buffer.append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      const char ch = traits_type::to_char_type(c);
      buffer.append(&ch, 1);
    }
    return traits_type::not_eof(c);
  }
  Buffer& buffer;
  std::ostream stream;
  cereal::BinaryOutputArchive archive;
};

cereal::BinaryOutputArchive& Writer::cereal_archive() {
  if (cereal_ == nullptr) cereal_ = new CerealSink(buffer_);
  return cereal_->archive;
}

void Writer::destroy_cereal() noexcept { delete cereal_; }

void Writer::refuse_empty_elements() {
  throw SerializationError(
      "cannot send more than " + std::to_string(kEmptyElementBytes / kEmptyElementMinCharge) +
      " container elements that encode to nothing (such as std::monostate or a type with nothing "
      "to save), or more than " +
      std::to_string(kEmptyElementBytes >> 20) + " MiB of them, in one message");
}

CerealInput& Reader::cereal_archive() {
  if (cereal_ == nullptr) cereal_ = new CerealInput(*this);
  return *cereal_;
}

void Reader::destroy_cereal() noexcept { delete cereal_; }

void throw_corrupt(const char* what) {
  throw SerializationError(std::string("corrupt message: ") + what);
}

// --- exceptions -----------------------------------------------------------------------------

namespace {

template <class E>
std::exception_ptr rebuild_as(const std::string& what) {
  if constexpr (std::is_same_v<E, std::bad_alloc>) {
    return std::make_exception_ptr(std::bad_alloc());
  } else {
    return std::make_exception_ptr(E(what));
  }
}

// The types rebuilt as themselves, in one list: an exception's code on the wire is its index here
// plus one. 0 is "anything else" and kRemoteCode an error that already came from elsewhere; both
// come back as RemoteError. kRegisteredCode is a type the program registered itself (looked up
// only when a type is in none of these). New types go at the end, so that codes never change
// meaning.
struct Rebuildable {
  const std::type_info& type;
  std::exception_ptr (*rebuild)(const std::string& what);
};
const Rebuildable kRebuildable[] = {
    {typeid(std::logic_error), &rebuild_as<std::logic_error>},
    {typeid(std::invalid_argument), &rebuild_as<std::invalid_argument>},
    {typeid(std::domain_error), &rebuild_as<std::domain_error>},
    {typeid(std::length_error), &rebuild_as<std::length_error>},
    {typeid(std::out_of_range), &rebuild_as<std::out_of_range>},
    {typeid(std::runtime_error), &rebuild_as<std::runtime_error>},
    {typeid(std::range_error), &rebuild_as<std::range_error>},
    {typeid(std::overflow_error), &rebuild_as<std::overflow_error>},
    {typeid(std::underflow_error), &rebuild_as<std::underflow_error>},
    {typeid(std::bad_alloc), &rebuild_as<std::bad_alloc>},
    {typeid(Error), &rebuild_as<Error>},
    {typeid(CancelledError), &rebuild_as<CancelledError>},
    {typeid(TimeoutError), &rebuild_as<TimeoutError>},
    {typeid(InvalidStateError), &rebuild_as<InvalidStateError>},
    {typeid(BrokenExecutor), &rebuild_as<BrokenExecutor>},
    {typeid(BrokenThreadPool), &rebuild_as<BrokenThreadPool>},
    {typeid(BrokenProcessPool), &rebuild_as<BrokenProcessPool>},
    {typeid(ShutdownError), &rebuild_as<ShutdownError>},
    {typeid(SerializationError), &rebuild_as<SerializationError>},
};
constexpr std::size_t kRebuildableCount = std::size(kRebuildable);
constexpr std::uint8_t kOtherCode = 0;
constexpr std::uint8_t kRemoteCode = kRebuildableCount + 1;
// A type the program registered (exception_transport.hpp): its key and its data follow.
constexpr std::uint8_t kRegisteredCode = kRemoteCode + 1;

std::uint8_t code_of(const std::type_info& t) {
  for (std::size_t i = 0; i < kRebuildableCount; ++i) {
    if (kRebuildable[i].type == t) return static_cast<std::uint8_t>(i + 1);
  }
  return kOtherCode;
}

// What a registered exception that could not cross as itself says about it: its original what()
// stays first and whole.
std::string with_note(const std::string& what, const std::string& why) {
  return what + " [" + why + "]";
}

std::string describe_current_exception() {
  const std::exception_ptr e = std::current_exception();
  return exception_type_name(e) + ": " + exception_message(e);
}

// A registered type's data, rebuilt as that type. Anything that goes wrong, including the user's
// code throwing, gives the RemoteError the exception would have given without registration, with a
// note saying why: the failure it reports is never lost.
std::exception_ptr rebuild_registered(std::uint64_t key, const std::string& type,
                                      const std::string& what, const std::byte* data,
                                      std::size_t size) {
  const auto registered = find_exception_type(key);
  if (!registered) {
    return std::make_exception_ptr(RemoteError(
        type, with_note(what, "not rebuilt as itself: no type with its key is registered here")));
  }
  std::string why;
  try {
    Reader r(data, size);
    std::exception_ptr rebuilt = registered->rebuild(r, what);
    const std::string rebuilt_what = exception_message(rebuilt);
    if (r.remaining() != 0) {
      why = "not rebuilt as itself: its load read " + std::to_string(size - r.remaining()) +
            " of the " + std::to_string(size) + " bytes its save wrote";
    } else if (rebuilt_what != what) {
      why = "not rebuilt as itself: the rebuilt exception's what() is \"" + rebuilt_what + "\"";
    } else {
      return rebuilt;
    }
  } catch (...) {
    why = "not rebuilt as itself: rebuilding it threw " + describe_current_exception();
  }
  return std::make_exception_ptr(RemoteError(type, with_note(what, why)));
}

}  // namespace

void write_exception(Writer& w, const std::exception_ptr& error) {
  std::uint8_t code = kOtherCode;
  std::string type = exception_type_name(error);
  std::string what = exception_message(error);
  std::optional<RegisteredException> registered;
  try {
    std::rethrow_exception(error);
  } catch (const RemoteError& e) {
    // Passing on an error that already came from elsewhere keeps its original type name.
    code = kRemoteCode;
    type = e.type_name();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    if (t != nullptr) code = code_of(*t);
    if (t != nullptr && code == kOtherCode) registered = find_exception_type(*t);
  }
  // A registered type's data goes to a buffer of its own first: if the user's save throws, what
  // it wrote is dropped whole and the exception is sent as RemoteError with a note instead.
  Buffer data;
  if (registered) {
    try {
      Writer data_writer(data);
      registered->save(data_writer, error);
      code = kRegisteredCode;
    } catch (...) {
      what = with_note(what, "not sent as itself: saving it threw " + describe_current_exception());
    }
  }
  w.pod(code);
  codec::write(w, type);
  codec::write(w, what);
  if (code == kRegisteredCode) {
    w.pod(registered->key);
    w.size(data.size());
    w.bytes(data.data(), data.size());
  }
}

std::exception_ptr read_exception(Reader& r) {
  const auto code = r.pod<std::uint8_t>();
  std::string type;
  std::string what;
  codec::read(r, type);
  codec::read(r, what);
  if (code > kRegisteredCode) throw SerializationError("corrupt message: unknown exception kind");
  if (code == kRegisteredCode) {
    const auto key = r.pod<std::uint64_t>();
    const std::size_t size = r.size();
    return rebuild_registered(key, type, what, r.take(size), size);
  }
  if (code == kOtherCode || code == kRemoteCode) {
    return std::make_exception_ptr(RemoteError(type, what));
  }
  return kRebuildable[code - 1].rebuild(what);
}

}  // namespace concurrent::futures::detail::codec
