// Compiled without unwind tables (see no_unwind_function.hpp).
#include "no_unwind_function.hpp"

namespace no_unwind {

int triple(int x) { return 3 * x; }

}  // namespace no_unwind
