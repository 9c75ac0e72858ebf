// WEAKREF_DCHECK(cond, msg): checks an internal invariant in builds made to
// find bugs (Debug, the sanitizer and fuzz presets), and costs nothing in a
// release build. Modelled on Chromium's DCHECK and Abseil's
// ABSL_SWISSTABLE_ASSERT.
//
//   WEAKREF_DCHECK(w.count() > 0, "decref of a dead object");
//
// On: when `cond` is false, prints "file:line: WEAKREF_DCHECK(cond) failed:
// msg" to stderr and aborts (std::abort: a core dump or the sanitizer's
// report, and a death test sees it). Off: the expression is not evaluated
// (it stays in an unevaluated operand, so it still compiles and the names
// it uses count as used).
//
// Invariants:
//  * WEAKREF_DCHECKS is 0 or 1 and means the same in every translation unit
//    of one build of the project: CMake's option WEAKREF_DCHECKS (ON for
//    Debug, OFF otherwise; every preset sets it) defines it for the library
//    and everything in the project that links it. A translation unit that
//    leaves it undefined (a consumer of an installed library) gets 0.
//  * A check never has side effects that the code after it relies on: a
//    build without checks behaves the same.
//  * dcheck_failed() is in the library whatever the setting, so a consumer
//    may turn the checks on in its own inline code.
#pragma once

#include "config.hpp"

#ifndef WEAKREF_DCHECKS
#define WEAKREF_DCHECKS 0
#endif

namespace weakref::detail {

// Prints the failed check to stderr and aborts (src/object.cpp).
[[noreturn]] WEAKREF_API void dcheck_failed(const char* file, int line, const char* expr,
                                            const char* msg) noexcept;
// The value of WEAKREF_DCHECKS the library was compiled with.
WEAKREF_API bool dchecks_enabled_in_library() noexcept;

}  // namespace weakref::detail

#if WEAKREF_DCHECKS
#define WEAKREF_DCHECK(cond, msg)                 \
  (static_cast<bool>(cond) ? static_cast<void>(0) \
                           : ::weakref::detail::dcheck_failed(__FILE__, __LINE__, #cond, msg))
#else
#define WEAKREF_DCHECK(cond, msg) static_cast<void>(sizeof(static_cast<bool>(cond)))
#endif
