// Buffers (heap, then memfd), the cereal adapters, and the exception encoding of detail/codec.hpp
// (with the types a program registered, see exception_transport.hpp).
#include "concurrent/futures/detail/codec.hpp"

#include <cxxabi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <iterator>
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

}  // namespace

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      fd_(std::exchange(other.fd_, -1)),
      mapped_(std::exchange(other.mapped_, false)),
      writable_(std::exchange(other.writable_, true)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    free_storage();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    fd_ = std::exchange(other.fd_, -1);
    mapped_ = std::exchange(other.mapped_, false);
    writable_ = std::exchange(other.writable_, true);
  }
  return *this;
}

Buffer::~Buffer() { free_storage(); }

void Buffer::free_storage() noexcept {
  if (mapped_) {
    if (data_ != nullptr && capacity_ > 0) munmap(data_, capacity_);
  } else {
    ::operator delete(data_);
  }
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  size_ = capacity_ = 0;
  fd_ = -1;
  mapped_ = false;
}

void Buffer::release() noexcept {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Buffer Buffer::map_shared(int fd, std::size_t size) {
  Buffer b;
  b.fd_ = fd;  // owned from here on, closed with the buffer
  b.mapped_ = true;
  b.writable_ = false;
  if (size > 0) {
    // MAP_POPULATE: map every page in one go instead of taking a fault per page while reading.
    void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) throw_errno("mmap of a shared payload");
    b.data_ = static_cast<std::byte*>(p);
  }
  b.size_ = b.capacity_ = size;
  return b;
}

void Buffer::grow(std::size_t needed) {
  if (!writable_) throw std::logic_error("cannot write to a received payload");
  std::size_t capacity = std::max<std::size_t>(needed, capacity_ * 2);
  if (capacity < 256) capacity = 256;
  if (!mapped_ && capacity <= kSharedThreshold) {
    auto* p = static_cast<std::byte*>(::operator new(capacity));
    if (size_ > 0) std::memcpy(p, data_, size_);
    ::operator delete(data_);
    data_ = p;
    capacity_ = capacity;
    return;
  }
  // Large: shared memory the other process can map, so the payload is written only once.
  capacity = page_round(capacity);
  if (!mapped_) {
    const int fd = memfd_create("cfutures-payload", MFD_CLOEXEC);
    if (fd < 0) throw_errno("memfd_create");
    if (ftruncate(fd, static_cast<off_t>(capacity)) != 0) {
      const int e = errno;
      close(fd);
      throw std::system_error(e, std::generic_category(), "ftruncate of a shared payload");
    }
    void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      close(fd);
      throw std::system_error(e, std::generic_category(), "mmap of a shared payload");
    }
    if (size_ > 0) std::memcpy(p, data_, size_);
    ::operator delete(data_);
    data_ = static_cast<std::byte*>(p);
    fd_ = fd;
    mapped_ = true;
  } else {
    if (ftruncate(fd_, static_cast<off_t>(capacity)) != 0) throw_errno("ftruncate");
    void* p = mremap(data_, capacity_, capacity, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw_errno("mremap of a shared payload");
    data_ = static_cast<std::byte*>(p);
  }
  capacity_ = capacity;
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

Writer::~Writer() { delete cereal_; }

CerealInput& Reader::cereal_archive() {
  if (cereal_ == nullptr) cereal_ = new CerealInput(*this);
  return *cereal_;
}

Reader::~Reader() { delete cereal_; }

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
