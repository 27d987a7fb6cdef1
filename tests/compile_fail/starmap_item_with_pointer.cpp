// expect-error: a pointer cannot be sent to a worker process
//
// docs/reference.md, "What may cross into a worker": starmap checks the elements of its tuples.
#include <tuple>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

int add(int a, const int* b) { return a + *b; }

void starmap_pointers(cf::ProcessPoolExecutor& pool,
                      const std::vector<std::tuple<int, const int*>>& in) {
  for (int n : pool.starmap(&add, in)) (void)n;
}
