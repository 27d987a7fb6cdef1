// What travels between a parent and its worker processes: the byte encoding of values and
// exceptions. Which values may travel at all is the rule of transportable.hpp (checked in
// bytewise.hpp for the types copied as bytes).
//
// Encoding (native byte order: both ends run the same program on the same machine):
//  * arithmetic and enum types: their bytes;
//  * the std types cfutures encodes (string, vector, array, pair, tuple, optional, variant, map,
//    unordered_map, set, unordered_set, chrono::duration): a length where needed, then each
//    element encoded by these same rules, so they nest freely. A vector of trivially copyable
//    elements is one block copy;
//  * a type with cereal serialize/save/load functions: cereal's binary archive (it wins over
//    the bytewise copy). It is read back by CerealInput, cereal's binary input archive with the
//    checks every other decoder here makes: a bool that is neither 0 nor 1, or a count the bytes
//    left cannot hold (kCerealCountsBeyondData), is a SerializationError before anything is
//    allocated for it;
//  * a trivially copyable type the library can see holds no address (bytewise.hpp), or that the
//    user declared with cf::bytewise_transportable: its bytes.
// Anything else is not Serializable; the process pool reports that at compile time.
//
// Buffers grow on the heap and move to a memfd (shared memory) once they pass
// kSharedThreshold, so a large argument or result is written once into memory the other
// process maps, instead of being pushed through a socket in small pieces. Such a memfd (a
// segment) starts with a control page whose one word counts the receivers that have it mapped;
// the sender keeps its segment mapped and reuses it for a later payload once that count is back
// to zero (codec.cpp, "segments"), so a large payload is copied into pages that are already
// there instead of fresh ones, each of which costs a page fault.
//
// A buffer may also carry descriptors (a cf::SharedArray's memfd, shared_array.hpp): the value
// holds their index, and the channel passes them with the message (SCM_RIGHTS).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <istream>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <ostream>
#include <set>
#include <streambuf>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <cereal/archives/binary.hpp>
// A user's cereal serialize() may write any std type cfutures lists as serializable: cereal needs
// its own support header for each, which the user should not have to know about.
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "concurrent/futures/detail/bytewise.hpp"
#include "concurrent/futures/errors.hpp"

namespace concurrent::futures::detail::codec {

// Payloads larger than this travel in shared memory.
inline constexpr std::size_t kSharedThreshold = std::size_t{256} << 10;
// The most descriptors one message may carry (SCM_RIGHTS allows 253 per message).
inline constexpr std::size_t kMaxDescriptors = 32;
// The control page at the start of every segment (shared payload memfd), before the payload.
inline constexpr std::size_t kSegmentControlBytes = 4096;
// Received vectors at least this large are asked for transparent huge pages before they are
// filled (see advise_huge_pages).
inline constexpr std::size_t kHugePageAdviceThreshold = std::size_t{4} << 20;
// Elements of a container can encode to no bytes at all (std::monostate, a cereal type with
// nothing to save), so the bytes after a container's count cannot bound what a reader allocates
// for it. The elements of the codec's containers that encode to nothing are charged to an
// allowance of this many bytes per message (what one Writer writes, what one Reader reads), each
// its sizeof but at least kEmptyElementMinCharge: at most 16 MiB of a receiver's memory, and at
// most 65,536 elements to build. A writer refuses more (Writer::element_written); a reader
// refuses a count of more elements than the bytes left plus what remains of the allowance would
// hold (Reader::count), and charges each element that took no bytes (Reader::element_read).
inline constexpr std::size_t kEmptyElementBytes = std::size_t{16} << 20;
inline constexpr std::size_t kEmptyElementMinCharge = 256;
template <class T>
inline constexpr std::size_t empty_element_charge_v = std::max(sizeof(T), kEmptyElementMinCharge);
// Inside a cereal type, cereal reads the containers' elements and their size is not known here.
// There the counts of a message may add up to at most the bytes that follow the first of them
// plus this many (CerealInput::check_count). Data that takes bytes always fits: each counted
// element that takes bytes has at least one of its own, not shared with any element it holds.
inline constexpr std::size_t kCerealCountsBeyondData = std::size_t{1} << 16;

// Asks the kernel for transparent huge pages on the 2 MiB-aligned interior of [p, p + n), memory
// that was just allocated and not yet touched: filling it then takes one fault per 2 MiB instead
// of one per 4 KiB. Only advice: where THP is off ("never") nothing changes.
void advise_huge_pages(void* p, std::size_t n) noexcept;

// Unmaps and closes the idle segments this process keeps for later payloads (see Buffer); they
// are made afresh when needed. For tests that count descriptors and mappings.
void release_idle_segments() noexcept;

// Whether buffers of 16 KiB up to kSharedThreshold keep their heap storage for the next buffer of
// about their size when they are done (at most 8 blocks per process, never given back): false
// under AddressSanitizer. For tests.
bool keeps_spare_blocks() noexcept;

// Kept received mappings. A receiver that keeps the mappings of the segments it was sent maps a
// segment sent again through the mapping it has, instead of mapping it afresh. A sender reuses its
// warm segments, so the payload is then read through pages already in the receiver's page tables:
// on a VM the first read of each page of a fresh mapping costs a fault in the hypervisor (a 64 MiB
// copy out of a fresh mapping took 35 ms here, out of a kept one 4 ms). A kept mapping holds its
// segment's memory after the sender dropped it, until it is replaced or forgotten. Each keeper
// keeps at most kKeptReceivedMappings not in use: as many as a sender keeps idle segments, so
// that a sender cycling through them always finds them mapped.
inline constexpr std::size_t kKeptReceivedMappings = 4;
// From now on, this process keeps the mappings of every segment it receives (a worker process:
// its sender is the parent, for the worker's whole life).
void keep_received_mappings() noexcept;
// Unmaps the mappings kept for `keeper` (see Buffer::map_shared), those in use when their Buffer
// is done. A keeper calls it when its sender is gone or no longer its own (a channel when it
// closes), so that no mapping of a dead process's segment outlives it.
void forget_received_mappings(const void* keeper) noexcept;
// The received mappings this process keeps now (in use or not), for tests.
std::size_t kept_received_mappings() noexcept;

// Growable bytes: on the heap while small, in a memfd mapping once large. Move-only; unmaps
// and closes what it owns.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  // Adopts a received segment whose payload is `size` bytes, mapped read-only. Unmapping it
  // (destruction) tells the sender this receiver is done with it. With a `keeper`, or in a
  // process that keeps every received mapping, the mapping is kept for the next payload in the
  // same segment (see kKeptReceivedMappings) until forget_received_mappings(keeper).
  static Buffer map_shared(int fd, std::size_t size, const void* keeper = nullptr);

  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool shared() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }

  void append(const void* bytes, std::size_t n) {
    if (size_ + n > capacity_) grow(size_ + n);
    if (n > 0) std::memcpy(data_ + size_, bytes, n);
    size_ += n;
  }
  // Adds n bytes to be filled in place (a receive straight into the buffer); returns where.
  std::byte* extend(std::size_t n) {
    if (size_ + n > capacity_) grow(size_ + n);
    std::byte* at = data_ + size_;
    size_ += n;
    return at;
  }
  // Drops what was written, the descriptors with it.
  void clear() noexcept {
    size_ = 0;
    if (!descriptors_.empty()) drop_descriptors();
  }
  // Drops what was written after the first n bytes.
  void truncate(std::size_t n) noexcept {
    if (n < size_) size_ = n;
  }
  // Drops the memfd-side reference so a sender can close its copy once passed on.
  void release() noexcept;
  // Sender: a new descriptor of the shared payload for one more receiver, counted in the
  // segment's control word until that receiver unmaps it. The caller owns (and passes on) it.
  int share() const;

  // Descriptors that travel with the bytes, owned by the buffer (closed with it). attach takes
  // `fd` (as received) and returns its index in the message; attach_copy, for a value being
  // written, duplicates it first and throws SerializationError past kMaxDescriptors.
  std::size_t attach(int fd);
  std::size_t attach_copy(int fd);
  const std::vector<int>& descriptors() const noexcept { return descriptors_; }
  // Moves the descriptors out (a receiver handing them to another holder).
  std::vector<int> take_descriptors() noexcept { return std::exchange(descriptors_, {}); }

 private:
  void grow(std::size_t needed);
  void free_storage() noexcept;
  void drop_descriptors() noexcept;

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  int fd_ = -1;          // memfd when shared, else -1
  bool mapped_ = false;  // data_ is in a segment's mapping (sent or received)
  bool writable_ = true;
  bool kept_ = false;  // received through a mapping that is kept (see map_shared)
  std::vector<int> descriptors_;
};

class Writer {
 public:
  explicit Writer(Buffer& buffer) : buffer_(buffer) {}
  void bytes(const void* p, std::size_t n) { buffer_.append(p, n); }
  // A copy of `fd` travels with the message; the value records its index.
  void descriptor(int fd) { size(buffer_.attach_copy(fd)); }
  template <class T>
  void pod(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes(&value, sizeof(T));
  }
  void size(std::size_t n) { pod(static_cast<std::uint64_t>(n)); }
  // After one element (a T) of a container was written from `start` (the buffer's size before
  // it): counts it if it took no bytes, and refuses the message past kEmptyElementBytes of them.
  template <class T>
  void element_written(std::size_t start) {
    if (buffer_.size() != start) return;
    empty_bytes_ += empty_element_charge_v<T>;
    if (empty_bytes_ > kEmptyElementBytes) refuse_empty_elements();
  }
  Buffer& buffer() noexcept { return buffer_; }

  // A cereal archive over this writer, made on first use and kept for the value being written.
  cereal::BinaryOutputArchive& cereal_archive();
  // Inline when no cereal archive was made: a writer per value must cost next to nothing.
  ~Writer() {
    if (cereal_ != nullptr) destroy_cereal();
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

 private:
  struct CerealSink;
  void destroy_cereal() noexcept;
  [[noreturn]] static void refuse_empty_elements();
  Buffer& buffer_;
  CerealSink* cereal_ = nullptr;
  std::size_t empty_bytes_ = 0;  // see kEmptyElementBytes
};

class CerealInput;

// Throws SerializationError("corrupt message: <what>"). Out of line, so that the checks of a
// reader's hot paths stay small enough to inline.
[[noreturn]] void throw_corrupt(const char* what);

class Reader {
 public:
  // `descriptors`: those that came with the message (a value's descriptor() reads an index into
  // them); they must outlive the reader.
  Reader(const std::byte* data, std::size_t size,
         const std::vector<int>* descriptors = nullptr) noexcept
      : p_(data), end_(data + size), descriptors_(descriptors) {}
  // The descriptor whose index comes next, still owned by the message (dup it to keep it).
  int descriptor() {
    const auto index = pod<std::uint64_t>();
    if (descriptors_ == nullptr || index >= descriptors_->size()) {
      throw_corrupt("a descriptor did not arrive with it");
    }
    return (*descriptors_)[static_cast<std::size_t>(index)];
  }
  const std::vector<int>* descriptors() const noexcept { return descriptors_; }
  void bytes(void* out, std::size_t n) {
    need(n);
    if (n > 0) std::memcpy(out, p_, n);
    p_ += n;
  }
  const std::byte* take(std::size_t n) {
    need(n);
    const std::byte* p = p_;
    p_ += n;
    return p;
  }
  template <class T>
  T pod() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T value;
    std::memcpy(&value, p_, sizeof(T));  // a constant size: a load, not a call
    p_ += sizeof(T);
    return value;
  }
  // A length of bytes or of elements that take at least one byte each.
  std::size_t size() {
    const auto n = pod<std::uint64_t>();
    if (n > remaining()) throw_corrupt("a length exceeds the data");
    return static_cast<std::size_t>(n);
  }
  // A count of T elements read one by one, which may take no bytes (see kEmptyElementBytes).
  template <class T>
  std::size_t count() {
    const auto n = pod<std::uint64_t>();
    if (n > remaining() + empty_allowance_ / empty_element_charge_v<T>) {
      throw_corrupt("a count exceeds the data");
    }
    return static_cast<std::size_t>(n);
  }
  // After one element (a T) of a container was read, with `remaining_before` bytes left before
  // it: charges it to the allowance if it took no bytes.
  template <class T>
  void element_read(std::size_t remaining_before) {
    if (remaining() != remaining_before) return;
    if (empty_allowance_ < empty_element_charge_v<T>) {
      throw_corrupt("too many elements that encode to nothing");
    }
    empty_allowance_ -= empty_element_charge_v<T>;
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

  // A cereal archive over this reader, made on first use and kept for the value being read.
  CerealInput& cereal_archive();
  // Inline when no cereal archive was made: a map's iterator makes a reader per item.
  ~Reader() {
    if (cereal_ != nullptr) destroy_cereal();
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

 private:
  void need(std::size_t n) const {
    if (n > remaining()) throw_corrupt("truncated data");
  }
  void destroy_cereal() noexcept;
  const std::byte* p_;
  const std::byte* end_;
  const std::vector<int>* descriptors_;
  CerealInput* cereal_ = nullptr;
  std::size_t empty_allowance_ = kEmptyElementBytes;  // see kEmptyElementBytes
};

// Reads what cereal::BinaryOutputArchive wrote, straight from a Reader. cereal's own
// BinaryInputArchive trusts the lengths it reads: a std::vector or std::string inside a user's
// type is resized to whatever the bytes say before its elements are read, so a corrupt length
// asks for gigabytes, and nested ones ask for as many elements per count as the bytes left allow.
// Here the counts of a message add up to at most its bytes plus kCerealCountsBeyondData, and a
// bool byte other than 0 and 1 is refused. User types see it as their Archive type
// (serialize/load are templates).
class CerealInput : public cereal::InputArchive<CerealInput, cereal::AllowEmptyClassElision> {
 public:
  explicit CerealInput(Reader& reader)
      : cereal::InputArchive<CerealInput, cereal::AllowEmptyClassElision>(this),
        reader_(reader),
        count_allowance_(reader.remaining() + kCerealCountsBeyondData) {}
  void loadBinary(void* data, std::size_t size) { reader_.bytes(data, size); }
  // A count cereal read, before anything is allocated for it: charged to the allowance.
  void check_count(std::uint64_t n) {
    if (n > count_allowance_) throw_corrupt("a count exceeds the data");
    count_allowance_ -= static_cast<std::size_t>(n);
  }

 private:
  Reader& reader_;
  std::size_t count_allowance_;  // see kCerealCountsBeyondData
};

// cereal's binary serialization functions (cereal/archives/binary.hpp), for CerealInput.
template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(CerealInput& ar, T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t byte = 0;
    ar.loadBinary(&byte, 1);
    if (byte > 1) throw SerializationError("corrupt message: a bool is neither 0 nor 1");
    t = byte != 0;
  } else {
    ar.loadBinary(std::addressof(t), sizeof(t));
  }
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(CerealInput& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(CerealInput& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  ar.check_count(static_cast<std::uint64_t>(t.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(CerealInput& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

}  // namespace concurrent::futures::detail::codec

// What CEREAL_SETUP_ARCHIVE_TRAITS does, for the input side only (cereal pairs
// BinaryOutputArchive with its own input archive): types with load_minimal find their save_minimal.
template <>
struct cereal::traits::detail::get_output_from_input<
    concurrent::futures::detail::codec::CerealInput> {
  using type = cereal::BinaryOutputArchive;
};

namespace concurrent::futures::detail::codec {

// A payload as a transport received it: a view of bytes that stays valid while the receiver
// handles it, or a buffer it was given whole (a shared-memory mapping). take() makes the bytes the
// receiver's own, for decoding later: a buffer moves (a mapping stays mapped, nothing is copied),
// a view is copied.
// Descriptors that came with a payload are in the buffer (owned) or given with the view (taken
// over: closed with this object unless taken).
class Received {
 public:
  Received(const std::byte* data, std::size_t size) noexcept : data_(data), size_(size) {}
  Received(const std::byte* data, std::size_t size, std::vector<int> descriptors)
      : data_(data), size_(size) {
    for (int fd : descriptors) owned_.attach(fd);
  }
  explicit Received(Buffer owned) noexcept
      : owned_(std::move(owned)), data_(owned_.data()), size_(owned_.size()), owns_(true) {}
  Received(const Received&) = delete;
  Received& operator=(const Received&) = delete;

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  const std::vector<int>& descriptors() const noexcept { return owned_.descriptors(); }
  Reader reader() const { return Reader(data_, size_, &owned_.descriptors()); }
  Buffer take() {
    Buffer taken;
    if (owns_) {
      owns_ = false;
      taken = std::move(owned_);
    } else {
      taken.append(data_, size_);
      for (int fd : owned_.take_descriptors()) taken.attach(fd);
    }
    data_ = nullptr;
    size_ = 0;
    return taken;
  }

 private:
  Buffer owned_;  // the payload, or (a view) only the descriptors that came with it
  const std::byte* data_;
  std::size_t size_;
  bool owns_ = false;
};

// --- which types are serializable -----------------------------------------------------------

template <class T>
struct Codec;  // Codec<T>::ok, ::write(Writer&, const T&), ::read(Reader&, T&)

template <class T>
inline constexpr bool serializable_v = Codec<std::remove_cv_t<T>>::ok;

// Types that hold an address are excluded first: cereal's traits accept raw pointers, then
// refuse them with a static_assert, and an address means nothing in another process anyway.
template <class T>
concept CerealType =
    !std::is_pointer_v<T> && !std::is_member_pointer_v<T> && !bytewise::is_string_view_v<T> &&
    !bytewise::is_span_v<T> && !bytewise::is_reference_wrapper_v<T> &&
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
    cereal::traits::is_input_serializable<T, CerealInput>::value;

template <class T>
void write(Writer& w, const T& value) {
  Codec<std::remove_cv_t<T>>::write(w, value);
}
template <class T>
void read(Reader& r, T& value) {
  Codec<std::remove_cv_t<T>>::read(r, value);
}
// One element of a container written or read one by one, charged to the message's allowance when
// it takes no bytes (kEmptyElementBytes). A map's reader builds a pair with a non-const key where
// its writer wrote the value_type: the same size, so the same charge.
template <class T>
void write_element(Writer& w, const T& x) {
  const std::size_t start = w.buffer().size();
  write(w, x);
  w.element_written<T>(start);
}
template <class T>
void read_element(Reader& r, T& x) {
  const std::size_t before = r.remaining();
  read(r, x);
  r.element_read<T>(before);
}

// Arithmetic, enums, cereal types and the types that may be copied bytewise (bytewise.hpp) and
// rebuilt (default-constructible).
template <class T>
struct Codec {
  // Written by the user's cereal functions rather than bytewise.
  static constexpr bool uses_cereal =
      CerealType<T> && !std::is_arithmetic_v<T> && !std::is_enum_v<T>;
  static constexpr bool ok =
      uses_cereal || (bytewise::allowed_v<T> && std::is_default_constructible_v<T>);
  static void write(Writer& w, const T& value) {
    if constexpr (uses_cereal) {
      w.cereal_archive()(value);
    } else {
      w.pod(value);
    }
  }
  static void read(Reader& r, T& value) {
    if constexpr (uses_cereal) {
      try {
        r.cereal_archive()(value);
      } catch (const cereal::Exception& e) {
        throw SerializationError(std::string("corrupt message: ") + e.what());
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      // Any other byte would be a bool with no valid value.
      const auto byte = r.pod<std::uint8_t>();
      if (byte > 1) throw SerializationError("corrupt message: a bool is neither 0 nor 1");
      value = byte != 0;
    } else {
      r.bytes(&value, sizeof(T));
    }
  }
};

template <>
struct Codec<void> {
  static constexpr bool ok = false;
  static constexpr bool uses_cereal = false;
};

// Whether a user's cereal functions write T or any value inside it (they win over a bytewise
// copy, so such a T is never copied as a block, even inside a trivially copyable std::array or
// std::optional). Every Codec says so for its own type.
template <class T>
inline constexpr bool uses_cereal_v = Codec<std::remove_cv_t<T>>::uses_cereal;

// Elements copied as one block: trivially copyable and not customised through cereal.
template <class T>
inline constexpr bool block_copyable_v =
    std::is_trivially_copyable_v<T>&& Codec<T>::ok && !uses_cereal_v<T>;

template <>
struct Codec<std::string> {
  static constexpr bool ok = true;
  static constexpr bool uses_cereal = false;
  static void write(Writer& w, const std::string& s) {
    w.size(s.size());
    w.bytes(s.data(), s.size());
  }
  static void read(Reader& r, std::string& s) {
    const std::size_t n = r.size();
    s.assign(reinterpret_cast<const char*>(r.take(n)), n);
  }
};

template <class T, class A>
struct Codec<std::vector<T, A>> {
  static constexpr bool ok = serializable_v<T>;
  static constexpr bool uses_cereal = uses_cereal_v<T>;
  static void write(Writer& w, const std::vector<T, A>& v) {
    w.size(v.size());
    if constexpr (std::is_same_v<T, bool>) {
      for (bool b : v) w.pod(static_cast<std::uint8_t>(b));
    } else if constexpr (block_copyable_v<T>) {
      w.bytes(v.data(), v.size() * sizeof(T));
    } else {
      for (const T& x : v) write_element(w, x);
    }
  }
  static void read(Reader& r, std::vector<T, A>& v) {
    const std::size_t n =
        (block_copyable_v<T> || std::is_same_v<T, bool>) ? r.size() : r.count<T>();
    if constexpr (std::is_same_v<T, bool>) {
      v.resize(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = r.pod<std::uint8_t>() != 0;
    } else if constexpr (block_copyable_v<T>) {
      if (n > r.remaining() / std::max<std::size_t>(sizeof(T), 1)) {
        throw SerializationError("corrupt message: a vector's length exceeds the data");
      }
      // Filled straight from the message, without the zero-fill of resize: fresh pages are
      // written once. A large one is asked for huge pages first (4 KiB faults dominate otherwise).
      const std::byte* bytes = r.take(n * sizeof(T));
      if (reinterpret_cast<std::uintptr_t>(bytes) % alignof(T) != 0) {
        // Elements packed after a 1-byte field are not aligned for T. A short vector (a map's
        // results are often a few numbers each) is filled element by element, each a load of
        // constant size: no zero-fill, and no call but the allocation. A long one is filled by
        // resize and overwritten.
        constexpr std::size_t kShortBytes = 256;
        if (n * sizeof(T) <= kShortBytes) {
          v.clear();
          v.reserve(n);
          for (std::size_t i = 0; i < n; ++i) {
            T x;
            std::memcpy(&x, bytes + i * sizeof(T), sizeof(T));
            v.push_back(x);
          }
          return;
        }
        v.resize(n);
        std::memcpy(v.data(), bytes, n * sizeof(T));
        return;
      }
      const auto* from = reinterpret_cast<const T*>(bytes);
      v.clear();
      if constexpr (std::is_same_v<A, std::allocator<T>>) {
        if (n * sizeof(T) >= kHugePageAdviceThreshold && v.capacity() < n) {
          std::vector<T, A>().swap(v);
          v.reserve(n);
          advise_huge_pages(v.data(), n * sizeof(T));
        }
      }
      v.insert(v.end(), from, from + n);
    } else {
      v.clear();
      v.resize(n);
      for (T& x : v) read_element(r, x);
    }
  }
};

template <class T, std::size_t N>
struct Codec<std::array<T, N>> {
  static constexpr bool ok = serializable_v<T>;
  static constexpr bool uses_cereal = uses_cereal_v<T>;
  static void write(Writer& w, const std::array<T, N>& a) {
    for (const T& x : a) codec::write(w, x);
  }
  static void read(Reader& r, std::array<T, N>& a) {
    for (T& x : a) codec::read(r, x);
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static constexpr bool ok = serializable_v<A> && serializable_v<B>;
  static constexpr bool uses_cereal = uses_cereal_v<A> || uses_cereal_v<B>;
  static void write(Writer& w, const std::pair<A, B>& p) {
    codec::write(w, p.first);
    codec::write(w, p.second);
  }
  static void read(Reader& r, std::pair<A, B>& p) {
    codec::read(r, const_cast<std::remove_const_t<A>&>(p.first));
    codec::read(r, p.second);
  }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>> {
  static constexpr bool ok = (serializable_v<Ts> && ...);
  static constexpr bool uses_cereal = (uses_cereal_v<Ts> || ...);
  static void write(Writer& w, const std::tuple<Ts...>& t) {
    std::apply([&](const auto&... x) { (codec::write(w, x), ...); }, t);
  }
  static void read(Reader& r, std::tuple<Ts...>& t) {
    std::apply([&](auto&... x) { (codec::read(r, x), ...); }, t);
  }
};

template <class T>
struct Codec<std::optional<T>> {
  static constexpr bool ok = serializable_v<T>;
  static constexpr bool uses_cereal = uses_cereal_v<T>;
  static void write(Writer& w, const std::optional<T>& o) {
    w.pod(static_cast<std::uint8_t>(o.has_value()));
    if (o) codec::write(w, *o);
  }
  static void read(Reader& r, std::optional<T>& o) {
    if (r.pod<std::uint8_t>() != 0) {
      codec::read(r, o.emplace());
    } else {
      o.reset();
    }
  }
};

template <class... Ts>
struct Codec<std::variant<Ts...>> {
  static constexpr bool ok = (serializable_v<Ts> && ...);
  static constexpr bool uses_cereal = (uses_cereal_v<Ts> || ...);
  static void write(Writer& w, const std::variant<Ts...>& v) {
    w.pod(static_cast<std::uint32_t>(v.index()));
    std::visit([&](const auto& x) { codec::write(w, x); }, v);
  }
  static void read(Reader& r, std::variant<Ts...>& v) {
    const auto index = r.pod<std::uint32_t>();
    if (index >= sizeof...(Ts)) throw SerializationError("corrupt message: bad variant index");
    read_alternative(r, v, index, std::index_sequence_for<Ts...>{});
  }

 private:
  template <std::size_t... I>
  static void read_alternative(Reader& r, std::variant<Ts...>& v, std::size_t index,
                               std::index_sequence<I...>) {
    ((I == index ? (codec::read(r, v.template emplace<I>()), void()) : void()), ...);
  }
};

// map, unordered_map, set, unordered_set: a count, then the elements.
template <class C>
struct AssociativeCodec {
  using Key = std::remove_const_t<typename C::key_type>;
  static constexpr bool ok = serializable_v<typename C::value_type>;
  static constexpr bool uses_cereal = uses_cereal_v<typename C::value_type>;
  static void write(Writer& w, const C& c) {
    w.size(c.size());
    for (const auto& x : c) write_element(w, x);
  }
  static void read(Reader& r, C& c) {
    c.clear();
    const std::size_t n = r.count<typename C::value_type>();
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (requires { typename C::mapped_type; }) {
        std::pair<Key, typename C::mapped_type> kv;
        read_element(r, kv);
        c.insert(std::move(kv));
      } else {
        Key k;
        read_element(r, k);
        c.insert(std::move(k));
      }
    }
  }
};

template <class K, class V, class Cmp, class A>
struct Codec<std::map<K, V, Cmp, A>> : AssociativeCodec<std::map<K, V, Cmp, A>> {};
template <class K, class V, class H, class E, class A>
struct Codec<std::unordered_map<K, V, H, E, A>>
    : AssociativeCodec<std::unordered_map<K, V, H, E, A>> {};
template <class K, class Cmp, class A>
struct Codec<std::set<K, Cmp, A>> : AssociativeCodec<std::set<K, Cmp, A>> {};
template <class K, class H, class E, class A>
struct Codec<std::unordered_set<K, H, E, A>> : AssociativeCodec<std::unordered_set<K, H, E, A>> {};

template <class Rep, class Period>
struct Codec<std::chrono::duration<Rep, Period>> {
  static constexpr bool ok = std::is_arithmetic_v<Rep>;
  static constexpr bool uses_cereal = false;
  static void write(Writer& w, const std::chrono::duration<Rep, Period>& d) { w.pod(d.count()); }
  static void read(Reader& r, std::chrono::duration<Rep, Period>& d) {
    d = std::chrono::duration<Rep, Period>(r.pod<Rep>());
  }
};

// --- exceptions -----------------------------------------------------------------------------

// Encodes the exception in `error`: its type (when it is one that can be rebuilt), demangled
// type name and what().
void write_exception(Writer& w, const std::exception_ptr& error);
// Rebuilds it: the same type for <stdexcept>, std::bad_alloc, cf's errors and the types registered
// with cf::register_exception (exception_transport.hpp); RemoteError else.
std::exception_ptr read_exception(Reader& r);

}  // namespace concurrent::futures::detail::codec
