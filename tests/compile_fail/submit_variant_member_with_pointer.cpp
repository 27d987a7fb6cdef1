// expect-error: a pointer cannot be sent to a worker process
//
// docs/reference.md, "What may cross into a worker": a struct whose std::variant member may hold
// a pointer is refused, though the variant can be built from an allowed alternative (each field
// of class type is checked by its own type, not only by what it can be constructed from).
#include <variant>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

struct Shape {
  int id;
  std::variant<int, const int*> size;
};

int id_of(Shape s) { return s.id; }

cf::Future<int> send_a_shape(cf::ProcessPoolExecutor& pool) {
  return pool.submit(&id_of, Shape{1, 2});
}
