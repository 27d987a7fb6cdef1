// The language check every public header makes before it includes anything else.
//
// Without C++20 the first thing a compiler would report is an error deep inside <coroutine>,
// <concepts> or one of the library's requires-clauses, followed by a couple of hundred more; this
// says what is wrong in one line instead, before any of them can happen. The include of a header
// that does not exist then stops the compiler (a missing header is fatal to GCC and Clang alike),
// so the reason stays the first error and is followed by just that one note.
//
// Checked: __cplusplus, which GCC 12 and Clang 14 (the oldest compilers cfutures supports) set to
// 202002L or more for -std=c++20, -std=gnu++20 and later.
#pragma once

#if __cplusplus < 202002L
#error "cfutures needs C++20 (-std=c++20 or later)"
#include <cfutures_stops_here_without_cxx20>  // IWYU pragma: keep
#endif
