#include "remote/protocol.hpp"

#include <new>

#include "concurrent/futures/detail/entry.hpp"
#include "concurrent/futures/errors.hpp"

namespace concurrent::futures::detail::remote {

codec::Buffer encode(const WorkerConfig& config) {
  codec::Buffer b;
  codec::Writer w(b);
  w.pod(config.max_tasks_per_child);
  w.pod(static_cast<std::uint8_t>(config.initializer != nullptr));
  if (config.initializer != nullptr) {
    write_function(w, reinterpret_cast<const void*>(config.initializer));
  }
  return b;
}

WorkerConfig decode_config(std::span<const std::byte> payload) {
  codec::Reader r(payload.data(), payload.size());
  WorkerConfig config;
  config.max_tasks_per_child = r.pod<std::uint64_t>();
  const auto has_initializer = r.pod<std::uint8_t>();
  if (has_initializer > 1) throw SerializationError("corrupt worker config");
  if (has_initializer == 1) {
    config.initializer = reinterpret_cast<void (*)()>(const_cast<void*>(read_function(r)));
  }
  if (r.remaining() != 0) throw SerializationError("corrupt worker config: trailing bytes");
  return config;
}

codec::Buffer encode_exception(const std::exception_ptr& error) {
  codec::Buffer b;
  codec::Writer w(b);
  codec::write_exception(w, error);
  return b;
}

std::exception_ptr run_initializer(const WorkerConfig& config) noexcept {
  if (config.initializer == nullptr) return nullptr;
  try {
    config.initializer();
    return nullptr;
  } catch (...) {
    return std::current_exception();
  }
}

namespace {

void write_error(codec::Buffer& reply, const std::exception_ptr& error) noexcept {
  try {
    reply.clear();
    codec::Writer w(reply);
    w.pod(ReplyStatus::error);
    codec::write_exception(w, error);
  } catch (...) {
    reply.clear();  // out of memory while reporting: the parent reports an empty reply
  }
}

}  // namespace

codec::Buffer run_task(std::span<const std::byte> request, std::size_t max_reply,
                       const std::vector<int>* descriptors) noexcept {
  codec::Buffer reply;
  try {
    codec::Reader r(request.data(), request.size(), descriptors);
    const auto key = r.pod<std::uint64_t>();
    const EntryFn entry = find_entry(key);
    if (entry == nullptr) {
      throw SerializationError(
          "the worker process does not know this task's function (is it running the same "
          "program as the parent?)");
    }
    codec::Writer w(reply);
    entry(r, w);
  } catch (...) {
    write_error(reply, std::current_exception());
    return reply;
  }
  if (reply.size() > max_reply) {
    write_error(reply, std::make_exception_ptr(SerializationError(
                           "a task's result takes more than " + std::to_string(max_reply >> 20) +
                           " MiB, the most one message holds")));
  }
  return reply;
}

void refuse_descriptors(codec::Buffer& reply) noexcept {
  if (reply.descriptors().empty()) return;
  write_error(reply, std::make_exception_ptr(SerializationError(
                         "a task's result holds a cf::SharedArray, which cannot travel to this "
                         "executor's parent: a shared array is memory of one machine, and only "
                         "ProcessPoolExecutor passes it (see shared_array.hpp)")));
}

}  // namespace concurrent::futures::detail::remote
