// Writes the seed corpora of the fuzz targets: valid encodings of every kind, made by the
// library's own encoders, one file each, into <dir>/<target>/ (`make fuzz-corpus` runs it with
// fuzz/corpus). The fuzzers start from these and mutate them; the files are committed.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <concurrent/futures/detail/entry.hpp>

#include "fuzz_support.hpp"
#include "process/channel.hpp"
#include "process/forkserver.hpp"
#include "remote/protocol.hpp"
#ifdef CFUTURES_FUZZ_MPI
#include "mpi/link.hpp"
#endif

namespace {

namespace codec = cf::detail::codec;
namespace process = cf::detail::process;
namespace remote = cf::detail::remote;
namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

fs::path root;

void put(const std::string& target, const std::string& name, const Bytes& bytes) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

Bytes bytes_of(const codec::Buffer& b) { return Bytes(b.data(), b.data() + b.size()); }

template <class T>
Bytes encode(const T& value) {
  codec::Buffer b;
  codec::Writer w(b);
  codec::write(w, value);
  return bytes_of(b);
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

Bytes byte(std::uint8_t b) { return Bytes{std::byte{b}}; }

template <class T>
Bytes pod(const T& value) {
  Bytes b(sizeof value);
  std::memcpy(b.data(), &value, sizeof value);
  return b;
}

fuzz::Record sample_record(int n) {
  fuzz::Record r;
  r.name = "record " + std::to_string(n);
  r.counts = {1, 2, n};
  r.prices = {{"apple", 3}, {"pear", -4}};
  r.tags = {"fresh", "local"};
  if (n % 2 == 0) r.notes = std::vector<std::string>{"a", "bc"};
  r.code = n % 2 == 0 ? decltype(r.code)(n) : decltype(r.code)(std::string("code"));
  r.dims = {1, 2, 3};
  r.owner = {"owner", n % 2 == 0};
  r.origin = {n, "origin", 2.5};
  r.age = std::chrono::milliseconds(1500);
  r.blocks = {{1, 2}, {}, {3}};
  return r;
}

// --- fuzz_values: the kind's index, then its encoding --------------------------------------

template <class T>
void value(const T& v, int variant) {
  constexpr std::size_t kind = [] {
    std::size_t found = 0;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((std::is_same_v<std::tuple_element_t<I, fuzz::ValueTypes>, T> ? (found = I) : 0), ...);
    }
    (std::make_index_sequence<fuzz::kValueTypes>{});
    return found;
  }();
  static_assert(std::is_same_v<std::tuple_element_t<kind, fuzz::ValueTypes>, T>);
  put("fuzz_values", "kind" + std::to_string(kind) + "-" + std::to_string(variant),
      cat({byte(static_cast<std::uint8_t>(kind)), encode(v)}));
}

void values() {
  value(std::int32_t{-42}, 0);
  value(std::uint64_t{1} << 40, 0);
  value(3.25, 0);
  value(true, 0);
  value(fuzz::Color::blue, 0);
  value(std::string("hello, worker"), 0);
  value(std::string(), 1);
  value(std::vector<std::int32_t>{1, -2, 3}, 0);
  value(std::vector<bool>{true, false, true}, 0);
  value(std::vector<std::string>{"a", "", "ccc"}, 0);
  value(std::vector<std::vector<std::int32_t>>{{1}, {}, {2, 3}}, 0);
  value(std::map<std::string, std::int32_t>{{"one", 1}, {"two", 2}}, 0);
  value(std::unordered_map<std::int32_t, std::string>{{1, "one"}}, 0);
  value(std::set<std::string>{"x", "y"}, 0);
  value(std::unordered_set<std::int64_t>{5, 6}, 0);
  value(std::tuple<std::int32_t, std::string, double>{1, "t", 0.5}, 0);
  value(std::pair<std::string, std::vector<std::int32_t>>{"p", {4, 5}}, 0);
  value(std::optional<std::string>("maybe"), 0);
  value(std::optional<std::string>(), 1);
  value(std::variant<std::int32_t, std::string, std::vector<std::int32_t>>(std::string("v")), 0);
  value(std::variant<std::int32_t, std::string, std::vector<std::int32_t>>(
            std::vector<std::int32_t>{9}),
        1);
  value(std::array<std::string, 3>{"a", "b", "c"}, 0);
  value(std::chrono::milliseconds(250), 0);
  value(std::complex<double>(1.0, -1.0), 0);
  value(fuzz::Nested{{"k",
                      {std::nullopt, std::tuple<std::int32_t, std::variant<std::string, double>>(
                                         1, std::string("s"))}}},
        0);
  value(sample_record(1), 0);
  value(sample_record(2), 1);
  value(fuzz::Envelope{2, {sample_record(3), sample_record(4)}}, 0);
  value(fuzz::Point{1, 2, 0.5, "tag"}, 0);
  value(std::vector<fuzz::Point>{{1, 2, 0.5, "a"}, {3, 4, 1.5, "b"}}, 0);
  value(std::optional<bool>(false), 0);
  value(std::vector<fuzz::Record>{sample_record(5)}, 0);
  value(std::vector<std::monostate>(5), 0);
  value(std::vector<std::vector<std::monostate>>{{}, std::vector<std::monostate>(3)}, 0);
  value(std::vector<fuzz::Shelf>{{std::vector<fuzz::Empty>(4), "top"}, {{}, "bare"}}, 0);
}

// --- fuzz_exception -------------------------------------------------------------------------

Bytes record(const std::exception_ptr& e) {
  codec::Buffer b;
  codec::Writer w(b);
  codec::write_exception(w, e);
  return bytes_of(b);
}

struct Unregistered : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void exceptions() {
  int i = 0;
  for (const std::exception_ptr& e :
       {std::make_exception_ptr(std::runtime_error("runtime")),
        std::make_exception_ptr(std::out_of_range("out of range")),
        std::make_exception_ptr(std::bad_alloc()), std::make_exception_ptr(cf::TimeoutError("t")),
        std::make_exception_ptr(cf::SerializationError("s")),
        std::make_exception_ptr(cf::RemoteError("origin::Type", "remote")),
        std::make_exception_ptr(Unregistered("unregistered")), std::make_exception_ptr(42),
        std::make_exception_ptr(fuzz::ValidationError("field", 3)),
        std::make_exception_ptr(fuzz::NotFound("missing"))}) {
    put("fuzz_exception", "record-" + std::to_string(i++), cat({byte(0), record(e)}));
  }
  fuzz::ValidationError with_path("name", 12);
  with_path.path = {"a", "b"};
  put("fuzz_exception", "validation-data", cat({byte(1), encode(with_path)}));
  put("fuzz_exception", "not-found-data", byte(2));
}

// --- fuzz_protocol --------------------------------------------------------------------------

Bytes input(fuzz::ProtocolInput kind) { return byte(static_cast<std::uint8_t>(kind)); }

template <class T>
Bytes value_reply(const T& v) {
  return cat({pod(cf::detail::ReplyStatus::value), encode(v)});
}
Bytes error_reply(const std::exception_ptr& e) {
  return cat({pod(cf::detail::ReplyStatus::error), record(e)});
}

// A request without its key (fuzz_protocol puts this program's key first).
template <class F, class... Args>
Bytes request(std::uint8_t entry, const F& fn, const Args&... args) {
  codec::Buffer b;
  codec::Writer w(b);
  cf::detail::encode_call(w, fn, args...);
  return cat({input(fuzz::ProtocolInput::task), byte(entry),
              Bytes(b.data() + sizeof(std::uint64_t), b.data() + b.size())});
}

void protocol() {
  using In = fuzz::ProtocolInput;
  put("fuzz_protocol", "config-plain",
      cat({input(In::config), byte(0),
           bytes_of(remote::encode(remote::WorkerConfig{5, nullptr}))}));
  put("fuzz_protocol", "config-initializer", cat({input(In::config), byte(1)}));
  put("fuzz_protocol", "reply-int", cat({input(In::reply_int), value_reply(std::int64_t{7})}));
  put("fuzz_protocol", "reply-int-error",
      cat({input(In::reply_int), error_reply(std::make_exception_ptr(std::logic_error("no")))}));
  put("fuzz_protocol", "reply-string",
      cat({input(In::reply_string), value_reply(std::string("result"))}));
  put("fuzz_protocol", "reply-strings",
      cat({input(In::reply_strings), value_reply(std::vector<std::string>{"a", "b"})}));
  put("fuzz_protocol", "reply-void",
      cat({input(In::reply_void), pod(cf::detail::ReplyStatus::value)}));
  put("fuzz_protocol", "reply-record",
      cat({input(In::reply_record), value_reply(sample_record(6))}));
  put("fuzz_protocol", "task-add", request(0, fuzz::Add{}, std::int32_t{2}, std::int32_t{3}));
  put("fuzz_protocol", "task-join",
      request(1, fuzz::Join{}, std::vector<std::string>{"x", "y"}, std::string("+")));
  put("fuzz_protocol", "task-describe", request(2, fuzz::Describe{}, sample_record(7)));
  put("fuzz_protocol", "task-fails", request(3, fuzz::Fails{}, std::string("why")));
  {
    codec::Buffer b;
    codec::Writer w(b);
    cf::detail::encode_chunk<fuzz::Square, std::tuple<std::int32_t>, std::int64_t>(
        w, fuzz::Square{}, {{1}, {2}, {3}});
    put("fuzz_protocol", "task-chunk",
        cat({input(In::task), byte(4),
             Bytes(b.data() + sizeof(std::uint64_t), b.data() + b.size())}));
  }
  put("fuzz_protocol", "function-real", cat({input(In::function), byte(1)}));
}

// --- fuzz_frame and fuzz_forkserver: channel frames -----------------------------------------

Bytes frame(std::uint8_t type, std::uint64_t id, const Bytes& payload, bool shared = false,
            bool has_fd = false, std::uint8_t generation = 0) {
  process::FrameHeader h{};
  h.size = static_cast<std::uint32_t>(payload.size());
  h.type = type;
  h.shared = shared ? 1 : 0;
  h.fds = has_fd ? 1 : 0;
  h.generation = generation;
  h.id = id;
  return cat({pod(h), shared ? Bytes() : payload});
}

std::uint8_t type_of(remote::MessageType t) { return static_cast<std::uint8_t>(t); }
std::uint8_t type_of(process::ServerFrame t) { return static_cast<std::uint8_t>(t); }

void frames() {
  using remote::MessageType;
  const Bytes conversation = cat({
      frame(type_of(MessageType::hello), 1234, {}),
      frame(type_of(MessageType::ready), 0, {}),
      frame(type_of(MessageType::reply), 1, value_reply(std::int64_t{5})),
      frame(type_of(MessageType::reply), 2,
            error_reply(std::make_exception_ptr(std::runtime_error("x")))),
  });
  put("fuzz_frame", "worker-replies", cat({byte(0), conversation}));
  put("fuzz_frame", "parent-tasks",
      cat({byte(0), frame(type_of(MessageType::task), 9, Bytes(24, std::byte{1}), false, false, 3),
           frame(type_of(MessageType::exit), 0, {})}));
  // A reply in shared memory: one descriptor of 64 bytes rides on the header.
  put("fuzz_frame", "shared-reply",
      cat({byte(1), pod(std::uint16_t{64}),
           frame(type_of(MessageType::reply), 3, Bytes(64), true)}));
  // A config with its claim word's descriptor, then a spawn request with a socket.
  put("fuzz_frame", "with-fds",
      cat({byte(2), pod(std::uint16_t{8}), pod(std::uint16_t{0}),
           frame(type_of(MessageType::config), 0, bytes_of(remote::encode(remote::WorkerConfig{})),
                 false, true),
           frame(type_of(process::ServerFrame::spawn), 4, {}, false, true)}));

  put("fuzz_forkserver", "reports",
      cat({frame(type_of(process::ServerFrame::spawned), 1, pod(std::int64_t{4321})),
           frame(type_of(process::ServerFrame::spawned), 2, pod(std::int64_t{-1})),
           frame(type_of(process::ServerFrame::exited), 4321, pod(int{9}))}));
  put("fuzz_forkserver", "spawn", frame(type_of(process::ServerFrame::spawn), 5, {}));
}

#ifdef CFUTURES_FUZZ_MPI
void mpi_headers() {
  namespace mpi = cf::detail::mpi;
  mpi::Header inline_header;
  inline_header.type = type_of(remote::MessageType::reply);
  inline_header.session = 3;
  inline_header.id = 11;
  inline_header.size = 8;
  put("fuzz_mpi_link", "inline", cat({pod(inline_header), pod(std::int64_t{5})}));
  mpi::Header separate = inline_header;
  separate.separate = 1;
  separate.size = mpi::kInlinePayload + 1;
  put("fuzz_mpi_link", "separate", pod(separate));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  try {
    values();
    exceptions();
    protocol();
    frames();
#ifdef CFUTURES_FUZZ_MPI
    mpi_headers();
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
