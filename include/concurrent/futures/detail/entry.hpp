// How a callable crosses a process boundary without its address ever being trusted.
//
// Every (callable type, argument types) pair that a program can send to a worker is an *entry*:
// a function that reads the callable and its arguments from a message, runs it and writes the
// reply. Entries register themselves in a per-process table during static initialisation (a
// static data member of a class template, odr-used by submit), keyed by a hash of the entry's
// mangled type name. Every process running the program builds the same table, so a worker, even
// one started afresh by `spawn`, can look up the key the parent sent; an unknown key is an
// error, never a jump. No macro or registration is asked of the user.
//
// Which callables may travel is the rule of transportable.hpp. The callable itself travels as:
//  * a class type the library may copy bytewise (an empty one such as a captureless lambda, or
//    an aggregate whose fields bytewise.hpp checked, or one declared bytewise_transportable): its
//    bytes;
//  * any other serializable class type (cereal functions, cf::partial): its encoding;
//  * a function pointer: the loaded object holding the function (the program, or a shared object
//    by path) and the function's offset in it, with a check of the object's build. Both sides
//    check the offset against the object's own table of function starts, the .eh_frame_hdr that
//    C++ unwinding needs and strip keeps: the parent that the pointer is exactly a function's
//    start, the worker that its copy of the object has a function starting there, from the same
//    build. Only a function its unwind table does not list travels by symbol name, which needs an
//    unstripped program. See src/remote/function_table.cpp.
//
// A `const char*` argument (a string literal, typically) travels as the string it points to; the
// worker passes the callable a pointer to its own copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "concurrent/futures/detail/bytewise.hpp"
#include "concurrent/futures/detail/codec.hpp"
#include "concurrent/futures/errors.hpp"
#include "concurrent/futures/transportable.hpp"

namespace concurrent::futures::detail {

template <class F>
concept FunctionPointer = std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;

// Function objects whose bytes are all there is to them: empty ones (captureless lambdas), and
// aggregates whose every field may be copied bytewise (bytewise.hpp).
template <class F>
concept BytewiseFunctionObject = std::is_class_v<F> && bytewise::allowed_v<F>;

// Other function objects that travel by their encoding: cereal types and cf::partial.
template <class F>
concept EncodedFunctionObject =
    std::is_class_v<F> && !BytewiseFunctionObject<F> && codec::serializable_v<F>;

// What may run in a worker process (transportable.hpp): function pointers and the function
// objects above. A lambda with captures is none of them: nothing tells what it captured.
template <class F>
concept Transportable = FunctionPointer<std::decay_t<F>> ||
    BytewiseFunctionObject<std::decay_t<F>> || EncodedFunctionObject<std::decay_t<F>>;

// A string literal argument: sent as the string it points to.
template <class A>
inline constexpr bool is_c_string_v = std::is_same_v<A, const char*>;

// Whether an argument (decayed) can be sent: a serializable value, or a C string.
template <class A>
inline constexpr bool sendable_argument_v = is_c_string_v<A> || codec::serializable_v<A>;

// What the worker reads an argument of type A into, and what it passes the callable from it.
template <class A>
using received_t = std::conditional_t<is_c_string_v<A>, std::string, A>;

template <class A>
decltype(auto) pass_received(received_t<A>& received) {
  if constexpr (is_c_string_v<A>) {
    return static_cast<const char*>(received.c_str());
  } else {
    return std::move(received);
  }
}

template <class A>
void write_argument(codec::Writer& w, const A& arg) {
  if constexpr (is_c_string_v<A>) {
    if (arg == nullptr) {
      throw SerializationError("a null const char* argument cannot be sent to a worker process");
    }
    const std::size_t n = std::strlen(arg);
    w.size(n);  // as codec writes a std::string
    w.bytes(arg, n);
  } else {
    codec::write(w, arg);
  }
}

// Reads the request, runs the call and writes the reply; never throws (failures are replies).
using EntryFn = void (*)(codec::Reader& request, codec::Writer& reply) noexcept;

std::uint64_t register_entry(const char* type_name, EntryFn fn) noexcept;
// nullptr if this process has no such entry (or two entries share the key).
EntryFn find_entry(std::uint64_t key) noexcept;

// Held around every fork() the library makes: the child gets the entry and symbol tables with
// their locks free, even if another thread was using them at that moment.
class ForkGuard {
 public:
  ForkGuard();
  ~ForkGuard();
  ForkGuard(const ForkGuard&) = delete;
  ForkGuard& operator=(const ForkGuard&) = delete;
};

// Function pointers by their place in the program (see the file comment). write_function throws
// SerializationError with the reason when the pointer is not a function's start it can name;
// read_function when the worker's objects have no such function (it never returns an address its
// own tables do not list). Both are thread-safe and cheap once a function has been seen.
void write_function(codec::Writer& w, const void* function);
const void* read_function(codec::Reader& r);

template <class F>
void write_callable(codec::Writer& w, const F& fn) {
  if constexpr (FunctionPointer<F>) {
    write_function(w, reinterpret_cast<const void*>(fn));
  } else if constexpr (BytewiseFunctionObject<F>) {
    w.bytes(&fn, sizeof(F));
  } else {
    codec::write(w, fn);
  }
}

// Reconstructs the callable in the worker. Bytewise class types are rebuilt from their bytes
// (they are trivially copyable, so copying the bytes is copying the object).
template <class F>
F read_callable(codec::Reader& r) {
  if constexpr (FunctionPointer<F>) {
    return reinterpret_cast<F>(const_cast<void*>(read_function(r)));
  } else if constexpr (BytewiseFunctionObject<F>) {
    alignas(F) unsigned char storage[sizeof(F)];
    r.bytes(storage, sizeof(F));
    return *std::launder(reinterpret_cast<F*>(storage));
  } else {
    F fn{};
    codec::read(r, fn);
    return fn;
  }
}

}  // namespace concurrent::futures::detail

// cf::partial travels as its callable and its bound values.
namespace concurrent::futures::detail::codec {
template <class F, class... Bound>
struct Codec<Partial<F, Bound...>> {
  static constexpr bool ok = Transportable<F> && (serializable_v<Bound> && ...) &&
                             std::is_default_constructible_v<F> && std::is_move_assignable_v<F>;
  static constexpr bool uses_cereal = (uses_cereal_v<Bound> || ...);
  static void write(Writer& w, const Partial<F, Bound...>& p) {
    write_callable(w, p.function());
    codec::write(w, p.bound());
  }
  static void read(Reader& r, Partial<F, Bound...>& p) {
    p.function() = read_callable<F>(r);
    codec::read(r, p.bound());
  }
};
}  // namespace concurrent::futures::detail::codec

namespace concurrent::futures::detail {

// Reply status byte.
enum class ReplyStatus : std::uint8_t { value = 0, error = 1 };

// Runs body() and turns any exception into an error reply, dropping what body wrote (entries
// write into an empty buffer of their own).
template <class Body>
void run_entry(codec::Writer& reply, Body&& body) noexcept {
  try {
    body();
    return;
  } catch (...) {
    try {
      reply.buffer().clear();
      reply.pod(ReplyStatus::error);
      codec::write_exception(reply, std::current_exception());
    } catch (...) {
      // Out of memory while reporting: the reply stays empty and the parent reports that.
      reply.buffer().clear();
    }
  }
}

// The entry for submit(fn, args...): one call, one result.
template <class F, class... Args>
struct CallEntry {
  using R = std::invoke_result_t<F, Args...>;

  static void run(codec::Reader& request, codec::Writer& reply) noexcept {
    run_entry(reply, [&] {
      F fn = read_callable<F>(request);
      std::tuple<received_t<Args>...> args;
      std::apply([&](auto&... a) { (codec::read(request, a), ...); }, args);
      const auto call = [&](received_t<Args>&... a) -> R {
        return std::invoke(fn, pass_received<Args>(a)...);
      };
      if constexpr (std::is_void_v<R>) {
        std::apply(call, args);
        reply.pod(ReplyStatus::value);
      } else {
        R result = std::apply(call, args);
        reply.pod(ReplyStatus::value);
        codec::write(reply, result);
      }
    });
  }

  static const std::uint64_t key;
};

template <class F, class... Args>
const std::uint64_t CallEntry<F, Args...>::key =
    register_entry(typeid(CallEntry<F, Args...>).name(), &CallEntry<F, Args...>::run);

// The entry for one chunk of map(): the callable, then the items; the reply has one outcome per
// item, each with its length, so one item that fails (to run, or to be read back in the
// parent) fails only itself.
template <class Fn, class Item, class R>
struct ChunkEntry {
  static void run(codec::Reader& request, codec::Writer& reply) noexcept {
    run_entry(reply, [&] {
      Fn fn = read_callable<Fn>(request);
      std::vector<Item> items;
      codec::read(request, items);
      reply.pod(ReplyStatus::value);
      reply.size(items.size());
      for (Item& item : items) {
        const std::size_t mark = reply.buffer().size();
        reply.pod(std::uint64_t{0});  // the item's length, filled in below
        const std::size_t start = reply.buffer().size();
        // A writer of its own for each outcome: the parent reads each with a reader of its own,
        // so what a writer writes once per message (a cereal type's version, the count of
        // elements that encode to nothing) must be per item.
        try {
          codec::Writer outcome(reply.buffer());
          if constexpr (std::is_void_v<R>) {
            std::apply(fn, std::move(item));
            outcome.pod(ReplyStatus::value);
          } else {
            R result = std::apply(fn, std::move(item));
            outcome.pod(ReplyStatus::value);
            codec::write(outcome, result);
          }
        } catch (...) {
          reply.buffer().truncate(start);
          codec::Writer outcome(reply.buffer());
          outcome.pod(ReplyStatus::error);
          codec::write_exception(outcome, std::current_exception());
        }
        const auto length = static_cast<std::uint64_t>(reply.buffer().size() - start);
        std::memcpy(reply.buffer().data() + mark, &length, sizeof length);
      }
    });
  }

  static const std::uint64_t key;
};

template <class Fn, class Item, class R>
const std::uint64_t ChunkEntry<Fn, Item, R>::key =
    register_entry(typeid(ChunkEntry<Fn, Item, R>).name(), &ChunkEntry<Fn, Item, R>::run);

// A request is the entry's key, the callable, then its arguments (a call) or its items (a chunk):
// the one encoding of each, whichever path submitted it.
template <class F, class... Args>
void encode_call(codec::Writer& w, const F& fn, const Args&... args) {
  w.pod(CallEntry<F, Args...>::key);
  write_callable(w, fn);
  (write_argument(w, args), ...);
}

template <class Fn, class Item, class R>
void encode_chunk(codec::Writer& w, const Fn& fn, const std::vector<Item>& items) {
  w.pod(ChunkEntry<Fn, Item, R>::key);
  write_callable(w, fn);
  codec::write(w, items);
}

}  // namespace concurrent::futures::detail
