// Type-trait helpers shared by the public headers.
//
// Invariant: dependent_false<T> is false for every T, but depends on T, so a
// static_assert(dependent_false<T>, ...) in a template fires only when that
// branch is instantiated (the readable compile error for a misuse).
#pragma once

namespace weakref::detail {

template <class>
inline constexpr bool dependent_false = false;

}  // namespace weakref::detail
