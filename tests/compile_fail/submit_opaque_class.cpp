// expect-error: the library cannot see inside this type.*cf::bytewise_transportable
//
// docs/reference.md, "What may cross into a worker": a trivially copyable class with private
// members might hold a pointer the library cannot see, so it is not copied bytewise unless the
// user declares it (cf::bytewise_transportable) or gives it cereal functions.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

class Handle {
 public:
  explicit Handle(int v) : value_(v) {}
  Handle() = default;
  int value() const { return value_; }

 private:
  int value_ = 0;
};

int value_of(Handle h) { return h.value(); }

cf::Future<int> send_a_handle(cf::ProcessPoolExecutor& pool) {
  return pool.submit(&value_of, Handle(3));
}
