// Memory for submitted tasks: size classes of small blocks that a thread keeps for its next
// submits, instead of handing them back to malloc one by one.
//
// Why: `submit` makes one allocation per task (the future's state and the call together, about
// 150 bytes). A burst of a million submits whose futures are then dropped frees 150 MB at once;
// glibc's malloc gives the top of its heap back to the kernel (trim threshold 128 KiB), so the next
// burst takes a page fault per 4 KiB of it, and on a VM a page fault costs microseconds: in the
// thread pool's throughput benchmark that was more than half the time. Pools of task memory are
// what the anchors do too (oneTBB's scalable allocator, Asio's recycling allocator).
//
// How: blocks of kGranule to kMaxBytes bytes, in classes of kGranule. Each thread keeps up to two
// chains of kChain free blocks per class; a full chain beyond those goes to a shared depot, and a
// thread with none takes a chain from the depot before it asks malloc. A block freed in another
// thread than the one that made it travels through the depot.
//
// What is kept, and for how long: thread caches are small (at most 2 * kChain blocks per class)
// and go to the depot when their thread ends. The depot works in decay periods of a second: at
// its first use after a period ended, it gives back to malloc, in each size class, as many of its
// oldest chains as stayed unused throughout that period (the least it held of that class). So a
// steady stream of bursts reuses warm memory, and the memory of a burst that is not repeated is
// freed once the depot is used again a period or more later, or at once by trim() (which
// shutdown(wait) of a thread pool calls). Nothing runs on a timer: a program that stops
// submitting keeps what the depot holds until it submits again or a pool shuts down. Under
// AddressSanitizer the blocks go straight to malloc, so that a use after free is still caught.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace concurrent::futures::detail::task_memory {

inline constexpr std::size_t kGranule = 64;
inline constexpr std::size_t kClasses = 8;
inline constexpr std::size_t kMaxBytes = kGranule * kClasses;
inline constexpr std::size_t kChain = 128;

// A block of at least `bytes` (1 to kMaxBytes) bytes, aligned as operator new aligns. Throws
// std::bad_alloc.
void* allocate(std::size_t bytes);
// Gives back a block of allocate(bytes), with the same `bytes`.
void deallocate(void* block, std::size_t bytes) noexcept;

// Frees every block the depot holds (whichever threads put them there), and the calling
// thread's cache.
void trim() noexcept;

// Introspection, for tests.
struct Stats {
  std::size_t depot_bytes;  // free blocks in the depot
  std::size_t cache_bytes;  // free blocks in the calling thread's cache
};
Stats stats() noexcept;
bool pooled() noexcept;  // false when blocks go straight to malloc (AddressSanitizer)
// Ends the current decay period as if a second had passed: the depot's next use decays.
void end_decay_period() noexcept;

// A std::allocator for allocate_shared: single objects of a pooled size come from the pool.
template <class T>
struct Allocator {
  using value_type = T;

  Allocator() = default;
  template <class U>
  Allocator(const Allocator<U>& /*other*/) noexcept {}  // NOLINT(google-explicit-constructor)

  static constexpr bool kPooled =
      sizeof(T) <= kMaxBytes && alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;

  T* allocate(std::size_t n) {
    if (kPooled && n == 1) return static_cast<T*>(task_memory::allocate(sizeof(T)));
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (kPooled && n == 1) {
      task_memory::deallocate(p, sizeof(T));
    } else {
      std::allocator<T>().deallocate(p, n);
    }
  }

  template <class U>
  bool operator==(const Allocator<U>& /*other*/) const noexcept {
    return true;
  }
};

}  // namespace concurrent::futures::detail::task_memory
