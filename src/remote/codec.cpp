// Buffers (heap, then memfd), the cereal adapters, and the exception encoding of detail/codec.hpp.
#include "concurrent/futures/detail/codec.hpp"

#include <cxxabi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <new>
#include <stdexcept>
#include <system_error>
#include <typeinfo>

#include "concurrent/futures/detail/state.hpp"
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

struct Reader::CerealSource : std::streambuf {
  explicit CerealSource(Reader& r) : reader(r), stream(this), archive(stream) {}
  std::streamsize xsgetn(char* s, std::streamsize n) override {
    const auto want = static_cast<std::size_t>(n);
    const std::size_t got = std::min(want, reader.remaining());
    reader.bytes(s, got);
    return static_cast<std::streamsize>(got);
  }
  int_type underflow() override { return traits_type::eof(); }
  Reader& reader;
  std::istream stream;
  cereal::BinaryInputArchive archive;
};

cereal::BinaryInputArchive& Reader::cereal_archive() {
  if (cereal_ == nullptr) cereal_ = new CerealSource(*this);
  return cereal_->archive;
}

Reader::~Reader() { delete cereal_; }

// --- exceptions -----------------------------------------------------------------------------

namespace {

// The types rebuilt as themselves. The code is the index in this list; 0 means "anything else".
enum class ErrorKind : std::uint8_t {
  other = 0,
  logic_error,
  invalid_argument,
  domain_error,
  length_error,
  out_of_range,
  runtime_error,
  range_error,
  overflow_error,
  underflow_error,
  bad_alloc,
  cf_error,
  cancelled,
  timeout,
  invalid_state,
  broken_executor,
  broken_thread_pool,
  broken_process_pool,
  shutdown,
  serialization,
  remote,
};

ErrorKind kind_of(const std::type_info& t) {
  struct Entry {
    const std::type_info& type;
    ErrorKind kind;
  };
  static const Entry table[] = {
      {typeid(std::logic_error), ErrorKind::logic_error},
      {typeid(std::invalid_argument), ErrorKind::invalid_argument},
      {typeid(std::domain_error), ErrorKind::domain_error},
      {typeid(std::length_error), ErrorKind::length_error},
      {typeid(std::out_of_range), ErrorKind::out_of_range},
      {typeid(std::runtime_error), ErrorKind::runtime_error},
      {typeid(std::range_error), ErrorKind::range_error},
      {typeid(std::overflow_error), ErrorKind::overflow_error},
      {typeid(std::underflow_error), ErrorKind::underflow_error},
      {typeid(std::bad_alloc), ErrorKind::bad_alloc},
      {typeid(Error), ErrorKind::cf_error},
      {typeid(CancelledError), ErrorKind::cancelled},
      {typeid(TimeoutError), ErrorKind::timeout},
      {typeid(InvalidStateError), ErrorKind::invalid_state},
      {typeid(BrokenExecutor), ErrorKind::broken_executor},
      {typeid(BrokenThreadPool), ErrorKind::broken_thread_pool},
      {typeid(BrokenProcessPool), ErrorKind::broken_process_pool},
      {typeid(ShutdownError), ErrorKind::shutdown},
      {typeid(SerializationError), ErrorKind::serialization},
      {typeid(RemoteError), ErrorKind::remote},
  };
  for (const Entry& e : table) {
    if (e.type == t) return e.kind;
  }
  return ErrorKind::other;
}

std::exception_ptr rebuild(ErrorKind kind, const std::string& type, const std::string& what) {
  switch (kind) {
    case ErrorKind::logic_error:
      return std::make_exception_ptr(std::logic_error(what));
    case ErrorKind::invalid_argument:
      return std::make_exception_ptr(std::invalid_argument(what));
    case ErrorKind::domain_error:
      return std::make_exception_ptr(std::domain_error(what));
    case ErrorKind::length_error:
      return std::make_exception_ptr(std::length_error(what));
    case ErrorKind::out_of_range:
      return std::make_exception_ptr(std::out_of_range(what));
    case ErrorKind::runtime_error:
      return std::make_exception_ptr(std::runtime_error(what));
    case ErrorKind::range_error:
      return std::make_exception_ptr(std::range_error(what));
    case ErrorKind::overflow_error:
      return std::make_exception_ptr(std::overflow_error(what));
    case ErrorKind::underflow_error:
      return std::make_exception_ptr(std::underflow_error(what));
    case ErrorKind::bad_alloc:
      return std::make_exception_ptr(std::bad_alloc());
    case ErrorKind::cf_error:
      return std::make_exception_ptr(Error(what));
    case ErrorKind::cancelled:
      return std::make_exception_ptr(CancelledError(what));
    case ErrorKind::timeout:
      return std::make_exception_ptr(TimeoutError(what));
    case ErrorKind::invalid_state:
      return std::make_exception_ptr(InvalidStateError(what));
    case ErrorKind::broken_executor:
      return std::make_exception_ptr(BrokenExecutor(what));
    case ErrorKind::broken_thread_pool:
      return std::make_exception_ptr(BrokenThreadPool(what));
    case ErrorKind::broken_process_pool:
      return std::make_exception_ptr(BrokenProcessPool(what));
    case ErrorKind::shutdown:
      return std::make_exception_ptr(ShutdownError(what));
    case ErrorKind::serialization:
      return std::make_exception_ptr(SerializationError(what));
    case ErrorKind::remote:
    case ErrorKind::other:
      break;
  }
  return std::make_exception_ptr(RemoteError(type, what));
}

}  // namespace

void write_exception(Writer& w, const std::exception_ptr& error) {
  ErrorKind kind = ErrorKind::other;
  std::string type = exception_type_name(error);
  std::string what = exception_message(error);
  try {
    std::rethrow_exception(error);
  } catch (const RemoteError& e) {
    // Passing on an error that already came from elsewhere keeps its original type name.
    kind = ErrorKind::remote;
    type = e.type_name();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    if (t != nullptr) kind = kind_of(*t);
  }
  w.pod(static_cast<std::uint8_t>(kind));
  codec::write(w, type);
  codec::write(w, what);
}

std::exception_ptr read_exception(Reader& r) {
  const auto kind = static_cast<ErrorKind>(r.pod<std::uint8_t>());
  std::string type;
  std::string what;
  codec::read(r, type);
  codec::read(r, what);
  if (static_cast<std::uint8_t>(kind) > static_cast<std::uint8_t>(ErrorKind::remote)) {
    throw SerializationError("corrupt message: unknown exception kind");
  }
  return rebuild(kind, type, what);
}

}  // namespace concurrent::futures::detail::codec
