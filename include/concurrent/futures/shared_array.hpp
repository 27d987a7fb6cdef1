/// @file
/// `cf::SharedArray<T>`: an array in shared memory that worker processes read and write in place.
///
/// Passing a `std::vector` to a ProcessPoolExecutor task copies it into the worker (and a result
/// back out). A SharedArray is not copied: its elements live in a memfd mapped by the parent,
/// and what travels with the task is the descriptor (SCM_RIGHTS) and the length, so passing one
/// costs the same few microseconds at 1 KiB or 1 GiB. The worker maps the same pages; what it
/// writes, the parent sees. joblib's automatic memmapping of large numpy arrays is the Python
/// analogue.
///
/// **A handle, like `std::shared_ptr`.** Copying a SharedArray copies the handle, not the
/// elements, and `const` on the handle does not make the elements const (as with `std::span`).
/// The mapping lives as long as the last handle in this process; the memory as long as the last
/// mapping or descriptor in any process. Each process that receives one maps it afresh (a result
/// that comes back is a second mapping of the same pages, at another address).
///
/// **Who may write when.** The memory is shared, and the library does not lock it. The rule that
/// keeps it race-free is the future's: a task's writes are visible to the parent once its future
/// is done (result(), wait() or a callback: completion is a synchronisation point, as it is for
/// a result), and the parent's writes made before submit() are visible to the task. While a task
/// that holds an array runs, the parent must not touch the elements the task writes, and two
/// tasks must not write the same elements (give each its own range). Anything finer needs the
/// user's own atomics (std::atomic_ref on the elements works across processes for lock-free
/// types).
///
/// **Failure.** A worker that dies holding an array loses nothing that was already written and
/// leaks nothing: its mappings and descriptors go with the process, and the parent's handle is
/// untouched. Creating one throws std::system_error when memfd_create, ftruncate or mmap fail
/// (out of memory, too many open files).
///
/// **Where it travels.** ProcessPoolExecutor (all start methods) passes it as argument, result,
/// map item or bound value; ThreadPoolExecutor shares it as any object. MPIPoolExecutor refuses
/// it (its workers may run on other hosts): the future fails with SerializationError. At most 32
/// arrays travel with one task (or one map chunk).
///
/// The pages are the kernel's shared memory (shmem): they are zero when created, are not swapped
/// out unless the system has swap for shmem, and come in 4 KiB pages unless the system's
/// `/sys/kernel/mm/transparent_hugepage/shmem_enabled` allows huge ones.
#pragma once

#include "concurrent/futures/detail/require_cxx20.hpp"
// Before every other include, in a block of its own that include sorting leaves in place.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <type_traits>

#include "concurrent/futures/detail/bytewise.hpp"
#include "concurrent/futures/detail/codec.hpp"
#include "concurrent/futures/errors.hpp"

namespace concurrent::futures {

namespace detail {

// One mapping (read-write, MAP_SHARED) of a memfd, and the memfd's descriptor, owned: unmapped and
// closed on destruction.
class SharedRegion {
 public:
  // A new memfd of `bytes` zero bytes (bytes > 0). Throws std::system_error.
  static std::shared_ptr<SharedRegion> create(std::size_t bytes);
  // Maps a received memfd (its descriptor is duplicated; `fd` stays the caller's). Throws
  // SerializationError when it holds fewer than `bytes` bytes, std::system_error else.
  static std::shared_ptr<SharedRegion> map(int fd, std::size_t bytes);

  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  ~SharedRegion();

  void* data() const noexcept { return data_; }
  int fd() const noexcept { return fd_; }

 private:
  SharedRegion(int fd, void* data, std::size_t bytes) noexcept
      : fd_(fd), data_(data), bytes_(bytes) {}
  int fd_;
  void* data_;
  std::size_t bytes_;
};

}  // namespace detail

/// An array of `T` in shared memory, handed to worker processes without a copy (see the file
/// comment for the ownership and synchronisation rules). `T` must be transportable bytewise
/// (transportable.hpp): arithmetic, enums, or aggregates of them, or declared with
/// cf::bytewise_transportable.
template <class T>
class SharedArray {
  static_assert(detail::bytewise::allowed_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T>,
                "cf::SharedArray<T>: T must be a non-const type that may be copied bytewise into "
                "another process (arithmetic, enum, or an aggregate of such; see "
                "transportable.hpp)");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using reference = T&;

  /// An empty array (no memory).
  SharedArray() noexcept = default;
  /// `n` elements whose bytes are all zero. Throws std::system_error when the memory cannot be
  /// had, std::length_error when n * sizeof(T) overflows.
  explicit SharedArray(std::size_t n) : size_(n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
      throw std::length_error("cf::SharedArray: too many elements");
    }
    if (n > 0) region_ = detail::SharedRegion::create(n * sizeof(T));
  }
  /// `n` copies of `value`.
  SharedArray(std::size_t n, const T& value) : SharedArray(n) {
    for (T& x : *this) x = value;
  }

  /// Elements, in place; never blocks, never throws (operator[] does not check bounds).
  ///@{
  T* data() const noexcept { return region_ ? static_cast<T*>(region_->data()) : nullptr; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + size_; }
  std::span<T> span() const noexcept { return {data(), size_}; }
  ///@}

  /// Whether two handles name the same mapping (a copy of a handle does; the array as received
  /// back from a worker is a mapping of its own).
  friend bool operator==(const SharedArray& a, const SharedArray& b) noexcept {
    return a.region_ == b.region_ && a.size_ == b.size_;
  }

 private:
  friend struct detail::codec::Codec<SharedArray<T>>;
  SharedArray(std::shared_ptr<detail::SharedRegion> region, std::size_t n) noexcept
      : region_(std::move(region)), size_(n) {}

  std::shared_ptr<detail::SharedRegion> region_;
  std::size_t size_ = 0;
};

namespace detail::codec {

// The length, then the memfd as a descriptor of the message (not its bytes).
template <class T>
struct Codec<SharedArray<T>> {
  static constexpr bool ok = true;
  static constexpr bool uses_cereal = false;
  static void write(Writer& w, const SharedArray<T>& a) {
    w.pod(static_cast<std::uint64_t>(a.size_));
    if (a.size_ > 0) w.descriptor(a.region_->fd());
  }
  static void read(Reader& r, SharedArray<T>& a) {
    const auto n = r.pod<std::uint64_t>();
    if (n == 0) {
      a = SharedArray<T>();
      return;
    }
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) {
      throw SerializationError("corrupt message: a shared array's length overflows");
    }
    const int fd = r.descriptor();
    a = SharedArray<T>(SharedRegion::map(fd, static_cast<std::size_t>(n) * sizeof(T)),
                       static_cast<std::size_t>(n));
  }
};

}  // namespace detail::codec

}  // namespace concurrent::futures
