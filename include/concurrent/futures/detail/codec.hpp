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
//    checks every other decoder here makes: a length larger than the bytes left, or a bool that
//    is neither 0 nor 1, is a SerializationError before anything is allocated for it;
//  * a trivially copyable type the library can see holds no address (bytewise.hpp), or that the
//    user declared with cf::bytewise_transportable: its bytes.
// Anything else is not Serializable; the process pool reports that at compile time.
//
// Buffers grow on the heap and move to a memfd (shared memory) once they pass
// kSharedThreshold, so a large argument or result is written once into memory the other
// process maps, instead of being pushed through a socket in small pieces.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <istream>
#include <map>
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

  // Adopts a received memfd of `size` bytes, mapped read-only.
  static Buffer map_shared(int fd, std::size_t size);

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
  void clear() noexcept { size_ = 0; }
  // Drops what was written after the first n bytes.
  void truncate(std::size_t n) noexcept {
    if (n < size_) size_ = n;
  }
  // Drops the memfd-side reference so a sender can close its copy once passed on.
  void release() noexcept;

 private:
  void grow(std::size_t needed);
  void free_storage() noexcept;

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  int fd_ = -1;          // memfd when shared, else -1
  bool mapped_ = false;  // data_ is an mmap (shared or received)
  bool writable_ = true;
};

class Writer {
 public:
  explicit Writer(Buffer& buffer) : buffer_(buffer) {}
  void bytes(const void* p, std::size_t n) { buffer_.append(p, n); }
  template <class T>
  void pod(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes(&value, sizeof(T));
  }
  void size(std::size_t n) { pod(static_cast<std::uint64_t>(n)); }
  Buffer& buffer() noexcept { return buffer_; }

  // A cereal archive over this writer, made on first use and kept for the value being written.
  cereal::BinaryOutputArchive& cereal_archive();
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

 private:
  struct CerealSink;
  Buffer& buffer_;
  CerealSink* cereal_ = nullptr;
};

class CerealInput;

class Reader {
 public:
  Reader(const std::byte* data, std::size_t size) : p_(data), end_(data + size) {}
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
    T value;
    bytes(&value, sizeof(T));
    return value;
  }
  std::size_t size() {
    const auto n = pod<std::uint64_t>();
    if (n > remaining()) throw SerializationError("corrupt message: a length exceeds the data");
    return static_cast<std::size_t>(n);
  }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

  // A cereal archive over this reader, made on first use and kept for the value being read.
  CerealInput& cereal_archive();
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

 private:
  void need(std::size_t n) const {
    if (n > remaining()) throw SerializationError("corrupt message: truncated data");
  }
  const std::byte* p_;
  const std::byte* end_;
  CerealInput* cereal_ = nullptr;
};

// Reads what cereal::BinaryOutputArchive wrote, straight from a Reader. cereal's own
// BinaryInputArchive trusts the lengths it reads: a std::vector or std::string inside a user's
// type is resized to whatever the bytes say before its elements are read, so a corrupt length
// asks for gigabytes. Here a length larger than the bytes left is refused, as Reader::size() does
// for the codec's own containers (every element takes at least one byte), and so is a bool byte
// other than 0 and 1. User types see it as their Archive type (serialize/load are templates).
class CerealInput : public cereal::InputArchive<CerealInput, cereal::AllowEmptyClassElision> {
 public:
  explicit CerealInput(Reader& reader)
      : cereal::InputArchive<CerealInput, cereal::AllowEmptyClassElision>(this), reader_(reader) {}
  void loadBinary(void* data, std::size_t size) { reader_.bytes(data, size); }
  std::size_t remaining() const noexcept { return reader_.remaining(); }

 private:
  Reader& reader_;
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
  if (static_cast<std::uint64_t>(t.size) > ar.remaining()) {
    throw SerializationError("corrupt message: a length exceeds the data");
  }
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
class Received {
 public:
  Received(const std::byte* data, std::size_t size) noexcept : data_(data), size_(size) {}
  explicit Received(Buffer owned) noexcept
      : owned_(std::move(owned)), data_(owned_.data()), size_(owned_.size()), owns_(true) {}
  Received(const Received&) = delete;
  Received& operator=(const Received&) = delete;

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  Reader reader() const { return Reader(data_, size_); }
  Buffer take() {
    Buffer taken;
    if (owns_) {
      owns_ = false;
      taken = std::move(owned_);
    } else {
      taken.append(data_, size_);
    }
    data_ = nullptr;
    size_ = 0;
    return taken;
  }

 private:
  Buffer owned_;
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
      for (const T& x : v) codec::write(w, x);
    }
  }
  static void read(Reader& r, std::vector<T, A>& v) {
    const std::size_t n = r.size();
    if constexpr (std::is_same_v<T, bool>) {
      v.resize(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = r.pod<std::uint8_t>() != 0;
    } else if constexpr (block_copyable_v<T>) {
      if (n > r.remaining() / std::max<std::size_t>(sizeof(T), 1)) {
        throw SerializationError("corrupt message: a vector's length exceeds the data");
      }
      v.resize(n);
      r.bytes(v.data(), n * sizeof(T));
    } else {
      v.clear();
      v.resize(n);
      for (T& x : v) codec::read(r, x);
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
    for (const auto& x : c) codec::write(w, x);
  }
  static void read(Reader& r, C& c) {
    c.clear();
    const std::size_t n = r.size();
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (requires { typename C::mapped_type; }) {
        std::pair<Key, typename C::mapped_type> kv;
        codec::read(r, kv);
        c.insert(std::move(kv));
      } else {
        Key k;
        codec::read(r, k);
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
