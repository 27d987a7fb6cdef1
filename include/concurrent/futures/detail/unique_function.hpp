// A move-only type-erased callable (std::move_only_function arrives only with C++23). Used for
// done-callbacks and tasks, which often own move-only state (promises, unique_ptrs).
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace concurrent::futures::detail {

template <class Signature>
class UniqueFunction;

template <class R, class... Args>
class UniqueFunction<R(Args...)> {
 public:
  UniqueFunction() = default;

  // clang-format off
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, UniqueFunction> &&
             std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
  UniqueFunction(F&& fn)  // NOLINT(google-explicit-constructor): behaves like std::function
      : impl_(std::make_unique<Impl<std::decay_t<F>>>(std::forward<F>(fn))) {}
  // clang-format on

  explicit operator bool() const noexcept { return impl_ != nullptr; }
  R operator()(Args... args) { return impl_->call(std::forward<Args>(args)...); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual R call(Args... args) = 0;
  };
  template <class F>
  struct Impl final : Base {
    explicit Impl(F&& f) : fn(std::move(f)) {}
    explicit Impl(const F& f) : fn(f) {}
    R call(Args... args) override { return std::invoke(fn, std::forward<Args>(args)...); }
    F fn;
  };
  std::unique_ptr<Base> impl_;
};

}  // namespace concurrent::futures::detail
