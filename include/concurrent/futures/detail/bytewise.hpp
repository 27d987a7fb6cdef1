// Which types may be copied bytewise into another process, decided at compile time, and the
// compile-time messages that say why a type may not (see transportable.hpp for the rule).
//
// A trivially copyable aggregate is checked member by member without naming its members: an
// aggregate can be brace-initialized from one object per field, and an object convertible only to
// the allowed field types (`SafeField`) initializes every field of T exactly when every field is
// allowed. Nested aggregates and C arrays are entered by brace elision (the probe never converts
// to them), so the check reaches every scalar and opaque class inside, at any depth. The number of
// fields is found first with a probe that converts to anything (`AnyField`).
#pragma once

#include <bitset>
#include <chrono>
#include <complex>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "concurrent/futures/transportable.hpp"

namespace concurrent::futures::detail::bytewise {

// Why a type may not be copied bytewise (ok when it may).
enum class Why : unsigned char {
  ok,
  pointer,
  member_pointer,
  reference,
  string_view,
  span,
  reference_wrapper,
  not_trivially_copyable,
  union_type,
  reference_member,  // an aggregate that is not copy-assignable: a reference or const member
  too_many_fields,
  member,        // an aggregate with a member that may not: the member is named by report()
  class_member,  // the same, found by RefusedClass (a member built through its own constructor)
  uncounted,     // an aggregate with a field the probes cannot reach (an anonymous union)
  opaque,        // a trivially copyable non-aggregate: private members or constructors
};

template <class T>
inline constexpr bool is_string_view_v = false;
template <class C, class Tr>
inline constexpr bool is_string_view_v<std::basic_string_view<C, Tr>> = true;

template <class T>
inline constexpr bool is_span_v = false;
template <class T, std::size_t N>
inline constexpr bool is_span_v<std::span<T, N>> = true;

template <class T>
inline constexpr bool is_reference_wrapper_v = false;
template <class T>
inline constexpr bool is_reference_wrapper_v<std::reference_wrapper<T>> = true;

// __int128 is not arithmetic under strict -std=c++20, but holds no address.
template <class T>
inline constexpr bool is_int128_v = false;
#ifdef __SIZEOF_INT128__
__extension__ typedef __int128 int128_t;            // NOLINT(modernize-use-using): __extension__
__extension__ typedef unsigned __int128 uint128_t;  // NOLINT(modernize-use-using)
template <>
inline constexpr bool is_int128_v<int128_t> = true;
template <>
inline constexpr bool is_int128_v<uint128_t> = true;
#endif

// More fields than this in one aggregate (counting each element of its C arrays) are not checked.
inline constexpr std::size_t kMaxFields = 4096;

template <class T>
constexpr Why why();

template <class T>
inline constexpr bool allowed_v = why<std::remove_cv_t<T>>() == Why::ok;

// What a probe converts to: anything but an aggregate with fields (those are entered instead).
template <class U>
concept Field =
    !std::is_class_v<U> || std::is_empty_v<U> || std::is_union_v<U> || !std::is_aggregate_v<U>;

struct AnyField {
  template <class U>
  requires Field<U>
  operator U&() const noexcept;  // NOLINT(google-explicit-constructor): converts on purpose
};

// By value: a reference member (std::reference_wrapper's constructor wants an lvalue) cannot be
// initialized from it.
struct SafeField {
  template <class U>
  requires(Field<U>&& allowed_v<U>) operator U()
      const noexcept;  // NOLINT(google-explicit-constructor)
};

// Converts only to the class fields that may not be copied. A field of class type can also be
// initialized through its own converting constructor (std::variant<int, int*> from a probe that
// converts to int), which SafeField cannot prevent; this probe, put at one position at a time,
// finds such fields: nothing but a refused class type can be initialized from it.
template <class U>
concept RefusedClassField = Field<U> &&(std::is_class_v<U> || std::is_union_v<U>)&&!allowed_v<U>;

struct RefusedClass {
  template <class U>
  requires RefusedClassField<U>
  operator U() const noexcept;  // NOLINT(google-explicit-constructor)
};

// Above this many fields the position-by-position search is not made (its cost grows as the
// square): such a struct's class fields are checked by SafeField alone.
inline constexpr std::size_t kMaxFieldsSearched = 256;

template <class T, class Probe, std::size_t N>
constexpr bool brace_initializable() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return requires { T{(void(I), Probe{})...}; };
  }
  (std::make_index_sequence<N>{});
}

// The largest N with T{AnyField x N} valid, knowing it is in [Lo, Hi).
template <class T, std::size_t Lo, std::size_t Hi>
constexpr std::size_t search_fields() {
  if constexpr (Hi - Lo <= 1) {
    return Lo;
  } else if constexpr (brace_initializable<T, AnyField, (Lo + Hi) / 2>()) {
    return search_fields<T, (Lo + Hi) / 2, Hi>();
  } else {
    return search_fields<T, Lo, (Lo + Hi) / 2>();
  }
}

// The fields of aggregate T (kMaxFields + 1 when more): doubling, then bisecting.
template <class T, std::size_t N = 1>
constexpr std::size_t field_count() {
  if constexpr (N > kMaxFields) {
    if constexpr (brace_initializable<T, AnyField, kMaxFields>()) {
      return brace_initializable<T, AnyField, kMaxFields + 1>() ? kMaxFields + 1 : kMaxFields;
    } else {
      return search_fields<T, N / 2, kMaxFields>();
    }
  } else if constexpr (brace_initializable<T, AnyField, N>()) {
    return field_count<T, N * 2>();
  } else {
    return search_fields<T, N / 2, N>();
  }
}

// Whether T{AnyField x K, probe, AnyField x (N - K - 1)} is valid: the field at K takes the probe.
template <class T, class Probe, std::size_t N, std::size_t K>
constexpr bool field_takes() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return requires { T{(void(I), std::conditional_t<I == K, Probe, AnyField>{})...}; };
  }
  (std::make_index_sequence<N>{});
}

// The first field of T (of N) that is a refused class type, or N.
template <class T, std::size_t N>
constexpr std::size_t first_refused_class_field() {
  if constexpr (N > kMaxFieldsSearched) {
    return N;
  } else {
    return []<std::size_t... K>(std::index_sequence<K...>) {
      std::size_t first = N;
      ((first = first == N && field_takes<T, RefusedClass, N, K>() ? K : first), ...);
      return first;
    }
    (std::make_index_sequence<N>{});
  }
}

// Whether T takes one more initializer than its counted fields: a field no probe converts to
// (with GCC, an anonymous union), so the count stopped before it.
template <class T, std::size_t N>
constexpr bool has_uncounted_field() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return requires { T{(void(I), AnyField{})..., {}}; };
  }
  (std::make_index_sequence<N>{});
}

template <class T>
constexpr Why aggregate_why() {
  if constexpr (!std::is_copy_assignable_v<T>) {
    return Why::reference_member;
  } else {
    constexpr std::size_t n = field_count<T>();
    if constexpr (n > kMaxFields) {
      return Why::too_many_fields;
    } else if constexpr (n == 0 || has_uncounted_field<T, n>()) {
      return Why::uncounted;
    } else if constexpr (!brace_initializable<T, SafeField, n>()) {
      return Why::member;
    } else if constexpr (first_refused_class_field<T, n>() < n) {
      return Why::class_member;
    } else {
      return Why::ok;
    }
  }
}

template <class... Ts>
constexpr Why first_why() {
  Why result = Why::ok;
  ((result = result == Why::ok ? why<std::remove_cv_t<Ts>>() : result), ...);
  return result;
}

// The std class templates that are trivially copyable when their parameters are, but not
// aggregates: allowed when what they hold is.
template <class T>
struct StdTemplate : std::false_type {};
template <class T>
struct StdTemplate<std::optional<T>> : std::true_type {
  static constexpr Why why = first_why<T>();
};
template <class... Ts>
struct StdTemplate<std::variant<Ts...>> : std::true_type {
  static constexpr Why why = first_why<Ts...>();
};
template <class A, class B>
struct StdTemplate<std::pair<A, B>> : std::true_type {
  static constexpr Why why = first_why<A, B>();
};
template <class... Ts>
struct StdTemplate<std::tuple<Ts...>> : std::true_type {
  static constexpr Why why = first_why<Ts...>();
};
template <class Rep, class Period>
struct StdTemplate<std::chrono::duration<Rep, Period>> : std::true_type {
  static constexpr Why why = first_why<Rep>();
};
template <class Clock, class Duration>
struct StdTemplate<std::chrono::time_point<Clock, Duration>> : std::true_type {
  static constexpr Why why = first_why<Duration>();
};
template <class T>
struct StdTemplate<std::complex<T>> : std::true_type {
  static constexpr Why why = first_why<T>();
};
template <std::size_t N>
struct StdTemplate<std::bitset<N>> : std::true_type {
  static constexpr Why why = Why::ok;
};

template <class T>
constexpr Why why() {
  if constexpr (std::is_reference_v<T>) {
    return Why::reference;
  } else if constexpr (std::is_pointer_v<T> || std::is_function_v<T>) {
    return Why::pointer;
  } else if constexpr (std::is_member_pointer_v<T>) {
    return Why::member_pointer;
  } else if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T> || std::is_null_pointer_v<T> ||
                       is_int128_v<T>) {
    return Why::ok;
  } else if constexpr (std::is_array_v<T>) {
    return why<std::remove_cv_t<std::remove_all_extents_t<T>>>();
  } else if constexpr (is_string_view_v<T>) {
    return Why::string_view;
  } else if constexpr (is_span_v<T>) {
    return Why::span;
  } else if constexpr (is_reference_wrapper_v<T>) {
    return Why::reference_wrapper;
  } else if constexpr (!std::is_trivially_copyable_v<T>) {
    return Why::not_trivially_copyable;
  } else if constexpr (bytewise_transportable<T>::value || std::is_empty_v<T>) {
    return Why::ok;
  } else if constexpr (std::is_union_v<T>) {
    return Why::union_type;
  } else if constexpr (StdTemplate<T>::value) {
    return StdTemplate<T>::why;
  } else if constexpr (std::is_aggregate_v<T>) {
    return aggregate_why<T>();
  } else {
    return Why::opaque;
  }
}

// --- the messages ------------------------------------------------------------------------------
// Each static_assert below fires inside report<T>() with the refused type as T, so the compiler's
// "in instantiation of ... [with T = ...]" line names it.

template <class>
inline constexpr bool always_false_v = false;

template <class T>
void report();

// Converts to any field, reporting the fields that may not be copied.
struct ReportingField {
  template <class U>
  requires Field<U>
  operator U&() const noexcept {  // NOLINT(google-explicit-constructor)
    report<std::remove_cv_t<U>>();
    return *reinterpret_cast<U*>(const_cast<ReportingField*>(this));  // never runs
  }
};

template <class T>
void report_fields() {
  [[maybe_unused]] const auto each = []<std::size_t... I>(std::index_sequence<I...>) {
    [[maybe_unused]] T t{(void(I), ReportingField{})...};
  };
  each(std::make_index_sequence<field_count<T>()>{});
}

// Converts only to refused class fields, reporting them (see RefusedClass).
struct ReportingClassField {
  template <class U>
  requires RefusedClassField<U>
  operator U() const noexcept {  // NOLINT
    report<std::remove_cv_t<U>>();
    return *reinterpret_cast<const U*>(this);  // never runs
  }
};

template <class T>
void report_class_field() {
  constexpr std::size_t n = field_count<T>();
  constexpr std::size_t k = first_refused_class_field<T, n>();
  [[maybe_unused]] const auto at = []<std::size_t... I>(std::index_sequence<I...>) {
    [[maybe_unused]] T t{
        (void(I), std::conditional_t<I == k, ReportingClassField, ReportingField>{})...};
  };
  at(std::make_index_sequence<n>{});
}

template <class... Ts>
void report_first() {
  [[maybe_unused]] bool found = false;
  ((found =
        found ||
        (why<std::remove_cv_t<Ts>>() != Why::ok ? (report<std::remove_cv_t<Ts>>(), true) : false)),
   ...);
}

// The std templates of StdTemplate: reports what they hold.
template <class T>
struct ReportStd;
template <template <class...> class Tmpl, class... Ts>
struct ReportStd<Tmpl<Ts...>> {
  static void run() { report_first<Ts...>(); }
};

template <class T>
void report() {
  constexpr Why w = why<T>();
  if constexpr (w == Why::ok) {
    return;
  } else if constexpr (StdTemplate<T>::value && std::is_trivially_copyable_v<T>) {
    ReportStd<T>::run();
  } else if constexpr (w == Why::pointer) {
    static_assert(always_false_v<T>,
                  "cfutures: a pointer cannot be sent to a worker process: the address means "
                  "nothing there. Send the value it points to (std::string for text, std::vector "
                  "for an array). See docs/reference.md, \"What may cross into a worker\"");
  } else if constexpr (w == Why::member_pointer) {
    static_assert(always_false_v<T>,
                  "cfutures: a member pointer cannot be sent to a worker process. See "
                  "docs/reference.md, \"What may cross into a worker\"");
  } else if constexpr (w == Why::reference) {
    static_assert(always_false_v<T>,
                  "cfutures: a reference cannot be sent to a worker process: it would refer to "
                  "this process's memory. Send a copy of the value. See docs/reference.md, "
                  "\"What may cross into a worker\"");
  } else if constexpr (w == Why::string_view) {
    static_assert(always_false_v<T>,
                  "cfutures: std::string_view holds an address of this process and cannot be "
                  "sent to a worker process: send std::string instead. See docs/reference.md, "
                  "\"What may cross into a worker\"");
  } else if constexpr (w == Why::span) {
    static_assert(always_false_v<T>,
                  "cfutures: std::span holds an address of this process and cannot be sent to a "
                  "worker process: send std::vector instead. See docs/reference.md, \"What may "
                  "cross into a worker\"");
  } else if constexpr (w == Why::reference_wrapper) {
    static_assert(always_false_v<T>,
                  "cfutures: std::reference_wrapper (std::ref, std::cref) holds an address of "
                  "this process and cannot be sent to a worker process, which cannot share this "
                  "process's objects: pass the value itself. See docs/reference.md, \"What may "
                  "cross into a worker\"");
  } else if constexpr (w == Why::not_trivially_copyable) {
    static_assert(always_false_v<T>,
                  "cfutures: this type cannot be sent to a worker process: it is not one of the "
                  "std types cfutures encodes, not a trivially copyable struct, and has no cereal "
                  "serialize()/save()/load() functions. Give it a serialize() function. See "
                  "docs/reference.md, \"What may cross into a worker\"");
  } else if constexpr (w == Why::union_type) {
    static_assert(always_false_v<T>,
                  "cfutures: a union is not copied to a worker process bytewise: the library "
                  "cannot tell which member is active (a pointer?). Give it a cereal serialize() "
                  "or declare it with cf::bytewise_transportable. See docs/reference.md, \"What "
                  "may cross into a worker\"");
  } else if constexpr (w == Why::reference_member) {
    static_assert(always_false_v<T>,
                  "cfutures: this struct has a reference or const member (it is not "
                  "copy-assignable): a reference would point into this process's memory. Hold a "
                  "copy of the value, or give the struct a cereal serialize(). See "
                  "docs/reference.md, \"What may cross into a worker\"");
  } else if constexpr (w == Why::too_many_fields) {
    static_assert(always_false_v<T>,
                  "cfutures: this struct has too many fields to check (more than 4096, counting "
                  "each element of its C arrays): give it a cereal serialize() or declare it with "
                  "cf::bytewise_transportable. See docs/reference.md, \"What may cross into a "
                  "worker\"");
  } else if constexpr (w == Why::member) {
    report_fields<T>();  // the refused field's own message, with its type
  } else if constexpr (w == Why::class_member) {
    report_class_field<T>();  // the same, for a field built through its own constructor
  } else if constexpr (w == Why::uncounted) {
    static_assert(always_false_v<T>,
                  "cfutures: this struct has a field the library cannot check (an anonymous "
                  "union?), so it is not copied to a worker process bytewise. Give it a cereal "
                  "serialize() or declare it with cf::bytewise_transportable. See "
                  "docs/reference.md, \"What may cross into a worker\"");
  } else {
    static_assert(always_false_v<T>,
                  "cfutures: the library cannot see inside this type (private members or "
                  "constructors), so it cannot check that it holds no pointer, and it does not "
                  "copy it to a worker process bytewise. Give it a cereal serialize(), or, if it "
                  "holds no address, declare `template <> struct "
                  "cf::bytewise_transportable<T> : std::true_type {};`. See docs/reference.md, "
                  "\"What may cross into a worker\"");
  }
}

}  // namespace concurrent::futures::detail::bytewise
