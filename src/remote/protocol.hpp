// What a parent and its workers say to each other, whatever carries the words (a unix socket for
// processes, MPI messages for ranks).
//
// A conversation, from the worker's side:
//   worker -> hello(id: pid or rank)
//   parent -> config(WorkerConfig)            the worker runs the initializer
//   worker -> ready | init_failed(exception)
//   parent -> task(id, request)...            requests: see detail/entry.hpp
//   worker -> reply(id, ReplyStatus + value or exception), one per task, in order
//   parent -> exit                            or the stream ends: the worker leaves
// A worker with max_tasks_per_child leaves by itself after its last reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <span>
#include <vector>

#include "concurrent/futures/detail/codec.hpp"

namespace concurrent::futures::detail::remote {

enum class MessageType : std::uint8_t {
  // parent -> worker
  config = 1,  // payload: WorkerConfig
  task = 2,    // id: task id; payload: the request
  exit = 3,    // finish and leave
  // worker -> parent
  hello = 10,        // id: the worker's pid (or rank); sent before the config is read
  init_failed = 11,  // payload: the initializer's exception
  reply = 12,        // id: task id; payload: ReplyStatus, then the value or the exception
  ready = 13,        // the initializer is done: tasks run from now on
};

// What every worker of a pool is told before its first task.
struct WorkerConfig {
  std::uint64_t max_tasks_per_child = 0;  // 0: unlimited
  void (*initializer)() = nullptr;
};

// Throws SerializationError when the initializer cannot be named (see entry.hpp).
codec::Buffer encode(const WorkerConfig& config);
// Throws SerializationError for bytes that are not a WorkerConfig or name no function here.
WorkerConfig decode_config(std::span<const std::byte> payload);

// An exception as a message payload (init_failed, error replies).
codec::Buffer encode_exception(const std::exception_ptr& error);

// --- the worker's side, whatever the transport ----------------------------------------------

// Runs the config's initializer: nullptr, or what it threw.
std::exception_ptr run_initializer(const WorkerConfig& config) noexcept;

// Runs one task request and returns the reply's payload. Never throws: an unknown entry, an
// exception from the call or a result larger than `max_reply` bytes is an error reply.
// `descriptors`: those that came with the request (shared arrays), borrowed.
codec::Buffer run_task(std::span<const std::byte> request,
                       std::size_t max_reply = std::numeric_limits<std::size_t>::max(),
                       const std::vector<int>* descriptors = nullptr) noexcept;

// Makes a reply that holds descriptors (a cf::SharedArray result) an error reply, for a transport
// that cannot pass them (MPI).
void refuse_descriptors(codec::Buffer& reply) noexcept;

}  // namespace concurrent::futures::detail::remote
