// A function with no entry in the program's unwind table: no_unwind_function.cpp is compiled with
// -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-exceptions (tests/CMakeLists.txt), as
// some C code is. A pointer to it can travel to a worker only by symbol name, so only while the
// program is not stripped (see src/remote/function_table.cpp).
#pragma once

namespace no_unwind {

int triple(int x);

}  // namespace no_unwind
